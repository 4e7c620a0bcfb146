"""Alert events through the stream-processor Lambda: the gateways' alert topic (put into the stream by an IoT
rule, partition key = topic) becomes stored alerts in DynamoDB (moto server); garbage on it is quarantined; a
failing alert store hands the records back to Lambda instead of dropping them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stream_support import T0, batch_records, context, load_app
from tests.helpers import alert_event
from tests.moto import alert_tables

from plantwatch.cloud.stream_handler import kinesis_event
from plantwatch.contract.topics import alert_topic
from plantwatch.domain.alerts import SpoolLoss, encode_loss
from plantwatch.ports import StreamRecord
from plantwatch.services.analytics import Scope

SCOPE = Scope(subject="t", plants=("plant-a",))


def alert_record(seq: int, data: bytes) -> StreamRecord:
    return StreamRecord(record_id=f"{seq:020d}", data=data, arrival_ms=T0, topic=alert_topic("gw-1"))


@pytest.fixture
def aws_env(dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", dynamodb_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return dynamodb_endpoint


def quarantined(app: Any) -> list[tuple[Any, ...]]:
    return list(app.stream.processor.sink.cursor().execute("SELECT source, reason FROM quarantine").fetchall())


def test_alert_records_are_stored_once_and_garbage_is_quarantined(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN the Lambda configured with the alerts table, and an event mixing batches and the alerts topic
    store = alert_tables(aws_env)
    monkeypatch.setenv("PLANTWATCH_ALERTS_TABLE", store.alerts_table)
    app = load_app(monkeypatch, tmp_path)
    batches = batch_records("gw-1", "line-1", batches=2, per_batch=10, first_seq=1)
    loss = SpoolLoss(gateway_id="gw-1", at_ms=T0, policy="drop_oldest", dropped=[(3, 4, 2, 20)], rejected_readings=0)
    records = [
        batches[0],
        alert_record(100, alert_event("gw-1:s-1:anomaly:1", "active")),
        alert_record(101, alert_event("gw-1:s-1:anomaly:1", "active")),  # delivered twice (at least once)
        alert_record(102, b"\x1f\x8b not an alert"),
        alert_record(103, encode_loss(loss)),
        alert_record(104, alert_event("gw-1:s-2:anomaly:2", "cleared")),
        batches[1],
    ]
    # WHEN it handles the event
    response = app.handler(kinesis_event(records), context())
    # THEN nothing is retried, both alerts are stored once, readings are stored, and nothing vanished
    assert response == {"batchItemFailures": []}
    stored = {a["alert_id"]: a["state"] for a in store.alerts(SCOPE, state=None, limit=100)}
    assert stored == {"gw-1:s-1:anomaly:1": "open", "gw-1:s-2:anomaly:2": "cleared"}
    readings = app.stream.processor.sink.cursor().execute("SELECT count(*) FROM readings").fetchone()
    assert readings == (20,)
    reasons = sorted(reason for _, reason in quarantined(app))
    assert len(reasons) == 2
    assert reasons[0].startswith("alert payload does not decode")
    assert "spool full (policy drop_oldest): dropped 2 batches / 20 readings" in reasons[1]
    assert {source for source, _ in quarantined(app)} == {alert_topic("gw-1")}


def test_a_failing_alert_store_hands_the_records_back(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a Lambda whose alerts table does not exist (the store fails on every write)
    monkeypatch.setenv("PLANTWATCH_ALERTS_TABLE", "no-such-table")
    app = load_app(monkeypatch, tmp_path)
    batches = batch_records("gw-1", "line-1", batches=2, per_batch=10, first_seq=1)
    alert = alert_record(100, alert_event("gw-1:s-1:anomaly:1", "active"))
    # WHEN a batch, an alert and another batch arrive
    response = app.handler(kinesis_event([batches[0], alert, batches[1]]), context())
    # THEN Lambda must deliver the alert again, and everything after it; nothing is quarantined or lost
    assert response == {
        "batchItemFailures": [{"itemIdentifier": alert.record_id}, {"itemIdentifier": batches[1].record_id}]
    }
    assert quarantined(app) == []
    # (both batches were written: the one handed back with the alert is a known batch when it comes again)
    sink = app.stream.processor.sink
    assert sink.cursor().execute("SELECT count(*) FROM readings").fetchone() == (20,)
    again = app.handler(kinesis_event([batches[1]]), context())
    assert again == {"batchItemFailures": []}
    assert sink.cursor().execute("SELECT count(*) FROM readings").fetchone() == (20,)
