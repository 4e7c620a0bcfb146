"""The Timestream sink against a contract fake that enforces WriteRecords' documented rules.

Timestream LiveAnalytics cannot run here and moto's version stores and checks nothing, so the fake
(plantwatch.testing.timestream_fake) enforces the limits the service documents; these tests check both the
fake's rules and the sink's behaviour under them.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import msgspec
import pytest
from botocore.exceptions import ClientError
from stream_support import T0, FixedClock, batch_records, scored_readings

from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.adapters.timestream import TimestreamSink
from plantwatch.adapters.timestream_records import ALERT_MEASURE, READING_MEASURE
from plantwatch.cloud.stream_handler import StreamHandler, kinesis_event
from plantwatch.contract.batch import SCHEMA_VERSION, ScoredBatch
from plantwatch.domain.thresholds import THRESHOLD_MODEL
from plantwatch.services.stream_processing import StreamProcessor
from plantwatch.testing.timestream_fake import FakeTimestreamWrite

HOUR = 3_600_000


def record(ts: int, value: float = 1.0, version: int = 1, sensor: str = "s1") -> dict[str, object]:
    """One single-measure record."""
    return {
        "Dimensions": [{"Name": "sensor_id", "Value": sensor}],
        "MeasureName": "m",
        "MeasureValueType": "DOUBLE",
        "MeasureValue": repr(value),
        "Time": str(ts),
        "TimeUnit": "MILLISECONDS",
        "Version": version,
    }


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    """The error code of a ClientError."""
    return str(exc.value.response["Error"]["Code"])


def batch(seq: int, n: int, *, start: int = T0, gateway: str = "gw-1", offset: float = 0.0) -> ScoredBatch:
    """A scored batch of ``n`` readings (value shifted by ``offset``)."""
    readings = scored_readings("line-1", n, start)
    if offset:
        readings = [
            msgspec.structs.replace(r, reading=msgspec.structs.replace(r.reading, value=r.reading.value + offset))
            for r in readings
        ]
    return ScoredBatch(
        schema_version=SCHEMA_VERSION,
        gateway_id=gateway,
        seq=seq,
        plant="plant-1",
        model=THRESHOLD_MODEL,
        readings=tuple(readings),
    )


@pytest.fixture
def fake(clock: FixedClock) -> FakeTimestreamWrite:
    """The contract fake with magnetic-store writes disabled (so the memory-store window is enforced)."""
    return FakeTimestreamWrite(clock=clock, database="db", table="t", magnetic_writes=False)


def sink_for(fake: FakeTimestreamWrite, clock: FixedClock, **kwargs: object) -> TimestreamSink:
    """A sink with no real sleeping."""
    options: dict[str, object] = {"workers": 1, "sleep": lambda s: None, "magnetic_writes": fake.magnetic_writes}
    options.update(kwargs)
    return TimestreamSink(fake, database="db", table="t", clock=clock, **options)  # type: ignore[arg-type]


# --- the fake enforces the documented rules ------------------------------------------------------------
def test_fake_refuses_more_than_100_records_per_call(fake: FakeTimestreamWrite) -> None:
    with pytest.raises(ClientError) as exc:
        fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0 + i) for i in range(101)])
    assert code(exc) == "ValidationException"


def test_fake_rejects_records_over_2kb_future_and_outside_the_memory_store(fake: FakeTimestreamWrite) -> None:
    now = fake.clock.now_ms()
    big = record(now, sensor="x" * 2100)
    future = record(now + 16 * 60_000)
    stale = record(now - 7 * HOUR)
    fine = record(now - HOUR)
    with pytest.raises(ClientError) as exc:
        fake.write_records(DatabaseName="db", TableName="t", Records=[big, future, stale, fine])
    assert code(exc) == "RejectedRecordsException"
    assert [r["RecordIndex"] for r in exc.value.response["RejectedRecords"]] == [0, 1, 2]
    assert len(fake.rows) == 1


def test_fake_rejects_a_different_value_without_a_higher_version(fake: FakeTimestreamWrite) -> None:
    fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0, 1.0, version=2)])
    fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0, 1.0, version=2)])  # same value: fine
    with pytest.raises(ClientError) as exc:
        fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0, 2.0, version=2)])
    assert exc.value.response["RejectedRecords"][0]["ExistingVersion"] == 2
    fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0, 3.0, version=3)])
    assert next(iter(fake.rows.values())) == (3, (("", "DOUBLE", "3.0"),))


def test_fake_throttles_on_demand(clock: FixedClock) -> None:
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t", throttle=lambda call: call == 1)
    with pytest.raises(ClientError) as exc:
        fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0)])
    assert code(exc) == "ThrottlingException"
    fake.write_records(DatabaseName="db", TableName="t", Records=[record(T0)])
    assert len(fake.rows) == 1


# --- the sink under those rules -------------------------------------------------------------------------
def test_sink_packs_100_multi_measure_records_per_call_with_alerts(
    fake: FakeTimestreamWrite, clock: FixedClock
) -> None:
    sink = sink_for(fake, clock)
    batches = [batch(seq, 250, start=T0 + seq * 60_000) for seq in range(1, 5)]
    outcome = sink.write(batches)
    readings = sum(len(b.readings) for b in batches)
    alerts = sum(r.anomaly for b in batches for r in b.readings)
    assert alerts > 0
    assert (outcome.written, outcome.incomplete, outcome.rejected) == (readings, (), ())
    assert fake.calls == math.ceil(readings / 100) + math.ceil(alerts / 100)
    stored = fake.measures(READING_MEASURE)
    assert len(stored) == readings
    dims, _, _ = next(iter(stored))
    assert [name for name, _ in dims] == ["asset", "line", "plant", "sensor_id", "sensor_type"]
    values = next(iter(stored.values()))[1]
    assert [(name, kind) for name, kind, _ in values] == [
        ("value", "DOUBLE"),
        ("score", "DOUBLE"),
        ("anomaly", "BOOLEAN"),
    ]
    assert len(fake.measures(ALERT_MEASURE)) == alerts


def test_redelivered_batch_is_an_idempotent_rewrite(fake: FakeTimestreamWrite, clock: FixedClock) -> None:
    sink = sink_for(fake, clock)
    sink.write([batch(7, 120)])
    before = dict(fake.rows)
    again = sink.write([batch(7, 120)])
    assert again.rejected == ()
    assert fake.rows == before


def test_an_older_batch_with_different_values_is_quarantined_by_reason(
    fake: FakeTimestreamWrite, clock: FixedClock
) -> None:
    sink = sink_for(fake, clock)
    sink.write([batch(9, 30)])
    outcome = sink.write([batch(8, 30, offset=0.25)])  # same sensors and times, lower seq, other values
    assert outcome.incomplete == ()
    assert len(outcome.rejected) == 30  # the readings; the alerts carry the same value 1, a harmless rewrite
    assert all("ExistingVersion 9" in r.reason for r in outcome.rejected)


def test_late_data_beyond_the_memory_store_needs_magnetic_writes(clock: FixedClock) -> None:
    late = batch(3, 12, start=clock.now_ms() - 8 * HOUR)
    closed = FakeTimestreamWrite(clock=clock, database="db", table="t", magnetic_writes=False)
    refused = sink_for(closed, clock).write([late])
    assert refused.written == 0
    assert {r.reason for r in refused.rejected} == {
        "Timestream: time is older than the memory store retention and magnetic store writes are off"
    }
    assert closed.calls == 0  # refused before spending a call
    magnetic = FakeTimestreamWrite(clock=clock, database="db", table="t", magnetic_writes=True)
    assert sink_for(magnetic, clock).write([late]).written == 12


def test_throttling_is_retried_with_backoff_and_jitter(clock: FixedClock) -> None:
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t", throttle=lambda call: call <= 3)
    delays: list[float] = []
    sink = sink_for(fake, clock, sleep=delays.append, base_delay_s=0.1, max_delay_s=5.0)
    outcome = sink.write([batch(1, 50)])
    assert outcome.written == 50
    assert len(delays) == 3
    assert all(0 <= d <= 0.1 * 2 ** (i + 1) for i, d in enumerate(delays))


def test_persistent_throttling_hands_records_back_to_kinesis(clock: FixedClock) -> None:
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t", throttle=lambda call: True)
    sink = sink_for(fake, clock, max_attempts=3)
    records = batch_records("gw-1", "line-1", batches=3, per_batch=40)
    with tempfile.TemporaryDirectory() as tmp:
        processor = StreamProcessor(sink=sink, archive=FilesystemArchive(Path(tmp), clock=clock), clock=clock)
        response = StreamHandler(processor).handle(kinesis_event(records))
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [r.record_id for r in records]
    assert fake.calls == 3 * 3  # 120 readings in 2 requests, their alerts in 1; 3 attempts each


def test_sink_rejections_are_quarantined_with_counts_and_do_not_fail_the_batch(clock: FixedClock) -> None:
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t", magnetic_writes=False)
    sink = sink_for(fake, clock)
    fresh = batch_records("gw-1", "line-1", batches=2, per_batch=30)
    stale = batch_records("gw-2", "line-2", batches=1, per_batch=30, start_ms=clock.now_ms() - 9 * HOUR, first_seq=5)
    with tempfile.TemporaryDirectory() as tmp:
        processor = StreamProcessor(sink=sink, archive=FilesystemArchive(Path(tmp), clock=clock), clock=clock)
        reports = []
        handler = StreamHandler(processor, on_report=reports.append)
        response = handler.handle(kinesis_event([*fresh, *stale]))
    assert response["batchItemFailures"] == []
    report = reports[0]
    assert report.written == 60
    assert report.sink_rejected == report.quarantined >= 30


def test_a_time_rejection_the_sink_did_not_expect_is_handed_back_not_quarantined(clock: FixedClock) -> None:
    # GIVEN a table whose memory store was just shortened to 1 h while the sink still believes 6 h
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t", memory_retention_ms=HOUR, magnetic_writes=False)
    sink = sink_for(fake, clock, memory_retention_ms=6 * HOUR)
    late = batch(4, 10, start=clock.now_ms() - 2 * HOUR)
    fresh = batch(5, 10, start=clock.now_ms() - 60_000)
    outcome = sink.write([late, fresh])
    # THEN the late batch is retried later (it can succeed once the window settles) and the rest is written
    assert outcome.incomplete == ("gw-1:4",)
    assert outcome.rejected == ()
    assert outcome.written == 10


def test_data_beyond_the_magnetic_store_is_quarantined(clock: FixedClock) -> None:
    clock.now = T0 + 400 * 86_400_000
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t", magnetic_writes=True)
    sink = sink_for(fake, clock, magnetic_writes=True, magnetic_retention_ms=365 * 86_400_000)
    outcome = sink.write([batch(2, 6)])
    assert {r.reason for r in outcome.rejected} == {"Timestream: time is older than the magnetic store retention"}
    assert outcome.incomplete == ()
    assert fake.calls == 0
