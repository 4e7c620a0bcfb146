"""Installed size of each Lambda's dependencies on the Lambda platform, against the zip limits (not a speed test).

Run: ``python benchmarks/lambda_sizes.py`` (``--arch arm64 x86_64``, ``--python 3.12``, ``--zip`` to also deflate).
For every function in cloud/lambdas it pip-installs, with ``--target``, ``--only-binary=:all:``, the Lambda
platform's manylinux tags and constraints.txt, exactly the distributions ``cloud/build_lambdas.py`` would bundle
(core + requirements.txt for a zip function, core + the Dockerfile's extras for an image function), then sums the
bytes on disk. Lambda's limits for a zip: 250 MB unzipped (layers included), 50 MB zipped for a direct upload; like
build_lambdas.py, sizes are in MiB (250 MiB = 262,144,000 bytes).
The plantwatch package itself (about 1 MB) and the handler are not counted. Needs the package index (pip cache
helps).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
sys.path.insert(0, str(REPO / "cloud"))
import build_lambdas as bl  # noqa: E402  (a script in cloud/, not part of the package)


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _largest(root: Path, count: int = 4) -> str:
    sizes = sorted(((_bytes(p) if p.is_dir() else p.stat().st_size), p.name) for p in root.iterdir())
    return ", ".join(f"{name} {size / MIB:.0f}" for size, name in reversed(sizes[-count:]))


def main() -> None:
    """Install each function's dependencies for the Lambda platform and print their size against the limits."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["arm64", "x86_64"], choices=sorted(bl.PLATFORMS))
    parser.add_argument("--python", default=bl.DEFAULT_PYTHON, help="Lambda Python version of the wheels")
    parser.add_argument("--zip", action="store_true", help="also deflate each tree as build_lambdas.py does")
    args = parser.parse_args()

    limit = bl.MAX_UNZIPPED_BYTES
    zipped_column = "zipped MiB | " if args.zip else ""
    print(f"| function | packaging | arch | unzipped MiB | of 250 MiB | {zipped_column}largest (MiB) |")
    print(f"|---|---|---|---|---|{'---|' if args.zip else ''}---|")
    for function in bl.functions():
        packaging = "image" if bl.is_image(function) else "zip"
        for arch in args.arch:
            with tempfile.TemporaryDirectory(prefix=f"size-{function}-") as tmp:
                tree = Path(tmp) / "tree"
                reqs = bl.requirements(function)
                bl.install_wheels(reqs, tree, arch=arch, python=args.python, constraints=REPO / "constraints.txt")
                unzipped = _bytes(tree)
                zipped = ""
                if args.zip:
                    target = Path(tmp) / "deps.zip"
                    bl.write_zip(tree, target)
                    zipped = f"{target.stat().st_size / MIB:.1f} | "
                share = f"{100 * unzipped / limit:.0f} %"
                print(
                    f"| {function} | {packaging} | {arch} | {unzipped / MIB:.1f} | {share} | {zipped}"
                    f"{_largest(tree)} |",
                    flush=True,
                )
    print(f"\npip install --target T --implementation cp --python-version {args.python} --only-binary=:all:")
    print("  --platform manylinux_2_28_<arch> --platform manylinux2014_<arch> --constraint constraints.txt <reqs>")


if __name__ == "__main__":
    main()
