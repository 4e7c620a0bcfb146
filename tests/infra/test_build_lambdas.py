"""cloud/build_lambdas.py: reproducible zips (handler, plantwatch, Lambda-platform wheels) that Terraform hashes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from infra_tools import handler_probe, load_build_script

REPO = Path(__file__).resolve().parents[2]


bl = load_build_script()
# What the Lambda Python runtime itself provides (boto3 and its dependencies); a zip may leave these out.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def _names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_package_holds_handler_at_root_and_the_plantwatch_source(tmp_path: Path) -> None:
    built = bl.build("analytics_api", tmp_path, deps=False)
    names = _names(built.path)
    assert "app.py" in names
    sources = sorted(p.relative_to(REPO / "src").as_posix() for p in (REPO / "src" / "plantwatch").rglob("*.py"))
    assert sorted(n for n in names if n.startswith("plantwatch/") and n.endswith(".py")) == sources
    assert "plantwatch/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert names == sorted(names), "entries are written in a stable order"


def test_same_sources_give_the_same_bytes_and_terraforms_hash(tmp_path: Path) -> None:
    lambdas = tmp_path / "lambdas"
    shutil.copytree(REPO / "cloud" / "lambdas" / "analytics_api", lambdas / "analytics_api")
    first = bl.build("analytics_api", tmp_path / "a", deps=False, lambdas_dir=lambdas)
    # A new mtime (a fresh clone, an editor's save) never changes the zip.
    os.utime(lambdas / "analytics_api" / "app.py", (1e9, 1e9))
    second = bl.build("analytics_api", tmp_path / "b", deps=False, lambdas_dir=lambdas)
    assert first.path.read_bytes() == second.path.read_bytes()
    expected = base64.b64encode(hashlib.sha256(first.path.read_bytes()).digest()).decode()
    assert first.source_code_hash == second.source_code_hash == expected


def test_a_changed_handler_changes_the_hash(tmp_path: Path) -> None:
    lambdas = tmp_path / "lambdas"
    (lambdas / "fn").mkdir(parents=True)
    (lambdas / "fn" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    one = bl.build("fn", tmp_path / "one", deps=False, lambdas_dir=lambdas)
    (lambdas / "fn" / "app.py").write_text("def handler(event, context):\n    return 2\n")
    two = bl.build("fn", tmp_path / "two", deps=False, lambdas_dir=lambdas)
    assert one.source_code_hash != two.source_code_hash


def test_requirements_are_the_core_dependencies_plus_the_functions_own(tmp_path: Path) -> None:
    lambdas = tmp_path / "lambdas"
    (lambdas / "api").mkdir(parents=True)
    (lambdas / "api" / "app.py").write_text("def handler(e, c): ...\n")
    (lambdas / "api" / "requirements.txt").write_text("# served by Mangum\nmangum>=0.17\n\nfastapi  # the app\n")
    reqs = bl.requirements("api", lambdas)
    assert reqs[-2:] == ["mangum>=0.17", "fastapi"]
    assert any(r.startswith("numpy") for r in reqs)
    assert any(r.startswith("msgspec") for r in reqs)
    # requirements.txt itself is not shipped
    built = bl.build("api", tmp_path / "out", deps=False, lambdas_dir=lambdas)
    assert "requirements.txt" not in _names(built.path)


def test_a_function_without_app_py_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lambdas" / "empty").mkdir(parents=True)
    with pytest.raises(bl.BuildError, match=r"app\.py does not exist"):
        bl.build("empty", tmp_path / "out", deps=False, lambdas_dir=tmp_path / "lambdas")
    with pytest.raises(bl.BuildError, match="arch"):
        bl.build("retrain", tmp_path / "out", deps=False, arch="sparc")


def test_cli_builds_every_function_and_writes_a_manifest(tmp_path: Path) -> None:
    assert bl.main(["--no-deps", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest) == bl.functions() == ["analytics_api", "retrain", "stream_processor"]
    images = {name for name, entry in manifest.items() if entry.get("image")}
    assert images == {"retrain", "stream_processor"}, "too large for a zip: built with docker instead"
    for name in images:
        assert manifest[name]["build"] == bl.docker_build_command(name), name
        assert not (tmp_path / f"{name}.zip").exists(), name
    for name, entry in manifest.items():
        if name in images:
            continue
        zip_path = tmp_path / entry["zip"]
        assert entry["source_code_hash"] == bl.source_code_hash(zip_path), name
        assert entry["zipped_bytes"] == zip_path.stat().st_size
        assert entry["architecture"] == "arm64"


def test_dependencies_are_lambda_platform_wheels(tmp_path: Path) -> None:
    """Downloads numpy and msgspec wheels for Linux arm64 / CPython 3.12 from the package index (pip cache helps)."""
    # Core dependencies only, to stay quick; the analytics zip's whole tree is imported by the next test.
    (tmp_path / "lambdas" / "core").mkdir(parents=True)
    shutil.copy2(REPO / "cloud" / "lambdas" / "analytics_api" / "app.py", tmp_path / "lambdas" / "core" / "app.py")
    built = bl.build("core", tmp_path / "out", deps=True, lambdas_dir=tmp_path / "lambdas")
    names = _names(built.path)
    extensions = [n for n in names if n.endswith(".so")]
    assert any(n.startswith("numpy/") for n in extensions)
    assert any(n.startswith("msgspec/") for n in extensions)
    assert all("aarch64" in n or "cpython" not in n for n in extensions), "only arm64 CPython extensions"
    assert all("cpython-312" in n for n in extensions if "cpython" in n), "built for the Lambda's Python"
    assert built.zipped_bytes < bl.MAX_ZIPPED_BYTES
    assert built.unzipped_bytes < bl.MAX_UNZIPPED_BYTES


def test_a_zip_function_imports_from_its_zip_alone(tmp_path: Path) -> None:
    """The zip with wheels for this machine (the Lambda's are checked above) runs its handler with nothing else."""
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())
    if arch is None:
        pytest.skip(f"no Lambda architecture matches this machine ({platform.machine()})")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = sysconfig.get_paths()["purelib"]
    for name in (f for f in bl.functions() if not bl.is_image(f)):
        built = bl.build(name, tmp_path / "out", arch=arch, python=python)
        tree = tmp_path / name
        with zipfile.ZipFile(built.path) as archive:
            archive.extractall(tree)
        result = subprocess.run(
            [sys.executable, "-S", "-s", "-c", handler_probe("app.handler")],
            cwd=tree,
            capture_output=True,
            text=True,
            # After the zip, this venv's site-packages stands in for the runtime, which brings boto3 (checked below).
            env={"PYTHONPATH": f"{tree}:{site}", "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
            check=False,
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"
        seen = json.loads(result.stdout)
        stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
        runtime = tuple(f"{site}/{package}" + ("" if package.endswith(".py") else "/") for package in RUNTIME_PACKAGES)
        outside = [f for f in seen["files"] if f and not f.startswith((str(tree), *stdlib, *runtime))]
        assert seen["callable"]
        assert not outside, f"{name} imported from outside its zip: {outside[:5]}"
