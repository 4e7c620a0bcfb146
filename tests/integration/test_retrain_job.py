"""The retraining job end to end: archive Parquet in moto server S3 -> model artifact and registry entry in S3,
the Greengrass component-version and deployment calls checked with botocore's Stubber (real request shapes),
and what a run could not retrain reported to moto server's SQS failure queue.

moto server is the real S3 and SQS API here; Greengrass has no local emulator, so Stubber validates every
request against the service model shipped with botocore.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from plantwatch.adapters.archive_reader import SAMPLE_BLOCK_MS
from plantwatch.adapters.aws_retrain import (
    DEPLOYMENT_FAILED,
    FAN_OUT_SOURCE,
    NO_DATA,
    NO_GATEWAY,
    NO_LABELLED_SET,
    NO_THING_GROUP,
    RETRAIN_ERROR,
    UNREADABLE,
    RetrainIncompleteError,
    RetrainJob,
    RetrainSettings,
)
from plantwatch.adapters.object_store import S3ObjectStore
from plantwatch.domain.simulator import SimulationConfig
from plantwatch.models import registry as registry_module
from plantwatch.models.registry import Decision, ModelRegistry
from tests.greengrass_stubs import (
    GROUP,
    expect_create,
    expect_current,
    expect_deploy,
    expect_no_deployment,
    expect_outcomes,
    expect_state,
    expect_versions,
    model_recipe,
    stub_rollout,
    stub_rollouts,
)
from tests.helpers import drift_event
from tests.moto import moto_server
from tests.unit.lifecycle_support import ARCHIVE_PERIODS, SIM, TRAIN, archive_simulated_readings
from tests.unit.ml_support import require_sklearn

EVENTS = Path(__file__).resolve().parents[1] / "events"
HOUR_MS = 3_600_000
JOB_LOGGER = "plantwatch.adapters.aws_retrain"  # the job's own records: what other loggers say is not under test


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server() as url:
        for key, value in {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }.items():
            monkeypatch.setenv(key, value)
        yield url


@pytest.fixture
def aws(moto_endpoint: str) -> dict[str, Any]:
    """Buckets for the archive, the registry and the artifacts, and the failure queue, on the moto server."""
    s3 = boto3.client("s3")
    for bucket in ("archive", "models", "artifacts"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="plantwatch-retrain-failures")["QueueUrl"]
    return {
        "s3": s3,
        "sqs": sqs,
        "queue": queue,
        "greengrass": boto3.client("greengrassv2"),
        "iot": boto3.client("iot"),
    }


def _archive(aws: dict[str, Any], tmp_path: Path, sim: SimulationConfig) -> None:
    """An hour of ``sim``'s plant archived as the stream processor writes it, uploaded under the archive prefix."""
    root = tmp_path / f"archive-{sim.plant}"
    archive_simulated_readings(root, sim, 0, HOUR_MS)
    for path in sorted(root.rglob("*.parquet")):
        aws["s3"].upload_file(str(path), "archive", f"compliance/{path.relative_to(root).as_posix()}")


def _settings(
    aws: dict[str, Any], *, plants: str, lines: str = "line-1,line-2", queue: bool = True, sim: SimulationConfig = SIM
) -> RetrainSettings:
    env = {
        "PLANTWATCH_ARCHIVE_BUCKET": "archive",
        "PLANTWATCH_ARCHIVE_PREFIX": "compliance",
        "PLANTWATCH_REGISTRY_BUCKET": "models",
        "PLANTWATCH_ARTIFACT_BUCKET": "artifacts",
        "PLANTWATCH_THING_GROUP_ARN_TEMPLATE": GROUP,
        "PLANTWATCH_LINES": lines,
        "PLANTWATCH_PLANTS": plants,
        "PLANTWATCH_WINDOW_DAYS": "1",
        "PLANTWATCH_TRAIN": msgspec.json.encode(TRAIN).decode(),
        "PLANTWATCH_SIMULATION": msgspec.json.encode(sim).decode(),
        "PLANTWATCH_PERIODS": msgspec.json.encode(ARCHIVE_PERIODS).decode(),
    }
    if queue:
        env["PLANTWATCH_FAILURE_QUEUE_URL"] = aws["queue"]
    return RetrainSettings.from_env(env)


def _job(aws: dict[str, Any], settings: RetrainSettings) -> RetrainJob:
    sqs = aws["sqs"] if settings.failure_queue_url else None
    return RetrainJob(settings, s3=aws["s3"], greengrass=aws["greengrass"], iot=aws["iot"], sqs=sqs)


def _queued(aws: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(ErrorCode, ErrorMessage, replay event) of every message on the failure queue."""
    found = []
    while True:
        messages = (
            aws["sqs"]
            .receive_message(
                QueueUrl=aws["queue"], MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            )
            .get("Messages", [])
        )
        if not messages:
            return found
        for m in messages:
            attributes = m["MessageAttributes"]
            found.append(
                (
                    attributes["ErrorCode"]["StringValue"],
                    attributes["ErrorMessage"]["StringValue"],
                    json.loads(m["Body"]),
                )
            )
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=m["ReceiptHandle"])


def _registered(aws: dict[str, Any]) -> set[str]:
    """Model names with anything in the registry."""
    listed = aws["s3"].list_objects_v2(Bucket="models").get("Contents", [])
    return {o["Key"].split("/")[1] for o in listed}


def _scheduled() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge_scheduled.json").read_text())
    return event


def test_retraining_job_from_the_s3_archive_to_registry_and_greengrass(tmp_path: Path, aws: dict[str, Any]) -> None:
    require_sklearn()
    # GIVEN an hour of plant-1 archived, and plant-1 the configured plant
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1")
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-1", "line-2"])
    # WHEN the scheduled event fires
    result = _job(aws, settings).run(_scheduled())
    # THEN both line models are trained on the archive, registered in S3 as champions, and published
    stubber.assert_no_pending_responses()
    assert result["status"] == "ok", result["problems"]
    [run] = result["runs"]
    assert run["plant"] == "plant-1"
    assert run["readings"] == 3600 * SIM.lines * SIM.assets_per_line * 3
    s3 = aws["s3"]
    registry = ModelRegistry(S3ObjectStore(s3, "models", "registry"))
    assert [m["name"] for m in run["models"]] == ["plant-1.line-1", "plant-1.line-2"]
    for model in run["models"]:
        assert model["promoted"], model["reason"]
        entry = registry.champion(model["name"])
        assert entry is not None
        assert entry.version == "1"
        assert entry.training_window["end_ms"] < HOUR_MS
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
    assert _queued(aws) == [], "a complete run reports nothing"


def test_the_schedule_retrains_each_configured_plant_from_its_own_archive_and_reports_one_without_data(
    tmp_path: Path, aws: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    require_sklearn()
    # GIVEN plant-2's hour archived (nothing of plant-1 or plant-3), and plants 2 and 3 configured
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-2"))
    settings = _settings(aws, plants="plant-2,plant-3")
    stubber = stub_rollout(aws["greengrass"], "plant-2", ["line-1", "line-2"])
    # WHEN the scheduled event fires
    with caplog.at_level(logging.ERROR, logger="plantwatch.adapters.aws_retrain"):
        result = _job(aws, settings).run(_scheduled())
    # THEN plant-2's lines are trained on plant-2's archive, registered and deployed
    stubber.assert_no_pending_responses()
    plant2, plant3 = result["runs"]
    assert (plant2["plant"], plant2["status"]) == ("plant-2", "ok")
    assert plant2["readings"] == 3600 * SIM.lines * SIM.assets_per_line * 3
    assert all(m["promoted"] for m in plant2["models"])
    assert _registered(aws) == {"plant-2.line-1", "plant-2.line-2"}
    # AND plant-3, with nothing archived in the window, is not a quiet success: the run failed, an error is
    # logged, and the failure queue holds an event that replays exactly that plant's window
    assert (plant3["plant"], plant3["status"], plant3["readings"]) == ("plant-3", "no-data", 0)
    assert result["status"] == "failed"
    [problem] = result["problems"]
    assert (problem["code"], problem["plant"]) == (NO_DATA, "plant-3")
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == JOB_LOGGER]
    assert [r.getMessage() for r in logged] == [problem["message"]]
    assert "plant 'plant-3'" in problem["message"]
    [(code, message, replay)] = _queued(aws)
    assert (code, message) == (NO_DATA, problem["message"])
    assert replay == {
        "source": "plantwatch.retrain",
        "plant": "plant-3",
        "start": "1969-12-31T01:00:00Z",
        "end": "1970-01-01T01:00:00Z",
    }


def test_a_drift_event_retrains_the_drifted_plants_line_only(tmp_path: Path, aws: dict[str, Any]) -> None:
    require_sklearn()
    # GIVEN plant-2's two lines archived, a job configured for plants 1 and 2, and the event the stream processor
    # sends when plant-2's line-2 drifted
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-2"))
    settings = _settings(aws, plants="plant-1,plant-2")
    event = drift_event("plant-2", "line-2", window_end_ms=HOUR_MS)  # as Lambda hands it over
    stubber = stub_rollout(aws["greengrass"], "plant-2", ["line-2"])
    # WHEN the job handles it
    result = _job(aws, settings).run(event)
    # THEN plant-2's line-2 alone is read, trained, registered and deployed to line-2's thing group
    stubber.assert_no_pending_responses()
    assert result["status"] == "ok", result["problems"]
    [run] = result["runs"]
    assert (run["plant"], run["line"]) == ("plant-2", "line-2")
    assert run["readings"] == 3600 * SIM.assets_per_line * 3, "only the drifted line's partition is read"
    assert [m["name"] for m in run["models"]] == ["plant-2.line-2"]
    assert _registered(aws) == {"plant-2.line-2"}
    assert result["end_ms"] == HOUR_MS
    assert _queued(aws) == []


def test_a_line_busier_than_its_read_budget_is_trained_on_whole_sampled_blocks_and_says_so(
    tmp_path: Path, aws: dict[str, Any]
) -> None:
    require_sklearn()
    # GIVEN an hour of line-2 archived (21,600 readings) and a job that keeps at most 15,000 readings a line
    _archive(aws, tmp_path, SIM)
    settings = msgspec.structs.replace(_settings(aws, plants="plant-1"), max_readings_per_line=15_000)
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-2"])
    # WHEN line-2's drift event is handled
    result = _job(aws, settings).run(drift_event("plant-1", "line-2", window_end_ms=HOUR_MS))
    # THEN every reading was read, whole 15-minute blocks of them were kept, and the model's source says which
    stubber.assert_no_pending_responses()
    assert result["status"] == "ok", result["problems"]
    [run] = result["runs"]
    line_hour = 3600 * SIM.assets_per_line * 3
    assert run["readings"] == line_hour
    assert run["sampled_lines"] == ["line-2"]
    [model] = run["models"]
    source = ModelRegistry(S3ObjectStore(aws["s3"], "models", "registry")).load(model["name"], "1").info.training
    sample = source["source"]["sample"]
    assert sample == {"block_ms": SAMPLE_BLOCK_MS, "blocks": 4, "kept": 2, "read": line_hour}
    assert source["source"]["readings"] == line_hour // 2  # two blocks of 5,400 fit 15,000; three would not


def test_plants_that_name_their_lines_alike_each_deploy_to_their_own_lines_groups(
    tmp_path: Path, aws: dict[str, Any]
) -> None:
    require_sklearn()
    # GIVEN two plants archived, both with a line-1 and a line-2
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-1"))
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-2"))
    pairs = [("plant-1", "line-1"), ("plant-1", "line-2"), ("plant-2", "line-1"), ("plant-2", "line-2")]
    stubber = stub_rollouts(aws["greengrass"], pairs)
    # WHEN the schedule retrains both
    result = _job(aws, _settings(aws, plants="plant-1,plant-2")).run(_scheduled())
    # THEN each plant's line model is deployed to that plant's line group only (Stubber checks every targetArn):
    # plant-1's line-1 model never reaches plant-2's line-1 gateways
    stubber.assert_no_pending_responses()
    assert result["status"] == "ok", result["problems"]
    targets = {
        m["name"]: [d["targetArn"] for d in m["published"]["deployments"]]
        for run in result["runs"]
        for m in run["models"]
    }
    assert targets == {f"{p}.{line}": [GROUP.format(plant=p, line=line)] for p, line in pairs}
    assert len({t for ts in targets.values() for t in ts}) == 4


def test_a_drift_event_of_a_plant_without_thing_groups_deploys_nowhere(tmp_path: Path, aws: dict[str, Any]) -> None:
    require_sklearn()
    # GIVEN plant-2's lines archived, and thing groups for plant-1's line-1 and line-2 only (plants: plant-1)
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-2"))
    settings = _settings(aws, plants="plant-1")
    stubber = stub_rollouts(aws["greengrass"], [])  # any Greengrass call fails the test
    # WHEN plant-2's line-2 drifts
    result = _job(aws, settings).run(drift_event("plant-2", "line-2", window_end_ms=HOUR_MS))
    # THEN nothing is trained or deployed (plant-1's line-2 group is not plant-2's), and the refusal is reported
    stubber.assert_no_pending_responses()
    assert _registered(aws) == set()
    assert result["status"] == "failed"
    [problem] = result["problems"]
    assert (problem["code"], problem["plant"], problem["line"]) == (NO_THING_GROUP, "plant-2", "line-2")
    assert "this plant's lines with one: none, the plant is not in plants" in problem["message"]


def test_a_line_whose_group_runs_no_gateway_waits_and_gets_its_champion_once_it_does(
    tmp_path: Path, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sklearn()
    # GIVEN plant-1's two lines archived, and line-2's thing group new: no gateway deployed to it yet
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1")
    stubber = Stubber(aws["greengrass"])
    components = expect_current(stubber, "line-1")
    expect_versions(stubber, ["0.1.0"])
    expect_create(stubber, "1.0.1")
    expect_deploy(stubber, "line-1", "1.0.1", components)
    expect_no_deployment(stubber, "line-2")  # and nothing else for line-2: Stubber refuses any other call
    stubber.activate()
    # WHEN the schedule fires
    result = _job(aws, settings).run(_scheduled())
    stubber.assert_no_pending_responses()
    stubber.deactivate()
    # THEN line-2's model is its champion but gets no model-only deployment (that would remove the gateway from
    # devices already in the group); the run failed loudly, with an event that retries line-2
    registry = ModelRegistry(S3ObjectStore(aws["s3"], "models", "registry"))
    champion = registry.champion("plant-1.line-2")
    assert champion is not None and champion.version == "1"
    [run] = result["runs"]
    assert (run["status"], run["waiting_lines"]) == ("partial", ["line-2"])
    assert result["status"] == "failed"
    [problem] = result["problems"]
    assert (problem["code"], problem["line"]) == (NO_GATEWAY, "line-2")
    assert GROUP.format(plant="plant-1", line="line-2") in problem["message"]
    [(code, _, replay)] = _queued(aws)
    assert (code, replay["plant"], replay["line"]) == (NO_GATEWAY, "plant-1", "line-2")
    # WHEN the gateway has been deployed to line-2's group and the event is replayed, with a challenger that loses
    monkeypatch.setattr(
        registry_module, "compare", lambda challenger, champion: Decision(promote=False, reason="worse")
    )
    stubber = Stubber(aws["greengrass"])
    components = expect_current(stubber, "line-2")
    expect_versions(stubber, ["1.0.1", "0.1.0"], {"1.0.1": model_recipe("1.0.1", "plant-1.line-1", "0" * 64)})
    expect_create(stubber, "1.0.2")
    expect_deploy(stubber, "line-2", "1.0.2", components)
    stubber.activate()
    again = _job(aws, settings).run(replay)
    # THEN the champion, not the losing challenger, reaches line-2
    stubber.assert_no_pending_responses()
    assert again["status"] == "ok", again["problems"]
    [model] = again["runs"][0]["models"]
    assert (model["name"], model["version"], model["promoted"]) == ("plant-1.line-2", "2", False)
    configuration = model["published"]["recipe"]["ComponentConfiguration"]["DefaultConfiguration"]
    assert (configuration["modelVersion"], configuration["sha256"]) == ("1", champion.sha256)
    assert registry.entry("plant-1.line-2", "2").status == "rejected"
    assert _queued(aws) == []


def test_a_champion_whose_deployment_failed_on_gateways_is_reported_each_run_not_taken_as_running(
    tmp_path: Path, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sklearn()
    # GIVEN plant-1's line-2 retrained and its champion deployed (as 1.0.1)
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1", lines="line-2")
    event = drift_event("plant-1", "line-2", window_end_ms=HOUR_MS)
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-2"])
    assert _job(aws, settings).run(event)["status"] == "ok"
    stubber.assert_no_pending_responses()
    stubber.deactivate()
    champion = ModelRegistry(S3ObjectStore(aws["s3"], "models", "registry")).champion("plant-1.line-2")
    assert champion is not None
    monkeypatch.setattr(  # every later run's challenger loses: the champion, 1.0.1 on line-2, is published again
        registry_module, "compare", lambda challenger, champion: Decision(promote=False, reason="worse")
    )

    def run_again(outcomes: Callable[[Stubber], None]) -> dict[str, Any]:
        """A run that finds line-2 running the champion already; ``outcomes`` stubs the IoT job's reads."""
        stubber, iot = Stubber(aws["greengrass"]), Stubber(aws["iot"])
        expect_current(stubber, "line-2", model_version="1.0.1")
        expect_versions(stubber, ["1.0.1", "0.1.0"], {"1.0.1": model_recipe("1.0.1", champion.name, champion.sha256)})
        expect_state(stubber, "1.0.1")
        outcomes(iot)
        with stubber, iot:
            result = _job(aws, settings).run(event)
            stubber.assert_no_pending_responses()
            iot.assert_no_pending_responses()
        return result

    # WHEN that deployment failed on two of the line's three gateways
    result = run_again(
        lambda iot: expect_outcomes(
            iot,
            "line-2",
            {"gw-b": "FAILED", "gw-c": "FAILED"},
            members=["gw-a", "gw-b", "gw-c"],
            detail={"gw-c": "FAILED_UNABLE_TO_ROLLBACK"},
        )
    )
    # THEN nothing is deployed (the same deployment would fail again), and the run fails loudly, naming the
    # gateways and Greengrass's reasons, with the failure queued
    assert result["status"] == "failed"
    [run] = result["runs"]
    assert (run["status"], run["failed_lines"]) == ("partial", ["line-2"])
    [problem] = result["problems"]
    assert (problem["code"], problem["line"]) == (DEPLOYMENT_FAILED, "line-2")
    assert "gw-b FAILED (FAILED_ROLLBACK_COMPLETE: it went back to its previous model)" in problem["message"]
    assert "gw-c FAILED (FAILED_UNABLE_TO_ROLLBACK: its rollback failed and it MAY NOT BE SCORING" in problem["message"]
    assert "sha256 does not match on gw-b" in problem["message"]
    assert "gw-a" not in problem["message"]
    [(code, message, replay)] = _queued(aws)
    assert (code, message, replay["line"]) == (DEPLOYMENT_FAILED, problem["message"], "line-2")
    # WHEN the next run may not read the IoT job (a denied or throttled read)
    again = run_again(
        lambda iot: iot.add_client_error("list_job_executions_for_job", "ThrottlingException", http_status_code=400)
    )
    # THEN the run goes on and says the line's outcome was not checked; nothing is queued (the next run reads again)
    assert again["status"] == "ok", again["problems"]
    assert list(again["runs"][0]["unchecked_lines"]) == ["line-2"]
    assert "ThrottlingException" in again["runs"][0]["unchecked_lines"]["line-2"]
    assert _queued(aws) == []


def test_a_line_without_a_thing_group_is_refused_before_anything_is_trained_or_registered(
    tmp_path: Path, aws: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    require_sklearn()
    # GIVEN readings of plant-1's line-1 and line-2, and a thing group for its line-1 only
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1", lines="line-1")
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-1"])
    # WHEN the scheduled event fires
    with caplog.at_level(logging.ERROR, logger="plantwatch.adapters.aws_retrain"):
        result = _job(aws, settings).run(_scheduled())
    # THEN line-1 is retrained and deployed; line-2 has no model version of any status, no artifact, no call
    stubber.assert_no_pending_responses()
    [run] = result["runs"]
    assert (run["status"], run["refused_lines"]) == ("partial", ["line-2"])
    assert [m["name"] for m in run["models"]] == ["plant-1.line-1"]
    assert _registered(aws) == {"plant-1.line-1"}
    artifacts = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="artifacts").get("Contents", [])]
    assert not [k for k in artifacts if "line-2" in k]
    # AND the refusal is loud: the run failed, an error names the line, the queue can replay it once fixed
    assert result["status"] == "failed"
    [problem] = result["problems"]
    assert (problem["code"], problem["line"]) == (NO_THING_GROUP, "line-2")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == JOB_LOGGER] == [
        problem["message"]
    ]
    [(code, _, replay)] = _queued(aws)
    assert code == NO_THING_GROUP
    assert (replay["plant"], replay["line"]) == ("plant-1", "line-2")


def test_a_line_the_labelled_set_does_not_cover_is_reported_and_the_others_are_retrained(
    tmp_path: Path, aws: dict[str, Any]
) -> None:
    require_sklearn()
    # GIVEN readings and thing groups of plant-1's line-1 and line-2, and a simulated (labelled) plant of line-1 only
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1", sim=msgspec.structs.replace(SIM, lines=1))
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-1"])
    # WHEN the scheduled event fires
    result = _job(aws, settings).run(_scheduled())
    # THEN line-1 is retrained and deployed; line-2, which no labelled fault could judge, has nothing registered
    stubber.assert_no_pending_responses()
    [run] = result["runs"]
    assert (run["status"], run["unjudged_lines"]) == ("partial", ["line-2"])
    assert [m["name"] for m in run["models"]] == ["plant-1.line-1"]
    assert _registered(aws) == {"plant-1.line-1"}
    # AND it is reported and queued for that line alone
    [problem] = result["problems"]
    assert (problem["code"], problem["line"]) == (NO_LABELLED_SET, "line-2")
    assert "holds no fault episodes of its assets (line-2-asset-1, line-2-asset-2)" in problem["message"]
    [(code, _, replay)] = _queued(aws)
    assert (code, replay["line"]) == (NO_LABELLED_SET, "line-2")


def test_in_lambda_a_scheduled_run_invokes_the_function_once_per_plant_and_line(
    tmp_path: Path, aws: dict[str, Any]
) -> None:
    require_sklearn()
    # GIVEN plant-1 archived with line-1 and line-2, thing groups for line-1 only, and the job running in Lambda
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1,plant-2", lines="line-1")
    client = boto3.client("lambda")
    invokes = Stubber(client)
    window = {"start": "1969-12-25T01:00:00Z", "end": "1970-01-01T01:00:00Z"}
    for plant in ("plant-1", "plant-2"):
        event = {"source": FAN_OUT_SOURCE, "plant": plant, "line": "line-1", **window}
        expected = {
            "FunctionName": "plantwatch-retrain",
            "InvocationType": "Event",
            "Payload": json.dumps(event).encode(),
        }
        invokes.add_response("invoke", {"StatusCode": 202}, expected)
    job = RetrainJob(
        settings, s3=aws["s3"], greengrass=aws["greengrass"], iot=aws["iot"], sqs=aws["sqs"],
        fan_out=(client, "plantwatch-retrain"),
    )  # fmt: skip
    # WHEN the schedule fires
    with invokes:
        result = job.run({**_scheduled(), "time": window["end"], "start": window["start"]})
    # THEN each configured plant's line is one asynchronous invocation over the same window, and nothing is trained
    invokes.assert_no_pending_responses()
    assert result["invoked"] == [{"plant": "plant-1", "line": "line-1"}, {"plant": "plant-2", "line": "line-1"}]
    assert _registered(aws) == set()
    # AND the archived line without a thing group is reported by this run, as a plant's run reports it
    [problem] = result["problems"]
    assert (result["status"], problem["code"], problem["line"]) == ("failed", NO_THING_GROUP, "line-2")
    # AND one invocation's event retrains that plant's line alone, on the window the schedule chose
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-1"])
    event = {"source": FAN_OUT_SOURCE, "plant": "plant-1", "line": "line-1", "start": "1970-01-01T00:00:00Z"}
    [run] = job.run({**event, "end": "1970-01-01T01:00:00Z"})["runs"]
    stubber.assert_no_pending_responses()
    assert (run["line"], [m["name"] for m in run["models"]]) == ("line-1", ["plant-1.line-1"])


def test_fanning_out_without_a_failure_queue_is_refused_at_cold_start(aws: dict[str, Any]) -> None:
    settings = _settings(aws, plants="plant-1", queue=False)
    with pytest.raises(ValueError, match="fanning out one invocation per line needs PLANTWATCH_FAILURE_QUEUE_URL"):
        RetrainJob(
            settings, s3=aws["s3"], greengrass=aws["greengrass"], iot=aws["iot"],
            fan_out=(boto3.client("lambda"), "plantwatch-retrain"),
        )  # fmt: skip


def test_a_fanned_out_invocation_that_lambda_refuses_is_reported_and_the_others_are_made(aws: dict[str, Any]) -> None:
    settings = _settings(aws, plants="plant-1", lines="line-1,line-2")
    client = boto3.client("lambda")
    invokes = Stubber(client)
    invokes.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    invokes.add_response("invoke", {"StatusCode": 202})
    job = RetrainJob(
        settings, s3=aws["s3"], greengrass=aws["greengrass"], iot=aws["iot"], sqs=aws["sqs"],
        fan_out=(client, "plantwatch-retrain"),
    )  # fmt: skip
    with invokes:
        result = job.run(_scheduled())
    assert result["invoked"] == [{"plant": "plant-1", "line": "line-2"}]
    [problem] = result["problems"]
    assert (problem["code"], problem["line"]) == (RETRAIN_ERROR, "line-1")
    assert "TooManyRequestsException" in problem["message"]
    [(code, _, replay)] = _queued(aws)
    assert (code, replay["plant"], replay["line"]) == (RETRAIN_ERROR, "plant-1", "line-1")


def test_lines_named_unlike_the_thing_groups_train_nothing(tmp_path: Path, aws: dict[str, Any]) -> None:
    require_sklearn()
    # GIVEN the gateways' lines "line-1"/"line-2" and thing groups made for "line1"/"line2"
    _archive(aws, tmp_path, SIM)
    settings = _settings(aws, plants="plant-1", lines="line1,line2")
    stubber = stub_rollout(aws["greengrass"], "plant-1", [])  # any Greengrass call fails the test
    # WHEN the scheduled event fires
    result = _job(aws, settings).run(_scheduled())
    # THEN nothing is trained, registered or deployed, and each line is reported
    stubber.assert_no_pending_responses()
    assert result["runs"][0]["status"] == "refused"
    assert _registered(aws) == set()
    assert sorted((code, replay["line"]) for code, _, replay in _queued(aws)) == [
        (NO_THING_GROUP, "line-1"),
        (NO_THING_GROUP, "line-2"),
    ]


def test_a_drift_event_for_a_plant_with_nothing_archived_is_reported(
    aws: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an empty archive and the drift event of plant-7's line-3
    settings = _settings(aws, plants="plant-1")
    event = {"source": "plantwatch.drift", "plant": "plant-7", "line": "line-3", "end": "1970-01-02T00:00:00Z"}
    # WHEN the job handles it
    with caplog.at_level(logging.ERROR, logger="plantwatch.adapters.aws_retrain"):
        result = _job(aws, settings).run(event)
    # THEN it failed, said so at error level, and queued the event to replay that plant's line
    assert result["status"] == "failed"
    assert result["runs"][0]["status"] == "no-data"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == JOB_LOGGER]
    assert "plant 'plant-7' line 'line-3'" in record.getMessage()
    [(code, _, replay)] = _queued(aws)
    assert code == NO_DATA
    assert replay == {
        "source": "plantwatch.retrain",
        "plant": "plant-7",
        "line": "line-3",
        "start": "1970-01-01T00:00:00Z",
        "end": "1970-01-02T00:00:00Z",
    }
    # AND that replayed event is one the job accepts (still nothing there: reported again, not swallowed)
    again = _job(aws, settings).run(replay)
    assert again["status"] == "failed"
    assert (again["start_ms"], again["end_ms"]) == (result["start_ms"], result["end_ms"])
    assert [code for code, _, _ in _queued(aws)] == [NO_DATA]


def test_without_a_failure_queue_a_run_that_finds_nothing_raises(aws: dict[str, Any]) -> None:
    # GIVEN a job with no failure queue to report to, and an empty archive
    job = _job(aws, _settings(aws, plants="plant-1,plant-2", queue=False))
    # WHEN the schedule fires THEN the run fails (the Lambda's Errors alarm, retries, then its dead-letter queue)
    with pytest.raises(RetrainIncompleteError, match=r"plant 'plant-1'.*plant 'plant-2'"):
        job.run(_scheduled())


def test_the_job_refuses_an_sqs_client_without_a_queue_and_the_reverse(aws: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="FAILURE_QUEUE_URL"):
        RetrainJob(
            _settings(aws, plants="plant-1", queue=False), s3=aws["s3"], greengrass=None, iot=None, sqs=aws["sqs"]
        )
    with pytest.raises(ValueError, match="FAILURE_QUEUE_URL"):
        RetrainJob(_settings(aws, plants="plant-1"), s3=aws["s3"], greengrass=None, iot=None, sqs=None)


def test_a_greengrass_request_with_a_wrong_shape_is_refused_by_the_stubber() -> None:
    client = boto3.client("greengrassv2", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_response("create_deployment", {"deploymentId": "d"}, {"targetArn": "arn"})
    stubber.activate()
    with pytest.raises(Exception, match="components"):
        client.create_deployment(targetArn="arn", components={"x": {"version": "1"}})


def test_a_line_whose_retraining_raises_is_reported_and_the_other_lines_and_plants_go_on(
    tmp_path: Path, aws: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    require_sklearn()
    # GIVEN plants 1 and 2 archived, and reading plant-1's archive denied (a bucket policy, a KMS key grant)
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-1"))
    _archive(aws, tmp_path, msgspec.structs.replace(SIM, plant="plant-2"))
    stubber = stub_rollout(aws["greengrass"], "plant-2", ["line-1", "line-2"])
    job = _job(aws, _settings(aws, plants="plant-1,plant-2"))
    get = job.archive.get

    def denied(key: str) -> bytes | None:
        if "plant=plant-1/" in key:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
        return get(key)

    job.archive.get = denied  # type: ignore[method-assign]
    # WHEN the schedule retrains both
    with caplog.at_level(logging.ERROR, logger=JOB_LOGGER):
        result = job.run(_scheduled())
    # THEN plant-2 is retrained and deployed all the same; each of plant-1's lines' failure is logged, returned
    # (not raised, so Lambda does not re-run every plant) and queued as an event that retries that line alone
    stubber.assert_no_pending_responses()
    plant1, plant2 = result["runs"]
    assert (plant1["plant"], plant1["status"], plant1["error_lines"]) == ("plant-1", "error", ["line-1", "line-2"])
    assert (plant2["plant"], plant2["status"]) == ("plant-2", "ok")
    assert _registered(aws) == {"plant-2.line-1", "plant-2.line-2"}
    assert result["status"] == "failed"
    problems = result["problems"]
    assert [(p["code"], p["plant"], p["line"]) for p in problems] == [
        (RETRAIN_ERROR, "plant-1", "line-1"),
        (RETRAIN_ERROR, "plant-1", "line-2"),
    ]
    assert all("AccessDenied" in p["message"] for p in problems)
    queued = _queued(aws)
    assert [code for code, _, _ in queued] == [RETRAIN_ERROR, RETRAIN_ERROR]
    assert sorted((replay["plant"], replay["line"]) for _, _, replay in queued) == [
        ("plant-1", "line-1"),
        ("plant-1", "line-2"),
    ]
    assert any(r.name == JOB_LOGGER and r.exc_info for r in caplog.records), "the traceback is logged"


def test_an_unreadable_archive_object_is_left_out_and_reported_and_the_rest_is_trained(
    tmp_path: Path, aws: dict[str, Any]
) -> None:
    require_sklearn()
    # GIVEN plant-1 archived (one object per line), and line-2's object damaged (bit rot, a bad upload)
    _archive(aws, tmp_path, SIM)
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="archive")["Contents"] if "line=line-2/" in o["Key"]]
    damaged = sorted(keys)[0]
    aws["s3"].put_object(Bucket="archive", Key=damaged, Body=b"PAR1 not parquet")
    stubber = stub_rollout(aws["greengrass"], "plant-1", ["line-1"])
    # WHEN the schedule retrains it
    result = _job(aws, _settings(aws, plants="plant-1")).run(_scheduled())
    # THEN line-1 is retrained and deployed, and the damaged object takes nothing else down
    stubber.assert_no_pending_responses()
    [run] = result["runs"]
    assert [m["name"] for m in run["models"]] == ["plant-1.line-1"]
    assert (run["status"], run["unreadable_objects"]) == ("partial", 1)
    # AND the object left out is named, counted and queued, so nobody mistakes the model for one of every reading
    [problem] = result["problems"]
    assert problem["code"] == UNREADABLE
    assert damaged.removeprefix("compliance/") in problem["message"]
    assert "1 archive object(s) of plant 'plant-1'" in problem["message"]
    [(code, _, replay)] = _queued(aws)
    assert (code, replay["plant"]) == (UNREADABLE, "plant-1")


def test_the_s3_registrys_champion_is_written_with_s3s_conditional_write(aws: dict[str, Any]) -> None:
    store = S3ObjectStore(aws["s3"], "models", "registry")
    key = "plant-1.line-1/champion.json"
    # a new key: If-None-Match, refused once it exists
    assert store.put_if(key, b'{"version":"1"}', None)
    assert not store.put_if(key, b'{"version":"2"}', None)
    tagged = store.get_tagged(key)
    assert tagged is not None and tagged[0] == b'{"version":"1"}'
    # an existing key: If-Match on the ETag read; a stale ETag is refused and changes nothing
    assert store.put_if(key, b'{"version":"2"}', tagged[1])
    assert not store.put_if(key, b'{"version":"3"}', tagged[1])
    assert store.get(key) == b'{"version":"2"}'
    assert not store.put_if("plant-1.line-1/absent.json", b"x", tagged[1])  # If-Match on no object: NoSuchKey
    with pytest.raises(aws["s3"].exceptions.NoSuchBucket):  # other errors are raised, not taken for a refusal
        S3ObjectStore(aws["s3"], "no-such-bucket").put_if(key, b"x", None)


def test_of_two_promotions_in_the_s3_registry_at_the_same_moment_the_second_write_is_refused(
    aws: dict[str, Any],
) -> None:
    from plantwatch.models.pipeline import train_on_simulator
    from plantwatch.models.trainer import with_training
    from tests.unit.lifecycle_support import PERIODS

    require_sklearn()
    model = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS).models["plant-1.line-2"]
    name, rival = model.info.name, ModelRegistry(S3ObjectStore(aws["s3"], "models", "registry"))

    class Racing(S3ObjectStore):
        """Another job promotes version 2 after this promotion read champion.json and before it writes it."""

        raced = False

        def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
            if not self.raced and key.endswith("champion.json"):
                self.raced = True
                rival.promote(name, "2", "the other job")
            return super().put_if(key, data, tag)

    registry = ModelRegistry(Racing(aws["s3"], "models", "registry"))
    for version in ("1", "2", "3"):
        rival.register(with_training(model, {}, version=version), metrics={})
    rival.promote(name, "1", "first")
    with pytest.raises(registry_module.ChampionChangedError, match="at the same moment"):
        registry.promote(name, "3", "this job", over="1")
    assert [rival.entry(name, v).status for v in ("1", "2", "3")] == ["retired", "champion", "candidate"]
    assert json.loads(aws["s3"].get_object(Bucket="models", Key=f"registry/{name}/champion.json")["Body"].read()) == {
        "version": "2",
        "sha256": rival.entry(name, "2").sha256,
        "pinned": False,
    }
