"""The DynamoDB alert store against moto server: the same answers as the DuckDB store, idempotent ingest, plant
scoping, one winner among concurrent acknowledgements, and a hash chain whose tampering is detected."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from botocore.exceptions import ClientError

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.dynamo_alert_writer import EXPIRES_AT, DynamoAlertWriter
from plantwatch.adapters.dynamo_alerts import DynamoAlerts
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.contract.alerts import Alert
from plantwatch.services.alert_ingest import AlertIngest
from plantwatch.services.analytics import Scope
from tests.api_data import NOW_MS, alert_ref, alerts
from tests.helpers import alert_event
from tests.moto import alert_tables

#: ids of the API test data's alerts, as gateways make them
A0 = alert_ref("plant-a", 0)
A1 = alert_ref("plant-a", 1)
B0 = alert_ref("plant-b", 0)

A = Scope(subject="tester", plants=("plant-a",))
B = Scope(subject="tester", plants=("plant-b",))
BOTH = Scope(subject="tester", plants=("plant-a", "plant-b"))


@pytest.fixture
def dynamo(dynamodb_endpoint: str) -> DynamoAlerts:
    return alert_tables(dynamodb_endpoint)


def many_alerts() -> list[Alert]:
    """The API dataset's alerts, plus 30 on two lines with raise times that tie, so order and paging matter."""
    extra = [
        Alert(
            alert_id=f"bulk-{i:02d}",
            plant="plant-a" if i % 3 else "plant-b",
            line=f"line-{1 + i % 2}",
            asset="press-1",
            sensor_id=f"s-{i}",
            kind="anomaly",
            state="open" if i % 4 else "cleared",
            raised_at_ms=NOW_MS - (i // 3) * 1000,
            cleared_at_ms=None if i % 4 else NOW_MS,
            reasons=("forest", f"r{i}") if i % 5 else (),
            score=i / 7,
            gateway_id="gw-9",
        )
        for i in range(30)
    ]
    return alerts() + extra


def test_it_answers_exactly_like_the_duckdb_store(dynamo: DynamoAlerts, tmp_path: Path) -> None:
    duck = DuckDBAlerts(DuckDBStore(tmp_path / "db.duckdb"))
    for store in (duck, dynamo):
        assert store.record_alerts(many_alerts()) == len(many_alerts())
    scopes = [A, B, BOTH, Scope(subject="t", plants=("plant-a",), lines=("line-2",)), Scope(subject="t", plants=())]
    for scope in scopes:
        for state in (None, "open", "cleared"):
            for limit in (1, 4, 7, 1000):  # small limits page through the index with a filter
                expected = duck.alerts(scope, state=state, limit=limit)
                assert dynamo.alerts(scope, state=state, limit=limit) == expected, (scope, state, limit)
    assert len(dynamo.alerts(BOTH, state=None, limit=1000)) == 34


class _NoQuarantine:
    def put_quarantine(self, entries: Any) -> None:
        raise AssertionError(f"nothing should be quarantined: {entries}")

    def record_quarantine(self, entries: Any) -> None:
        raise AssertionError(f"nothing should be quarantined: {entries}")

    def put_batches(self, batches: Any) -> None:
        raise AssertionError("no batches here")

    def write(self, batches: Any) -> Any:
        raise AssertionError("no batches here")


class _Clock:
    def now_ms(self) -> int:
        return NOW_MS


@pytest.mark.parametrize("backend", ["dynamodb", "duckdb"])
def test_ingest_is_idempotent_and_a_cleared_alert_stays_cleared(
    dynamodb_endpoint: str, tmp_path: Path, backend: str
) -> None:
    dynamo: Any = (
        alert_tables(dynamodb_endpoint) if backend == "dynamodb" else DuckDBAlerts(DuckDBStore(tmp_path / "db.duckdb"))
    )
    # GIVEN the ingest the local platform runs, over the DynamoDB store
    nothing = _NoQuarantine()
    ingest = AlertIngest(store=dynamo, sink=nothing, archive=nothing, clock=_Clock())  # type: ignore[arg-type]
    topic = "plantwatch/gateways/gw-1/alerts"
    # WHEN an alert is raised (delivered twice), acknowledged, cleared, and the raise arrives once more, late
    ingest.handle(topic, alert_event("gw-1:s-1:anomaly:1", "active"))
    ingest.handle(topic, alert_event("gw-1:s-1:anomaly:1", "active"))
    assert len(dynamo.alerts(A, state=None, limit=10)) == 1
    acked = dynamo.acknowledge(A, alert_id="gw-1:s-1:anomaly:1", actor="op-1", note="", at_ms=NOW_MS)
    assert acked is not None and acked["state"] == "open"
    ingest.handle(topic, alert_event("gw-1:s-1:anomaly:1", "cleared", updated_ms=NOW_MS + 5))
    ingest.handle(topic, alert_event("gw-1:s-1:anomaly:1", "active"))
    # THEN there is one alert, cleared when the gateway said, still acknowledged by the first operator
    (row,) = dynamo.alerts(A, state=None, limit=10)
    assert (row["state"], row["cleared_at_ms"], row["acknowledged_by"]) == ("cleared", NOW_MS + 5, "op-1")
    assert row["reasons"] == ["forest"] and row["score"] == pytest.approx(0.8)
    assert ingest.stored == 4 and ingest.quarantined == 0
    assert [e["seq"] for e in dynamo.audit(A, limit=10)[0]] == [1]


def test_a_caller_of_one_plant_never_reaches_another(dynamo: DynamoAlerts) -> None:
    dynamo.record_alerts(alerts())
    # the same alert id in both plants: two alerts, each only in its own plant's partition
    twin = msgspec.structs.replace(alerts()[0], plant="plant-b")
    dynamo.record_alerts([twin])
    assert dynamo.get(B, A0) is not None and dynamo.get(B, A0)["plant"] == "plant-b"  # type: ignore[index]
    assert dynamo.get(B, A1) is None
    assert dynamo.acknowledge(B, alert_id=A1, actor="intruder", note="", at_ms=NOW_MS) is None
    assert dynamo.get(A, A1)["acknowledged_by"] is None  # type: ignore[index]
    line_2 = Scope(subject="t", plants=("plant-a",), lines=("line-2",))
    assert dynamo.get(line_2, A0) is None
    assert dynamo.acknowledge(line_2, alert_id=A0, actor="intruder", note="", at_ms=NOW_MS) is None
    assert dynamo.audit_entries("plant-a") == []
    assert {r["plant"] for r in dynamo.alerts(B, state=None, limit=100)} == {"plant-b"}


def race(workers: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``workers`` threads released at the same moment; their results in worker order."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_concurrent_acknowledgements_of_one_alert_have_one_winner(dynamo: DynamoAlerts) -> None:
    dynamo.record_alerts(alerts())
    results = race(8, lambda i: dynamo.acknowledge(A, alert_id=A0, actor=f"op-{i}", note=f"n{i}", at_ms=NOW_MS + i))
    # every caller is told the same, first acknowledgement; the chain holds exactly one entry for it
    winners = {(r["acknowledged_by"], r["acknowledged_at_ms"]) for r in results}
    assert len(winners) == 1
    (entry,) = dynamo.audit_entries("plant-a")
    assert (entry["actor"], entry["at_ms"], entry["seq"]) == (*winners.pop(), 1)
    assert dynamo.verify("plant-a") is None


def test_concurrent_acknowledgements_of_many_alerts_extend_one_unforked_chain(dynamo: DynamoAlerts) -> None:
    dynamo.record_alerts(many_alerts())
    ids = [a["alert_id"] for a in dynamo.alerts(A, state=None, limit=1000)][:10]
    race(len(ids), lambda i: dynamo.acknowledge(A, alert_id=ids[i], actor=f"op-{i}", note="", at_ms=NOW_MS))
    chain = dynamo.audit_entries("plant-a")
    assert [e["seq"] for e in chain] == list(range(1, len(ids) + 1))
    assert sorted(e["alert_id"] for e in chain) == sorted(ids)
    assert all(chain[i]["prev_hash"] == chain[i - 1]["hash"] for i in range(1, len(chain)))
    assert dynamo.verify("plant-a") is None and dynamo.audit_entries("plant-b") == []
    assert all(r["acknowledged_by"] for r in dynamo.alerts(A, state=None, limit=1000) if r["alert_id"] in ids)


def test_tampering_with_the_chain_is_detected(dynamo: DynamoAlerts) -> None:
    dynamo.record_alerts(many_alerts())
    ids = [a["alert_id"] for a in dynamo.alerts(A, state=None, limit=1000)][:4]
    for i, alert_id in enumerate(ids):
        dynamo.acknowledge(A, alert_id=alert_id, actor=f"op-{i}", note="", at_ms=NOW_MS + i)
    dynamo.acknowledge(B, alert_id=B0, actor="op-b", note="", at_ms=NOW_MS)
    assert dynamo.audit(BOTH, limit=100)[1] is None
    table, client = dynamo.audit_table, dynamo.client

    def key(seq: int, plant: str = "plant-a") -> dict[str, Any]:
        return {"plant": {"S": plant}, "seq": {"N": str(seq)}}

    # WHEN someone rewrites who acknowledged entry 2, THEN the chain breaks at 2 (and only plant-a's does)
    client.update_item(
        TableName=table, Key=key(2), UpdateExpression="SET actor = :a", ExpressionAttributeValues={":a": {"S": "x"}}
    )
    assert dynamo.verify("plant-a") == 2
    assert dynamo.verify("plant-b") is None
    entries, broken = dynamo.audit(BOTH, limit=100)
    assert broken == 2 and len(entries) == 5
    assert dynamo.audit(B, limit=100)[1] is None
    # WHEN the entry is put back but entry 3 is deleted, THEN the chain breaks where 4 no longer follows
    client.update_item(
        TableName=table, Key=key(2), UpdateExpression="SET actor = :a", ExpressionAttributeValues={":a": {"S": "op-1"}}
    )
    assert dynamo.verify("plant-a") is None
    client.delete_item(TableName=table, Key=key(3))
    assert dynamo.verify("plant-a") == 4


def test_scores_dynamodb_cannot_hold_are_stored_as_zero(dynamo: DynamoAlerts) -> None:
    odd = [msgspec.structs.replace(alerts()[0], alert_id=f"odd-{i}", score=s) for i, s in enumerate([math.nan, 1e-300])]
    assert dynamo.record_alerts(odd) == 2
    assert sorted(a["score"] for a in dynamo.alerts(A, state=None, limit=10) if a["alert_id"].startswith("odd")) == [
        0,
        0,
    ]


def test_a_retention_gives_cleared_alerts_an_expiry_and_open_ones_none(dynamodb_endpoint: str) -> None:
    # GIVEN writers over the same table, one keeping alerts for ever and one for 30 days after they clear
    store = alert_tables(dynamodb_endpoint)
    keep = DynamoAlertWriter(store.client, alerts_table=store.alerts_table)
    month = DynamoAlertWriter(store.client, alerts_table=store.alerts_table, retention_days=30)
    base = alerts()[0]
    cleared = msgspec.structs.replace(base, alert_id="c", state="cleared", cleared_at_ms=NOW_MS + 1234)
    # WHEN each writes an open alert and a cleared one
    keep.record_alerts(
        [msgspec.structs.replace(base, alert_id="keep-open"), msgspec.structs.replace(cleared, alert_id="keep-c")]
    )
    month.record_alerts([msgspec.structs.replace(base, alert_id="open"), cleared])

    # THEN only the alert cleared under a retention carries the TTL attribute: 30 days after it cleared, in seconds
    def expires(alert_id: str) -> str | None:
        key = {"plant": {"S": base.plant}, "alert_id": {"S": alert_id}}
        item = store.client.get_item(TableName=store.alerts_table, Key=key)["Item"]
        return item.get(EXPIRES_AT, {}).get("N")

    assert expires("c") == str((NOW_MS + 1234) // 1000 + 30 * 86_400)
    assert [expires(a) for a in ("open", "keep-open", "keep-c")] == [None, None, None]
    with pytest.raises(ValueError, match="retention"):
        DynamoAlertWriter(store.client, alerts_table=store.alerts_table, retention_days=-1)


@pytest.mark.parametrize(
    "code",
    ["ItemCollectionSizeLimitExceededException", "ValidationException", "ProvisionedThroughputExceededException"],
)
def test_an_alert_the_table_can_never_take_is_quarantined_and_a_passing_failure_redelivered(
    code: str, tmp_path: Path
) -> None:
    # GIVEN the ingest over a real DuckDB sink and archive, and a DynamoDB client (real request shapes, checked by
    # botocore's Stubber) whose UpdateItem fails with ``code``
    import boto3
    from botocore.stub import ANY, Stubber

    client = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    writer = DynamoAlertWriter(client, alerts_table="alerts")
    sink = DuckDBStore(tmp_path / "db.duckdb")
    ingest = AlertIngest(store=writer, sink=sink, archive=FilesystemArchive(tmp_path / "archive"), clock=_Clock())
    expected = {
        "TableName": "alerts",
        "Key": {"plant": {"S": "plant-a"}, "alert_id": {"S": "gw-1:s-1:anomaly:1"}},
        "UpdateExpression": ANY,
        "ExpressionAttributeNames": ANY,
        "ExpressionAttributeValues": ANY,
        "ConditionExpression": ANY,
    }
    with Stubber(client) as stub:
        stub.add_client_error("update_item", service_error_code=code, service_message="nope", expected_params=expected)
        # WHEN an alert event arrives
        topic = "plantwatch/gateways/gw-1/alerts"
        if code == "ProvisionedThroughputExceededException":
            # THEN a passing failure goes back to Lambda for redelivery, and nothing is quarantined
            with pytest.raises(ClientError):
                ingest.handle(topic, alert_event("gw-1:s-1:anomaly:1", "active"))
            assert ingest.quarantined == 0
            return
        ingest.handle(topic, alert_event("gw-1:s-1:anomaly:1", "active"))
        stub.assert_no_pending_responses()
    # THEN a refusal for good is kept with the quarantine, with the store's reason, counted and not stored
    assert (ingest.stored, ingest.quarantined) == (0, 1)
    (reason,) = [r for (r,) in sink.cursor().execute("SELECT reason FROM quarantine").fetchall()]
    assert reason == f"alert store refused alert gw-1:s-1:anomaly:1: {code}: nope"
    kept = list((tmp_path / "archive").rglob("*"))
    assert any(p.is_file() for p in kept), "the refused event's bytes must be in the archive's quarantine"


@pytest.mark.parametrize("backend", ["dynamodb", "duckdb"])
@pytest.mark.parametrize("ack_event", ["delivered", "lost"])
def test_an_acknowledgement_on_the_floor_reaches_the_stored_alert(
    dynamodb_endpoint: str, tmp_path: Path, backend: str, ack_event: str
) -> None:
    """GIVEN a real engine's alert, acknowledged on the floor (its acknowledged event delivered, or lost and only
    the clear carrying it), THEN the stored alert says who (``floor:<by>``) and when, and the API's acknowledge
    answers that first acknowledgement instead of taking a second one."""
    from plantwatch.contract.reading import Reading, ScoredReading
    from plantwatch.domain.alerts import AlertEngine, encode_event

    store: Any = (
        alert_tables(dynamodb_endpoint) if backend == "dynamodb" else DuckDBAlerts(DuckDBStore(tmp_path / "db.duckdb"))
    )
    nothing = _NoQuarantine()
    ingest = AlertIngest(store=store, sink=nothing, archive=nothing, clock=_Clock())  # type: ignore[arg-type]
    engine = AlertEngine(gateway_id="gw-1", plant="plant-a", raise_after=1, clear_after=1)
    reading = Reading(
        plant="plant-a", line="line-1", asset="press-1", sensor_id="s-1", sensor_type="temperature", unit="degC",
        ts_ms=NOW_MS, value=99.0,
    )  # fmt: skip
    [raised] = engine.observe(ScoredReading(reading=reading, score=0.9, anomaly=True, reasons=("threshold.high",)))
    acked = engine.acknowledge(raised.alert.alert_id, by="shift-lead", now_ms=NOW_MS + 7_000)
    normal = msgspec.structs.replace(reading, ts_ms=NOW_MS + 60_000, value=50.0)
    [cleared] = engine.observe(ScoredReading(reading=normal, score=0.0, anomaly=False))
    assert acked is not None
    events = [raised, acked, cleared] if ack_event == "delivered" else [raised, cleared]
    for event in events:
        ingest.handle("plantwatch/gateways/gw-1/alerts", encode_event(event))
    (row,) = store.alerts(A, state=None, limit=10)
    assert (row["state"], row["acknowledged_by"], row["acknowledged_at_ms"]) == (
        "cleared",
        "floor:shift-lead",
        NOW_MS + 7_000,
    )
    again = store.acknowledge(A, alert_id=raised.alert.alert_id, actor="op-1", note="", at_ms=NOW_MS + 90_000)
    assert again is not None and again["acknowledged_by"] == "floor:shift-lead"
    assert store.audit(A, limit=10)[0] == []  # the floor's acknowledgement is the alert's, not an API audit entry
