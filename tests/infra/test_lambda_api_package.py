"""The analytics API's zip, built by cloud/build_lambdas.py, serves every export format from what it packages: each
format answers 200, or the refusal the cloud app documents; none fails on an import the zip does not hold."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import get_args

import pytest
from infra_tools import load_build_script

from plantwatch.api.cloud import cloud_export_limits
from plantwatch.api.export import ExportFormat

REPO = Path(__file__).resolve().parents[2]
bl = load_build_script()
# What the Lambda Python runtime brings besides the zip (test_build_lambdas.py checks the zip leaves only these out).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")

# Runs inside the unpacked zip: app.py as Lambda loads it, Timestream answering one reading, one export per format.
PROBE = """
import json, sys
import boto3

COLUMNS = [("plant", "VARCHAR"), ("line", "VARCHAR"), ("asset", "VARCHAR"), ("sensor_id", "VARCHAR"),
           ("sensor_type", "VARCHAR"), ("ts_ms", "BIGINT"), ("value", "DOUBLE"), ("score", "DOUBLE"),
           ("anomaly", "BOOLEAN"), ("reasons", "VARCHAR")]
CELLS = ["plant-a", "line-1", "press-1", "plant-a.line-1.press-1.temperature", "temperature", "1764000000000",
         "71.5", "0.9", "true", "threshold.high"]

class Timestream:
    def query(self, **kwargs):
        return {"ColumnInfo": [{"Name": n, "Type": {"ScalarType": t}} for n, t in COLUMNS],
                "Rows": [{"Data": [{"ScalarValue": c} for c in CELLS]}]}

boto3.client = lambda service, **kwargs: Timestream()
import app

answers = {}
for fmt in sys.argv[1:]:
    query = f"plant=plant-a&start=2025-11-24T15:00:00Z&end=2025-11-24T16:00:00Z&format={fmt}"
    event = {
        "version": "2.0", "routeKey": "GET /v1/{proxy+}", "rawPath": "/v1/export", "rawQueryString": query,
        "headers": {"host": "abc123xyz9.execute-api.eu-central-1.amazonaws.com"},
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")),
        "requestContext": {
            "http": {"method": "GET", "path": "/v1/export", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.17"},
            "authorizer": {"jwt": {"claims": {"sub": "operator-a", "token_use": "id", "custom:plants": "plant-a"}}},
            "routeKey": "GET /v1/{proxy+}", "stage": "$default", "requestId": "r-1",
        },
        "isBase64Encoded": False,
    }
    try:
        response = app.handler(event, None)
        answers[fmt] = {"status": response["statusCode"], "body": response["body"][:500]}
    except Exception as exc:  # what Lambda would turn into a 500
        answers[fmt] = {"status": 500, "body": f"{type(exc).__name__}: {exc}"}
print(json.dumps(answers))
"""


def _runtime(site: Path, target: Path) -> Path:
    """A directory holding only what the Lambda runtime provides beyond the zip (links into this venv)."""
    target.mkdir()
    for package in RUNTIME_PACKAGES:
        (target / package).symlink_to(site / package)
    return target


def test_every_export_format_answers_from_the_zip_alone(tmp_path: Path) -> None:
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())
    if arch is None:
        pytest.skip(f"no Lambda architecture matches this machine ({platform.machine()})")
    # GIVEN the zip as deploy builds it, with this machine's wheels (the Lambda's are checked in test_build_lambdas)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = bl.build("analytics_api", tmp_path / "out", arch=arch, python=python)
    tree = tmp_path / "analytics_api"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(tree)
    runtime = _runtime(Path(sysconfig.get_paths()["purelib"]), tmp_path / "runtime")
    formats = list(get_args(ExportFormat))
    # WHEN each format is exported through the handler, with nothing importable but the zip and the runtime
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-c", PROBE, *formats],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tree}:{runtime}", "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    # THEN a format the cloud app serves is served, and one it refuses is refused with its reason: never a 500
    refused = cloud_export_limits().refused_formats
    for fmt in formats:
        if fmt in refused:
            assert answers[fmt]["status"] == 501, answers[fmt]
            assert json.loads(answers[fmt]["body"])["detail"].endswith(refused[fmt])
        else:
            assert answers[fmt]["status"] == 200, f"format={fmt} fails in the packaged Lambda: {answers[fmt]}"
    assert answers["csv"]["body"].splitlines()[1].startswith("plant-a,line-1,press-1,"), answers["csv"]
