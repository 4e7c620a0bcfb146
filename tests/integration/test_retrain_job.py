"""The retraining job end to end: archive Parquet in moto server S3 -> model artifact and registry entry in S3,
and the Greengrass component-version and deployment calls checked with botocore's Stubber (real request shapes).

moto server is the real S3 API here; Greengrass has no local emulator, so Stubber validates every request
against the service model shipped with botocore.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import msgspec
import pytest
from botocore.stub import ANY, Stubber

from plantwatch.adapters.aws_retrain import RetrainJob, RetrainSettings
from plantwatch.adapters.object_store import S3ObjectStore
from plantwatch.models.registry import ModelRegistry
from tests.unit.lifecycle_support import ARCHIVE_PERIODS, SIM, TRAIN, archive_simulated_readings
from tests.unit.ml_support import require_sklearn

EVENTS = Path(__file__).resolve().parents[1] / "events"
GROUP = "arn:aws:iot:eu-west-1:123456789012:thinggroup/plantwatch-{line}"


def _moto_server_binary() -> str:
    found = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(found).exists():
        message = "moto_server (moto[server], dev extra) is required"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    binary = _moto_server_binary()
    port = 1883
    while port in (1883, 8080):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)  # polling for readiness, not synchronisation by sleeping
        for key, value in {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }.items():
            monkeypatch.setenv(key, value)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stub_greengrass(client: object, lines: list[str]) -> Stubber:
    """Expect, per promoted line model: one component version, then read-modify-write of the line's deployment."""
    stubber = Stubber(client)
    for line in lines:
        name = f"com.plantwatch.model.plant-1.{line}"
        stubber.add_response(
            "create_component_version",
            {
                "arn": f"arn:aws:greengrass:eu-west-1:123456789012:components:{name}:versions:1.0.1",
                "componentName": name,
                "componentVersion": "1.0.1",
                "creationTimestamp": "2026-11-27T00:00:00Z",
                "status": {"componentState": "REQUESTED"},
            },
            {"inlineRecipe": ANY, "clientToken": ANY},
        )
        target = GROUP.format(line=line)
        stubber.add_response(
            "list_deployments",
            {"deployments": [{"targetArn": target, "deploymentId": f"dep-{line}-0", "isLatestForTarget": True}]},
            {"targetArn": target, "historyFilter": "LATEST_ONLY"},
        )
        existing = {"com.plantwatch.gateway": {"componentVersion": "0.3.0"}}
        stubber.add_response(
            "get_deployment",
            {"targetArn": target, "deploymentId": f"dep-{line}-0", "components": existing},
            {"deploymentId": f"dep-{line}-0"},
        )
        stubber.add_response(
            "create_deployment",
            {"deploymentId": f"dep-{line}-1"},
            {
                "targetArn": target,
                "deploymentName": f"{name} 1.0.1",
                "components": {**existing, name: {"componentVersion": "1.0.1"}},
                "deploymentPolicies": ANY,
                "clientToken": ANY,
            },
        )
    stubber.activate()
    return stubber


def test_retraining_job_from_the_s3_archive_to_registry_and_greengrass(tmp_path: Path, moto_endpoint: str) -> None:
    require_sklearn()
    s3 = boto3.client("s3")
    for bucket in ("archive", "models", "artifacts"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    # GIVEN an hour of the plant archived as the stream processor writes it, uploaded under the archive prefix
    archive_simulated_readings(tmp_path / "archive", SIM, 0, 3_600_000)
    for path in sorted((tmp_path / "archive").rglob("*.parquet")):
        s3.upload_file(str(path), "archive", f"compliance/{path.relative_to(tmp_path / 'archive').as_posix()}")
    settings = RetrainSettings.from_env(
        {
            "PLANTWATCH_ARCHIVE_BUCKET": "archive",
            "PLANTWATCH_ARCHIVE_PREFIX": "compliance",
            "PLANTWATCH_REGISTRY_BUCKET": "models",
            "PLANTWATCH_ARTIFACT_BUCKET": "artifacts",
            "PLANTWATCH_THING_GROUP_ARN_TEMPLATE": GROUP,
            "PLANTWATCH_WINDOW_DAYS": "1",
            "PLANTWATCH_TRAIN": msgspec.json.encode(TRAIN).decode(),
            "PLANTWATCH_SIMULATION": msgspec.json.encode(SIM).decode(),
            "PLANTWATCH_PERIODS": msgspec.json.encode(ARCHIVE_PERIODS).decode(),
        }
    )
    greengrass = boto3.client("greengrassv2")
    stubber = _stub_greengrass(greengrass, ["line-1", "line-2"])
    # WHEN the scheduled event fires
    result = RetrainJob(settings, s3=s3, greengrass=greengrass).run(
        json.loads((EVENTS / "eventbridge_scheduled.json").read_text())
    )
    # THEN both line models are trained on the archive, registered in S3 as champions, and published
    stubber.assert_no_pending_responses()
    assert result["status"] == "ok"
    assert result["readings"] == 3600 * SIM.lines * SIM.assets_per_line * 3
    registry = ModelRegistry(S3ObjectStore(s3, "models", "registry"))
    for model in result["models"]:
        assert model["promoted"], model["reason"]
        entry = registry.champion(model["name"])
        assert entry is not None
        assert entry.version == "1"
        assert entry.training_window["end_ms"] < 3_600_000
        loaded = registry.load(model["name"], "1")
        assert loaded.info.training["source"]["kind"] == "s3-archive"
        published = model["published"]
        assert published["recipe"]["ComponentConfiguration"]["DefaultConfiguration"]["sha256"] == entry.sha256
        bucket, key = published["artifact"][5:].split("/", 1)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == registry.artifact_bytes(model["name"], "1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]]
    assert "registry/plant-1.line-1/champion.json" in keys
    assert "registry/plant-1.line-1/versions/1/model.pwf" in keys
    assert "registry/plant-1.line-1/versions/1/report.json" in keys


def test_a_greengrass_request_with_a_wrong_shape_is_refused_by_the_stubber() -> None:
    client = boto3.client("greengrassv2", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_response("create_deployment", {"deploymentId": "d"}, {"targetArn": "arn"})
    stubber.activate()
    with pytest.raises(Exception, match="components"):
        client.create_deployment(targetArn="arn", components={"x": {"version": "1"}})
