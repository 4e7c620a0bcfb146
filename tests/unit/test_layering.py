"""The pure core imports no cloud SDK, database driver or network client: only adapters may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "plantwatch"
PURE = ["contract", "domain", "services", "models"]
FORBIDDEN = {
    "asyncua", "amqtt", "awscrt", "awsiot", "boto3", "botocore", "duckdb", "fastapi", "httpx", "mangum",
    "paho", "pyarrow", "pymodbus", "requests", "socket", "sqlite3", "urllib", "uvicorn", "aws_lambda_powertools",
}  # fmt: skip


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", [p for d in PURE for p in sorted((PACKAGE / d).rglob("*.py"))], ids=str)
def test_pure_modules_import_no_io_libraries(path: Path) -> None:
    assert imported_roots(path) & FORBIDDEN == set()


def test_the_check_sees_io_imports() -> None:
    assert {"duckdb", "pyarrow"} <= imported_roots(PACKAGE / "adapters" / "duckdb_store.py")
