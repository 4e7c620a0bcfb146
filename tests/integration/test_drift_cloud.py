"""Drift in the cloud: summaries in DynamoDB (moto server, a table shaped like cloud/terraform/drift.tf), the
stream processor's asynchronous invoke of the retrain Lambda (botocore Stubber against Lambda's real request
shape: moto's Lambda invoke needs Docker), the retrain job's drift event, and GET /v1/models through Mangum.
A line with several gateways is judged by window, not by summary, alike over DynamoDB and DuckDB."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
from botocore.stub import ANY, Stubber
from mangum import Mangum

from plantwatch.adapters.duckdb_drift import DuckDBDrift
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.dynamo_drift_writer import DynamoDBDrift
from plantwatch.adapters.lambda_retrain import LambdaRetrainTrigger
from plantwatch.api.cloud import DEFAULT_DATABASE, DEFAULT_TABLE, build_cloud_app
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import ScoreSummaryMessage, encode_summary
from plantwatch.contract.topics import summary_topic
from plantwatch.models.drift import psi
from plantwatch.services.analytics import Scope
from plantwatch.services.drift_reports import (
    DriftConfig,
    DriftIngest,
    LineDrift,
    RetrainRequest,
    SummaryStore,
    drift_report,
)
from plantwatch.services.retraining import drift_line
from tests.conftest import REPO
from tests.fakes.timestream_query import FakeTimestreamQuery
from tests.helpers import BASELINE_REFERENCE, HEALTHY_COUNTS, SHIFTED_COUNTS, drift_event, score_summary
from tests.integration.lambda_api_support import LambdaContext
from tests.integration.test_retrain_job import moto_endpoint  # noqa: F401 - the moto server fixture

REFERENCE, HEALTHY, SHIFTED = BASELINE_REFERENCE, HEALTHY_COUNTS, SHIFTED_COUNTS
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


def summary(
    hour: int, counts: list[int], *, plant: str = "plant-a", line: str = "line-1", gateway: str | None = None
) -> ScoreSummaryMessage:
    model = ModelRef(name=f"{plant}.{line}", version="4")
    return score_summary(
        counts,
        start_ms=hour * HOUR,
        end_ms=(hour + 1) * HOUR,
        model=model,
        gateway_id=gateway or f"gw-{line}",
        plant=plant,
        line=line,
        mean=0.45,
        p99=0.6,
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


# --- a line whose thing group holds two gateways, each sending its own hourly summary of the line ---

DAY = DriftConfig()  # the cloud's check: 24 hourly windows, PSI > 0.25 with >= 500 scores, 3 checks in a row
A_SCOPE = Scope(subject="t", plants=("plant-a",))
_HALF = next(i for i in range(len(REFERENCE)) if sum(REFERENCE[: i + 1]) >= 0.5)


def daily_rhythm(hour: int) -> list[int]:
    """A healthy hour of a plant with a daily rhythm: low scores by day, high by night; a day merges to REFERENCE."""
    day = hour % 24 < 12
    return [int(2000 * q) if (i <= _HALF) == day else 0 for i, q in enumerate(REFERENCE)]


@pytest.fixture(params=["dynamodb", "duckdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SummaryStore:
    """The cloud's store and the local one: both must judge alike."""
    if request.param == "dynamodb":
        return request.getfixturevalue("table")
    return DuckDBDrift(DuckDBStore(tmp_path / "db.duckdb"))


def ingest_of(store: SummaryStore, requests: list[RetrainRequest], config: DriftConfig = DAY) -> DriftIngest:
    nothing = Quarantine()
    return DriftIngest(
        store=store,
        sink=nothing,  # type: ignore[arg-type]
        archive=nothing,  # type: ignore[arg-type]
        clock=Clock(),
        config=config,
        on_drift=requests.append,
    )


def deliver(ingest: DriftIngest, summaries: list[ScoreSummaryMessage]) -> None:
    for s in summaries:
        ingest.handle(summary_topic(s.gateway_id), encode_summary(s))


def report(store: SummaryStore) -> LineDrift:
    [found] = drift_report(store, A_SCOPE, DAY)
    return found


def test_a_rhythm_judged_by_the_hour_drifts_and_by_the_day_does_not() -> None:
    # the premise of the daily check, on this test's data
    hourly = [psi(REFERENCE, daily_rhythm(h)) for h in range(24)]
    assert min(hourly) > 1.0
    assert psi(REFERENCE, [sum(c) for c in zip(*(daily_rhythm(h) for h in range(24)), strict=True)]) < 0.01
    assert psi(REFERENCE, [sum(c) for c in zip(*(daily_rhythm(h) for h in range(12)), strict=True)]) > 1.0


def test_two_gateways_of_a_healthy_line_are_judged_over_whole_days(store: SummaryStore) -> None:
    # GIVEN a healthy line with a daily rhythm and two gateways, each sending the same hours for two days
    requests: list[RetrainRequest] = []
    ingest = ingest_of(store, requests)
    for hour in range(48):
        deliver(ingest, [summary(hour, daily_rhythm(hour), gateway=gw) for gw in ("gw-a", "gw-b")])
        # THEN every check holds the hours of the last day (both gateways of each), complete from a whole day on
        found = report(store)
        first = max(0, hour - 23)
        assert (found.start_ms, found.end_ms) == (first * HOUR, (hour + 1) * HOUR)
        assert (found.windows, found.complete) == (hour + 1 - first, hour >= 23)
        assert found.scores == 2 * sum(sum(daily_rhythm(h)) for h in range(first, hour + 1))
        assert not found.complete or not found.drifted, (hour, found.psi)
    # AND no hour of a healthy line asked for retraining
    assert requests == []
    assert ingest.stored == 96


def test_one_shifted_gateway_of_two_drifts_the_line_and_asks_once(store: SummaryStore) -> None:
    # GIVEN a line whose second gateway sees shifted scores from the start; the first stays healthy
    requests: list[RetrainRequest] = []
    ingest = ingest_of(store, requests)
    for hour in range(30):
        deliver(ingest, [summary(hour, HEALTHY, gateway="gw-a"), summary(hour, SHIFTED, gateway="gw-b")])
        if hour == 23:
            # THEN the first whole day is drifted: the shifted half weighs by its scores, like the healthy half
            day = report(store)
            assert (day.complete, day.drifted, day.windows) == (True, True, 24)
            assert day.psi == round(psi(REFERENCE, [24 * (h + s) for h, s in zip(HEALTHY, SHIFTED, strict=True)]), 6)
            assert requests == []
    # AND retraining is asked for once, at the third drifted daily check (hour 25), by its first summary
    assert [(r.summary_key, r.window_end_ms) for r in requests] == [
        (summary(25, HEALTHY, gateway="gw-a").key, 26 * HOUR)
    ]
    assert store.last_retrain_request("plant-a", "line-1") == requests[0]
    # AND neither gateway b's summary of that hour (delivered after a's) nor a re-delivery of all asks again
    for hour in range(30):
        deliver(ingest, [summary(hour, HEALTHY, gateway="gw-a"), summary(hour, SHIFTED, gateway="gw-b")])
    assert len(requests) == 1
    assert ingest.stored == 120


def test_a_window_counts_once_whichever_gateways_reported_it(store: SummaryStore) -> None:
    # GIVEN gateway a reports the whole day; gateway b joined at noon
    for hour in range(24):
        store.record_summary(summary(hour, HEALTHY, gateway="gw-a"))
    for hour in range(12, 24):
        store.record_summary(summary(hour, HEALTHY, gateway="gw-b"))
    # THEN the check is the whole day: 24 windows, 36 summaries' scores
    found = report(store)
    assert (found.windows, found.complete, found.start_ms, found.end_ms) == (24, True, 0, 24 * HOUR)
    assert found.scores == 36 * sum(HEALTHY)
    assert len(store.recent_summaries("plant-a", "line-1", 24)) == 36
    assert [s.gateway_id for s in store.recent_summaries("plant-a", "line-1", 1)] == ["gw-a", "gw-b"]
    # AND an hour that neither gateway reported leaves the day incomplete, however many summaries there are
    store.record_summary(summary(25, HEALTHY, gateway="gw-a"))
    store.record_summary(summary(25, HEALTHY, gateway="gw-b"))
    found = report(store)
    assert (found.windows, found.complete, found.start_ms, found.end_ms) == (23, False, 2 * HOUR, 26 * HOUR)


def test_two_gateways_summaries_of_one_window_handled_at_once_lose_no_request(store: SummaryStore) -> None:
    # GIVEN a line whose two gateways' summaries are handled by two stream-processor workers (one shard each):
    # gateway b's summary of an hour is handled while gateway a's retraining request is being sent
    requests: list[RetrainRequest] = []
    ingest = ingest_of(store, requests, CONFIG)
    waiting: list[ScoreSummaryMessage] = []

    def sending(request: RetrainRequest) -> None:
        requests.append(request)
        others, waiting[:] = list(waiting), []
        deliver(ingest, others)  # the other worker, meanwhile

    ingest.on_drift = sending
    for hour in range(16):
        counts = HEALTHY if hour < 10 else SHIFTED
        waiting[:] = [summary(hour, counts, gateway="gw-b")]
        deliver(ingest, [summary(hour, counts, gateway="gw-a")])
        deliver(ingest, waiting)
    # THEN the drifted line asked for the check that completed the run, by both summaries handled at once (the
    # accepted cost of asking before recording: a second retraining, never a lost request), and never again
    assert len(requests) == 2
    assert len({(r.model, r.window_end_ms) for r in requests}) == 1
    assert {r.summary_key.split(":")[0] for r in requests} == {"gw-a", "gw-b"}
    assert store.last_retrain_request("plant-a", "line-1") in requests


def test_a_request_that_could_not_be_sent_is_asked_again_on_redelivery(store: SummaryStore) -> None:
    # GIVEN a line that drifts from hour 10, and the invoke of the retrain function failing
    requests: list[RetrainRequest] = []
    ingest = ingest_of(store, requests, CONFIG)

    def throttled(request: RetrainRequest) -> None:
        raise RuntimeError("Lambda throttled")

    ingest.on_drift = throttled
    history = [summary(hour, HEALTHY if hour < 10 else SHIFTED) for hour in range(16)]
    failed = None
    for hour, s in enumerate(history):
        try:
            deliver(ingest, [s])
        except RuntimeError:
            failed = hour
            break
    # THEN the summary that asked is not taken for one that did: no request is kept for the line
    assert failed is not None
    assert store.last_retrain_request("plant-a", "line-1") is None
    # AND when the stream delivers it again, it asks, and the line's request is that one
    ingest.on_drift = requests.append
    deliver(ingest, [history[failed]])
    [request] = requests
    assert request.window_end_ms == history[failed].end_ms
    assert store.last_retrain_request("plant-a", "line-1") == request


def test_an_hour_no_gateway_reported_does_not_make_an_ongoing_drift_ask_again(store: SummaryStore) -> None:
    # GIVEN a line drifted from hour 10 (asked at its third drifted check), and hour 20 never reported
    requests: list[RetrainRequest] = []
    ingest = ingest_of(store, requests, CONFIG)
    deliver(ingest, [summary(hour, HEALTHY if hour < 10 else SHIFTED) for hour in range(30) if hour != 20])
    # THEN it asked once: the checks that held the gap were partial, and say nothing of a new episode
    assert len(requests) == 1
    assert requests[0].window_end_ms < 20 * HOUR


def test_a_line_is_judged_by_the_model_rolled_out_last_whatever_its_gateways_are_called(store: SummaryStore) -> None:
    # GIVEN gateway b (whose id sorts last) still runs version 9 while gateway a runs version 10 from hour 5
    def of(hour: int, gateway: str, version: str) -> ScoreSummaryMessage:
        return msgspec.structs.replace(
            summary(hour, HEALTHY, gateway=gateway), model=ModelRef(name="plant-a.line-1", version=version)
        )

    for hour in range(8):
        store.record_summary(of(hour, "gw-a", "9" if hour < 5 else "10"))
        store.record_summary(of(hour, "gw-b", "9"))
    # THEN the line's drift is version 10's, from the hour it started
    found = report(store)
    assert (found.model.version, found.start_ms, found.windows) == ("10", 5 * HOUR, 3)
    # AND a baseline and a first registry version that start in one window: the registry's
    for hour in range(8, 10):
        store.record_summary(of(hour, "gw-a", "baseline"))
        store.record_summary(of(hour, "gw-b", "1"))
    assert report(store).model.version == "1"


def test_a_new_drift_after_an_outage_asks_again(store: SummaryStore) -> None:
    # GIVEN a line that drifted (and asked), recovered, was shut down for two hours, then drifted again
    requests: list[RetrainRequest] = []
    ingest = ingest_of(store, requests, CONFIG)
    hours = [h for h in range(40) if h not in (31, 32)]
    deliver(ingest, [summary(h, SHIFTED if 10 <= h < 16 or h >= 33 else HEALTHY) for h in hours])
    # THEN both episodes asked: the partial checks around the outage don't make the second one look like the first
    assert [r.window_end_ms // HOUR for r in requests] == [12, 37]


def test_after_a_rollback_the_line_is_judged_by_the_model_rolled_back_to(store: SummaryStore) -> None:
    def of(hour: int, gateway: str, version: str) -> ScoreSummaryMessage:
        return msgspec.structs.replace(
            summary(hour, HEALTHY, gateway=gateway), model=ModelRef(name="plant-a.line-1", version=version)
        )

    # GIVEN version 4, then 5 from hour 10, then every gateway rolled back to 4 from hour 20
    for hour in range(24):
        for gateway in ("gw-a", "gw-b"):
            store.record_summary(of(hour, gateway, "5" if 10 <= hour < 20 else "4"))
    # THEN the line is judged by version 4 since the rollback
    found = report(store)
    assert (found.model.version, found.start_ms, found.windows) == ("4", 20 * HOUR, 4)
