"""Drift in the cloud: summaries in DynamoDB (moto server, a table shaped like cloud/terraform/drift.tf), the
stream processor's asynchronous invoke of the retrain Lambda (botocore Stubber against Lambda's real request
shape: moto's Lambda invoke needs Docker), the retrain job's drift event, and GET /v1/models through Mangum."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import msgspec
import pytest
from botocore.stub import ANY, Stubber
from mangum import Mangum

from plantwatch.adapters.dynamo_drift_writer import DynamoDBDrift
from plantwatch.adapters.lambda_retrain import LambdaRetrainTrigger
from plantwatch.api.cloud import DEFAULT_DATABASE, DEFAULT_TABLE, build_cloud_app
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import ScoreSummaryMessage, encode_summary
from plantwatch.contract.topics import summary_topic
from plantwatch.models import ForestModel
from plantwatch.services.analytics import Scope
from plantwatch.services.drift_reports import DriftConfig, DriftIngest, RetrainRequest
from plantwatch.services.retraining import drift_line
from tests.conftest import REPO
from tests.fakes.timestream_query import FakeTimestreamQuery
from tests.helpers import drift_event
from tests.integration.lambda_api_support import LambdaContext
from tests.integration.test_retrain_job import moto_endpoint  # noqa: F401 - the moto server fixture

REFERENCE = [
    float(q) for q in ForestModel.load(REPO / "models" / "plant-1.line-1.pwf").info.training["score_histogram"]
]
HEALTHY = [int(1000 * q) for q in REFERENCE]
SHIFTED = [0] * 19 + [1000]
HOUR = 3_600_000
CONFIG = DriftConfig(window=3, consecutive=2, min_scores=100)
TABLE = "plantwatch-drift"


class Clock:
    def now_ms(self) -> int:
        return 1_764_000_000_000


class Quarantine:
    """Archive and sink stand-ins for the quarantine (the stream processor's; here nothing may be quarantined)."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    def put_quarantine(self, entries: Any) -> None:
        self.entries += entries

    def record_quarantine(self, entries: Any) -> None:
        self.entries += entries


def summary(hour: int, counts: list[int], *, plant: str = "plant-a", line: str = "line-1") -> ScoreSummaryMessage:
    return ScoreSummaryMessage(
        gateway_id=f"gw-{line}",
        plant=plant,
        line=line,
        model=ModelRef(name=f"{plant}.{line}", version="4"),
        start_ms=hour * HOUR,
        end_ms=(hour + 1) * HOUR,
        counts=counts,
        mean=0.45,
        p99=0.6,
        reference=REFERENCE,
    )


@pytest.fixture
def table(moto_endpoint: str) -> DynamoDBDrift:  # noqa: F811
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoDBDrift(client, TABLE)


def test_summaries_are_stored_idempotently_in_time_order_and_listed_by_scope(table: DynamoDBDrift) -> None:
    for hour in (2, 0, 1, 2):  # out of order, and hour 2 twice (a Kinesis re-delivery)
        table.record_summary(summary(hour, HEALTHY))
    table.record_summary(summary(0, HEALTHY, line="line-2"))
    table.record_summary(summary(0, HEALTHY, plant="plant-b"))
    assert [s.start_ms for s in table.recent_summaries("plant-a", "line-1", 10)] == [0, HOUR, 2 * HOUR]
    assert [s.start_ms for s in table.recent_summaries("plant-a", "line-1", 2)] == [HOUR, 2 * HOUR]
    assert table.recent_summaries("plant-a", "line-1", 1)[0] == summary(2, HEALTHY)
    assert table.summary_lines(Scope(subject="t", plants=("plant-a",))) == [
        ("plant-a", "line-1"),
        ("plant-a", "line-2"),
    ]
    assert table.summary_lines(Scope(subject="t", plants=("plant-a",), lines=("line-2",))) == [("plant-a", "line-2")]
    item = table._client.get_item(  # the TTL attribute the table's time_to_live names
        TableName=TABLE, Key={"pk": {"S": "plant-a#line-1"}, "sk": {"S": f"summary#{0:015d}#gw-line-1#4"}}
    )["Item"]
    assert int(item["expires_at"]["N"]) == HOUR // 1000 + 90 * 86_400


def test_drift_invokes_the_retrain_lambda_once_asynchronously_for_the_line(table: DynamoDBDrift) -> None:
    lam = boto3.client("lambda")
    stubber = Stubber(lam)
    ingest = DriftIngest(
        store=table,
        sink=Quarantine(),  # type: ignore[arg-type]
        archive=Quarantine(),  # type: ignore[arg-type]
        clock=Clock(),
        config=CONFIG,
        on_drift=LambdaRetrainTrigger(lam, "plantwatch-retrain"),
    )
    expected = RetrainRequest(
        plant="plant-a",
        line="line-1",
        model=ModelRef(name="plant-a.line-1", version="4"),
        psi=0.0,  # replaced below by the figure the check computes
        summary_key=summary(4, SHIFTED).key,  # checks ending at 3 and 4 drifted: the run reaches 2 at hour 4
        window_end_ms=5 * HOUR,
        requested_at_ms=Clock().now_ms(),
    )
    history = [summary(h, HEALTHY) for h in range(3)] + [summary(h, SHIFTED) for h in range(3, 8)]
    # the one invoke: asynchronous, to the retrain function, with the line's drift event as payload
    stubber.add_response(
        "invoke",
        {"StatusCode": 202},
        {"FunctionName": "plantwatch-retrain", "InvocationType": "Event", "Payload": ANY},
    )
    with stubber:
        for s in history:
            ingest.handle(summary_topic(s.gateway_id), encode_summary(s))
        stubber.assert_no_pending_responses()
    request = table.last_retrain_request("plant-a", "line-1")
    assert request is not None
    assert request == msgspec.structs.replace(expected, psi=request.psi)
    assert request.psi > CONFIG.threshold
    assert ingest.requests == 1


def test_the_retrain_event_names_the_line_and_ends_the_archive_window_at_the_drifted_window() -> None:
    event = drift_event("plant-a", "line-2")  # what Lambda hands the retrain function
    assert drift_line(event) == "line-2"
    assert event["end"] == "2025-11-24T17:00:00Z"
    assert drift_line({"source": "aws.events", "time": "2026-11-27T00:00:00Z"}) is None  # the schedule: every line
    with pytest.raises(ValueError, match="valid line"):
        drift_line({**event, "line": "line 2; drop"})


def test_the_cloud_api_serves_drift_from_the_table(table: DynamoDBDrift) -> None:
    for hour in range(3):
        table.record_summary(summary(hour, HEALTHY))
    table.record_summary(summary(0, SHIFTED, plant="plant-b"))
    app = build_cloud_app(
        FakeTimestreamQuery(DEFAULT_DATABASE, DEFAULT_TABLE),  # type: ignore[arg-type]
        {"PLANTWATCH_DRIFT_TABLE": TABLE},
        dynamodb=boto3.client("dynamodb"),
    )
    event = copy.deepcopy(json.loads((REPO / "tests/events/apigw_http_v2_series.json").read_text()))
    event["rawPath"], event["rawQueryString"] = "/v1/models", ""
    event.pop("queryStringParameters", None)
    event["requestContext"]["http"]["path"] = "/v1/models"
    response = Mangum(app, lifespan="off")(event, LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    [line] = json.loads(response["body"])  # plant-a only: the token's claims
    assert (line["plant"], line["line"], line["models"]) == ("plant-a", "line-1", [])
    [drift] = line["drift"]
    assert drift["model_version"] == "4"
    assert drift["status"] == "partial"  # 3 of the cloud's 24 hourly summaries
    assert drift["summaries"] == 3
    assert 0 <= drift["psi"] < 0.1
