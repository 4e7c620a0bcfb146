"""Greengrass build without the GDK CLI: a wheel of ``src/plantwatch`` plus recipes, laid out as ``greengrass-build/``.

Output (the layout ``gdk component publish`` and ``greengrass-cli deployment create --recipeDir/--artifactDir``
read)::

    greengrass-build/recipes/<component>-<version>.yaml
    greengrass-build/artifacts/<component>/<version>/<files>

Standard library only, so it runs as the GDK ``custom_build_command`` on a machine with nothing installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Final

GATEWAY: Final = "com.plantwatch.Gateway"
MODEL: Final = "com.plantwatch.Model"
COMPONENTS: Final = (GATEWAY, MODEL)
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same wheel bytes


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


def _render(template: str, *, name: str, version: str, wheel: str) -> str:
    return template.replace("{COMPONENT_NAME}", name).replace("{COMPONENT_VERSION}", version).replace("{WHEEL}", wheel)


def build_components(root: Path, *, version: str | None = None, out: Path | None = None) -> Path:
    """Build both components into ``out`` (default ``root/greengrass-build``); returns the output directory."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    version = version or str(project["version"])
    out = out or root / "greengrass-build"
    if out.exists():
        shutil.rmtree(out)
    (out / "recipes").mkdir(parents=True)
    components = root / "edge" / "components"
    # the gateway: the plantwatch wheel (installed into a venv by the recipe's Install step) and a thin main.py
    gw_artifacts = out / "artifacts" / GATEWAY / version
    wheel = build_wheel(root, gw_artifacts)
    shutil.copy2(components / GATEWAY / "main.py", gw_artifacts / "main.py")
    # the model: the model files only, so a new model deploys without redeploying code
    model_artifacts = out / "artifacts" / MODEL / version
    model_artifacts.mkdir(parents=True)
    for path in sorted((components / MODEL / "model").glob("*")):
        if path.is_file():
            shutil.copy2(path, model_artifacts / path.name)
    for name in COMPONENTS:
        template = (components / name / "recipe.yaml").read_text()
        (out / "recipes" / f"{name}-{version}.yaml").write_text(
            _render(template, name=name, version=version, wheel=wheel.name)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m plantwatch.edge.build`` (the GDK custom build command)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", default=".", help="repository root (holds pyproject.toml, src/, edge/)")
    parser.add_argument("--version", default=None, help="component version (default: the package version)")
    parser.add_argument("--out", default=None, help="output directory (default: ROOT/greengrass-build)")
    args = parser.parse_args(argv)
    out = build_components(
        Path(args.root).resolve(), version=args.version, out=Path(args.out).resolve() if args.out else None
    )
    sys.stdout.write(f"greengrass build output in {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
