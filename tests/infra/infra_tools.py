"""Finding the real tools the infra tests run: terraform with the provider mirror, checkov in its own venv."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import missing

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = Path(os.environ.get("PLANTWATCH_TF_PLUGIN_DIR", "/opt/tf-plugins"))
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def terraform() -> str:
    """Path of the terraform binary, after checking the provider mirror exists."""
    binary = shutil.which("terraform")
    if binary is None:
        missing("terraform on PATH")
    if not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        missing(f"the provider mirror {PLUGIN_DIR}")
    return str(binary)


def checkov() -> Path:
    """Path of checkov in .venv-checkov (made by `make checkov`)."""
    if not CHECKOV.exists():
        missing(f"{CHECKOV} (run `make checkov`)")
    return CHECKOV


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for terraform runs: no telemetry, no prompts."""
    return {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **extra}


def load_build_script() -> ModuleType:
    """cloud/build_lambdas.py as a module (it is a script, not part of the plantwatch package)."""
    spec = importlib.util.spec_from_file_location("build_lambdas", REPO / "cloud" / "build_lambdas.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lambdas"] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def handler_probe(handler: str) -> str:
    """Python source that imports a Lambda handler and prints JSON: callable, loaded files, newly imported packages."""
    module_name, _, attribute = handler.rpartition(".")
    return (
        "import importlib, json, sys;"
        "before = set(sys.modules);"
        f"m = importlib.import_module({module_name!r});"
        f"h = getattr(m, {attribute!r});"
        "files = sorted({getattr(v, '__file__', None) or '' for v in list(sys.modules.values())});"
        "print(json.dumps({'callable': callable(h), 'files': files,"
        " 'top': sorted({n.split('.')[0] for n in set(sys.modules) - before})}))"
    )
