"""Build one deployment zip per Lambda in cloud/lambdas/ from its handler, the plantwatch package and its wheels.

Terraform reads ``<out>/<function>.zip`` (default ``build/lambda``). Zips are reproducible: the same sources and
wheels give the same bytes, so ``source_code_hash`` only changes when the code does.

A function with a ``Dockerfile`` (too large for a zip: docs/cloud.md) is a container image instead: docker
builds it (docs/deploy.md); this script reads what the Dockerfile declares, resolves its pip step for the
Lambda platform and installs that step's tree here to check it (tests/infra/test_lambda_images.py).

    python cloud/build_lambdas.py                      # every zip function, arm64 wheels for Python 3.12
    python cloud/build_lambdas.py --no-deps analytics_api   # handler + plantwatch only (tests, quick checks)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("build_lambdas")

REPO = Path(__file__).resolve().parents[1]
LAMBDAS_DIR = REPO / "cloud" / "lambdas"
PACKAGE_DIR = REPO / "src" / "plantwatch"
DEFAULT_OUT = REPO / "build" / "lambda"
DEFAULT_ARCH = "arm64"  # keep in step with variable "lambda_architecture" in cloud/terraform/variables.tf
DEFAULT_PYTHON = "3.12"  # keep in step with the runtime in cloud/terraform/modules/lambda_function
REQUIREMENTS_FILE = "requirements.txt"  # optional, per function: extra distributions beyond plantwatch's own
IMAGE_FILE = "Dockerfile"  # a function with one is deployed as a container image, not a zip
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 and older wheels fit.
PLATFORMS = {
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
# Lambda's documented limits for zip deployment packages.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_NAMES = {"__pycache__", ".mypy_cache", ".pytest_cache", REQUIREMENTS_FILE, IMAGE_FILE}


class BuildError(RuntimeError):
    """A package could not be built or breaks a Lambda limit."""


@dataclass(frozen=True)
class Built:
    """One built package: where it is, its Terraform source_code_hash and sizes."""

    function: str
    path: Path
    source_code_hash: str
    zipped_bytes: int
    unzipped_bytes: int


def functions(lambdas_dir: Path = LAMBDAS_DIR) -> list[str]:
    """Names of the function directories that hold an app.py."""
    return sorted(p.parent.name for p in lambdas_dir.glob("*/app.py"))


def is_image(function: str, lambdas_dir: Path = LAMBDAS_DIR) -> bool:
    """True for a function deployed as a container image (its directory holds a Dockerfile)."""
    return (lambdas_dir / function / IMAGE_FILE).is_file()


def requirements(
    function: str, lambdas_dir: Path = LAMBDAS_DIR, pyproject: Path = REPO / "pyproject.toml"
) -> list[str]:
    """Distributions a function needs: plantwatch's core dependencies plus its requirements.txt or image extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    core: list[str] = project["dependencies"]
    if is_image(function, lambdas_dir):
        optional: dict[str, list[str]] = project.get("optional-dependencies", {})
        spec = image_spec(function, lambdas_dir)
        unknown = sorted(set(spec.extras) - optional.keys())
        if unknown:
            raise BuildError(f"{function}/{IMAGE_FILE} installs extras {unknown} that pyproject.toml does not define")
        extras = [r for extra in spec.extras for r in optional[extra]]
        return list(dict.fromkeys([*core, *extras]))
    extra_file = lambdas_dir / function / REQUIREMENTS_FILE
    extra = []
    if extra_file.exists():
        lines = (line.split("#", 1)[0].strip() for line in extra_file.read_text().splitlines())
        extra = [line for line in lines if line]
    return [*core, *extra]


@dataclass(frozen=True)
class ImageSpec:
    """What a function's Dockerfile declares: base image, Python, plantwatch extras, copied files, handler."""

    function: str
    base: str
    python: str
    extras: tuple[str, ...]
    constrained: bool
    copies: tuple[str, ...]
    handler: str


_LINE_CONTINUATION = re.compile(r"\\\n\s*")
_ARG = re.compile(r"^ARG\s+(\w+)=(\S+)$")
_VAR = re.compile(r"\$\{(\w+)\}")
_LAMBDA_BASE = re.compile(r"^public\.ecr\.aws/lambda/python:(3\.\d+)(?:-(?:arm64|x86_64))?$")
_PLANTWATCH_EXTRAS = re.compile(r"/plantwatch\[([a-z0-9_,-]+)\]")


def image_spec(function: str, lambdas_dir: Path = LAMBDAS_DIR) -> ImageSpec:
    """Parse cloud/lambdas/<function>/Dockerfile: one FROM a Lambda Python base, one pip install, one CMD."""
    path = lambdas_dir / function / IMAGE_FILE
    lines = [line.strip() for line in _LINE_CONTINUATION.sub(" ", path.read_text()).splitlines() if line.strip()]
    instructions = [line for line in lines if not line.startswith("#")]
    args = {m.group(1): m.group(2) for m in map(_ARG.match, instructions) if m}
    bases = [
        _VAR.sub(lambda m: args.get(m.group(1), m.group(0)), line.split()[1])
        for line in instructions
        if line.startswith("FROM ")
    ]
    installs = [line for line in instructions if line.startswith("RUN ") and "pip install" in line]
    commands = [line[4:].strip() for line in instructions if line.startswith("CMD ")]
    if len(bases) != 1 or len(installs) != 1 or len(commands) != 1:
        raise BuildError(f"{path}: needs exactly one FROM, one RUN pip install and one CMD")
    base = _LAMBDA_BASE.match(bases[0])
    if base is None:
        raise BuildError(f"{path}: FROM {bases[0]} is not an AWS Lambda Python base image")
    extras = _PLANTWATCH_EXTRAS.search(installs[0])
    if extras is None:
        raise BuildError(f"{path}: the pip install must install plantwatch with its extras (.../plantwatch[extra,...])")
    try:
        cmd = json.loads(commands[0])
    except json.JSONDecodeError:
        cmd = None
    if not (isinstance(cmd, list) and len(cmd) == 1 and isinstance(cmd[0], str)):
        raise BuildError(f'{path}: CMD must be the exec form with one handler, e.g. ["app.handler"]')
    return ImageSpec(
        function=function,
        base=bases[0],
        python=base.group(1),
        extras=tuple(extras.group(1).split(",")),
        constrained="--constraint" in installs[0] and "constraints.txt" in installs[0],
        copies=tuple(src for line in instructions if line.startswith("COPY ") for src in line.split()[1:-1]),
        handler=cmd[0],
    )


def resolve(reqs: Sequence[str], *, arch: str, python: str, constraints: Path | None) -> dict[str, str]:
    """Distribution -> version pip picks for the Lambda platform (binary wheels only), without installing."""
    with tempfile.TemporaryDirectory(prefix="lambda-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        _pip_for_lambda(["--dry-run", "--ignore-installed", "--report", str(report)], reqs, arch, python, constraints)
        installs = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in installs}


def install_image_tree(function: str, dest: Path, *, lambdas_dir: Path = LAMBDAS_DIR, repo: Path = REPO) -> None:
    """Run the image's pip step on this machine: plantwatch[extras] with constraints.txt into dest, then the handler.

    The same install the Dockerfile makes into ${LAMBDA_TASK_ROOT}, but with this machine's Python and wheels; what
    the Lambda platform resolves to is checked by ``resolve``. Needs the package index (pip's cache helps).
    """
    spec = image_spec(function, lambdas_dir)
    with tempfile.TemporaryDirectory(prefix=f"image-{function}-") as tmp:
        source = Path(tmp) / "plantwatch"  # a copy, like the Dockerfile's: building never writes into the repo
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(repo / name, source / name)
        shutil.copytree(repo / "src", source / "src", ignore=shutil.ignore_patterns(*_SKIP_NAMES, "*.pyc"))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(dest)]
        if spec.constrained:
            cmd += ["--constraint", str(repo / "constraints.txt")]
        cmd.append(f"{source}[{','.join(spec.extras)}]")
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise BuildError(f"{function}: the image's pip install failed here:\n{result.stderr.strip()}")
    stage(function, dest, lambdas_dir=lambdas_dir, package_dir=None)


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _SKIP_NAMES.intersection(path.relative_to(root).parts) and path.suffix != ".pyc":
            yield path


def stage(
    function: str, dest: Path, *, lambdas_dir: Path = LAMBDAS_DIR, package_dir: Path | None = PACKAGE_DIR
) -> None:
    """Copy a function's handler directory to dest/ and (unless None) the plantwatch package to dest/plantwatch/."""
    source = lambdas_dir / function
    if not (source / "app.py").is_file():
        raise BuildError(f"{source}/app.py does not exist")
    for path in _files(source):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if package_dir is None:
        return
    for path in _files(package_dir):
        target = dest / package_dir.name / path.relative_to(package_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def install_wheels(reqs: Sequence[str], dest: Path, *, arch: str, python: str, constraints: Path | None) -> None:
    """pip-install binary wheels for the Lambda platform into dest (never builds from source)."""
    _pip_for_lambda(["--target", str(dest), "--upgrade"], reqs, arch, python, constraints)


def _pip_for_lambda(
    options: Sequence[str], reqs: Sequence[str], arch: str, python: str, constraints: Path | None
) -> None:
    if arch not in PLATFORMS:
        raise BuildError(f"arch must be one of {sorted(PLATFORMS)}, not {arch!r}")
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *options,
        "--implementation", "cp", "--python-version", python, "--only-binary=:all:",
    ]  # fmt: skip
    for platform in PLATFORMS[arch]:
        cmd += ["--platform", platform]
    if constraints is not None and constraints.exists():
        cmd += ["--constraint", str(constraints)]
    result = subprocess.run([*cmd, *reqs], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BuildError(f"pip could not install {list(reqs)} for {arch}/py{python}:\n{result.stderr.strip()}")


def write_zip(source: Path, target: Path) -> int:
    """Zip source/ into target reproducibly (sorted entries, fixed times and modes); returns unzipped bytes."""
    total = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source)
            if "__pycache__" in relative.parts or path.suffix == ".pyc":
                continue
            info = zipfile.ZipInfo(relative.as_posix(), date_time=_FIXED_TIME)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            total += len(data)
            archive.writestr(info, data)
    return total


def docker_build_command(function: str, arch: str = DEFAULT_ARCH, tag: str = "<tag>") -> str:
    """The docker build (from the repository root) of an image function; docs/deploy.md shows the push."""
    platform = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}[arch]
    return (
        f"docker build --platform {platform} --provenance=false "
        f"-f cloud/lambdas/{function}/{IMAGE_FILE} -t plantwatch-{function}:{tag} ."
    )


def source_code_hash(path: Path) -> str:
    """What Terraform's filebase64sha256() returns for the file."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def build(
    function: str,
    out: Path = DEFAULT_OUT,
    *,
    arch: str = DEFAULT_ARCH,
    python: str = DEFAULT_PYTHON,
    deps: bool = True,
    lambdas_dir: Path = LAMBDAS_DIR,
    package_dir: Path = PACKAGE_DIR,
    constraints: Path | None = REPO / "constraints.txt",
) -> Built:
    """Build out/<function>.zip and return what was built."""
    if arch not in PLATFORMS:
        raise BuildError(f"arch must be one of {sorted(PLATFORMS)}, not {arch!r}")
    if is_image(function, lambdas_dir):
        raise BuildError(f"{function} is a container image: {docker_build_command(function, arch)}")
    with tempfile.TemporaryDirectory(prefix=f"lambda-{function}-") as tmp:
        staging = Path(tmp)
        if deps:
            install_wheels(
                requirements(function, lambdas_dir), staging, arch=arch, python=python, constraints=constraints
            )
        stage(function, staging, lambdas_dir=lambdas_dir, package_dir=package_dir)
        target = out / f"{function}.zip"
        unzipped = write_zip(staging, target)
    zipped = target.stat().st_size
    if zipped > MAX_ZIPPED_BYTES or unzipped > MAX_UNZIPPED_BYTES:
        raise BuildError(f"{target}: {zipped} B zipped / {unzipped} B unzipped exceeds Lambda's 50 MB / 250 MB limits")
    return Built(function, target, source_code_hash(target), zipped, unzipped)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the named zip functions (default all) and write out/manifest.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("functions", nargs="*", help="function directories under cloud/lambdas (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: build/lambda)")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default=DEFAULT_ARCH, help="Lambda architecture")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="Lambda Python version of the wheels")
    parser.add_argument("--no-deps", action="store_true", help="bundle only the handler and plantwatch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    names = args.functions or functions()
    unknown = sorted(set(names) - set(functions()))
    if unknown:
        parser.error(f"no cloud/lambdas/<name>/app.py for {unknown}")
    manifest: dict[str, dict[str, object]] = {}
    for name in names:
        if is_image(name):
            command = docker_build_command(name, args.arch)
            log.info("%s: container image, not a zip; build it with docker: %s", name, command)
            manifest[name] = {"image": True, "dockerfile": f"cloud/lambdas/{name}/{IMAGE_FILE}", "build": command}
            continue
        built = build(name, args.out, arch=args.arch, python=args.python, deps=not args.no_deps)
        log.info("%s: %s (%.1f MB zipped)", name, built.path, built.zipped_bytes / 1e6)
        manifest[name] = {
            "zip": built.path.name,
            "source_code_hash": built.source_code_hash,
            "zipped_bytes": built.zipped_bytes,
            "unzipped_bytes": built.unzipped_bytes,
            "architecture": args.arch,
            "python": args.python,
            "dependencies": not args.no_deps,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
