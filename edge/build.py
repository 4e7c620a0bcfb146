"""GDK custom build command: builds greengrass-build/ from this checkout, with nothing but Python installed."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from plantwatch.edge.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--root", str(ROOT), *sys.argv[1:]]))
