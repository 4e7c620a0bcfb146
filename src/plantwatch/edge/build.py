"""Greengrass build without the GDK CLI: a wheel of ``src/plantwatch`` plus recipes, laid out as ``greengrass-build/``.

Output, per component, in the folder of its ``gdk-config.json`` (the layout ``gdk component publish`` reads)::

    greengrass-build/recipes/recipe.yaml
    greengrass-build/artifacts/<component>/<version>/<files>

Standard library only, so it runs as the GDK ``custom_build_command`` on a machine with nothing installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Final

GATEWAY: Final = "com.plantwatch.Gateway"
#: The model component: the Gateway recipe's dependency, whose artifact (MODEL_FILE) is the ForestModel it loads.
MODEL: Final = "com.plantwatch.Model"
COMPONENTS: Final = (GATEWAY, MODEL)
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same wheel bytes
#: The model the model component packs unless told otherwise: the committed baseline of the Gateway recipe's
#: default plant and line (plant-1, line-1). The gateway loads it as ``model.pwf``.
DEFAULT_MODEL: Final = Path("models") / "plant-1.line-1.pwf"
MODEL_FILE: Final = "model.pwf"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata(project: dict[str, object]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.11')}",
    ]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]  # type: ignore[attr-defined]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
    for extra, deps in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    return "\n".join(lines) + "\n"


def build_wheel(root: Path, out_dir: Path) -> Path:
    """A pure-Python wheel of ``root/src/plantwatch`` with the project's metadata; returns its path."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    name, version = str(project["name"]), str(project["version"])
    dist_info = f"{name}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    package = root / "src" / name
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed", ".json"):
            files.append((path.relative_to(root / "src").as_posix(), path.read_bytes()))
    scripts: dict[str, str] = project.get("scripts", {})
    files.append((f"{dist_info}/METADATA", _metadata(project).encode()))
    wheel_file = "Wheel-Version: 1.0\nGenerator: plantwatch.edge.build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files.append((f"{dist_info}/WHEEL", wheel_file.encode()))
    entry_points = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    files.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    record = "".join(f"{arc},{_digest(data)},{len(data)}\n" for arc, data in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in files:
            info = zipfile.ZipInfo(arc, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel


def _render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"{{{key}}}", value)
    return template


def model_identity(path: Path) -> dict[str, str]:
    """MODEL_NAME, MODEL_VERSION and MODEL_SHA256 of a ForestModel artifact, from its manifest (stdlib only: the
    gateway verifies the whole artifact, and this SHA-256, when it loads it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
        info = manifest["info"]
        return {"MODEL_NAME": info["name"], "MODEL_VERSION": info["version"], "MODEL_SHA256": manifest["sha256"]}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a plantwatch model artifact (plantwatch train writes them): {exc}") from exc


def build_component(
    root: Path, name: str, *, version: str | None = None, out: Path | None = None, model: Path | None = None
) -> Path:
    """Build one component as ``gdk component build`` would lay it out; returns the output directory.

    ``out/recipes/recipe.yaml`` (GDK's publish step reads the build recipe under the project recipe's name,
    checks its ComponentName, rewrites the s3 artifact URIs and writes ``<name>-<version>.yaml``) and
    ``out/artifacts/<name>/<version>/``. The model component packs ``model`` (default :data:`DEFAULT_MODEL`) as
    ``model.pwf`` and names it, and its SHA-256, in its configuration.
    """
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; choose one of {', '.join(COMPONENTS)}")
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    version = version or str(project["version"])
    folder = root / "edge" / "components" / name
    out = out or (root if name == GATEWAY else folder) / "greengrass-build"
    if out.exists():
        shutil.rmtree(out)
    (out / "recipes").mkdir(parents=True)
    artifacts = out / "artifacts" / name / version
    artifacts.mkdir(parents=True)
    values = {"COMPONENT_NAME": name, "COMPONENT_VERSION": version}
    if name == GATEWAY:
        # the plantwatch wheel (installed into a venv by the recipe's Install step) and a thin main.py
        values["WHEEL"] = build_wheel(root, artifacts).name
        shutil.copy2(folder / "main.py", artifacts / "main.py")
    else:
        # the model artifact only, so a new model deploys without redeploying code
        source = model if model is not None else root / DEFAULT_MODEL
        values.update(model_identity(source))
        shutil.copy2(source, artifacts / MODEL_FILE)
    recipe = _render((folder / "recipe.yaml").read_text(), values)
    (out / "recipes" / "recipe.yaml").write_text(recipe)
    return out


def build_components(root: Path, *, version: str | None = None, model: Path | None = None) -> list[Path]:
    """Build every component into its own project folder's ``greengrass-build/``; returns those folders."""
    return [build_component(root, name, version=version, model=model) for name in COMPONENTS]


def main(argv: list[str] | None = None) -> int:
    """``python -m plantwatch.edge.build`` (the GDK custom build command)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", default=".", help="repository root (holds pyproject.toml, src/, edge/)")
    parser.add_argument("--version", default=None, help="component version (default: the package version)")
    parser.add_argument("--component", default=GATEWAY, choices=COMPONENTS, help="component to build")
    parser.add_argument("--out", default=None, help="output directory (default: the project's greengrass-build)")
    parser.add_argument("--model", default=None, help=f"model the model component packs (default {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    out = build_component(
        Path(args.root).resolve(),
        args.component,
        version=args.version,
        out=Path(args.out).resolve() if args.out else None,
        model=Path(args.model).resolve() if args.model else None,
    )
    sys.stdout.write(f"greengrass build output in {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
