"""Partial failure: poison never blocks a shard; a transient failure hands back exactly the unwritten tail."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Sequence
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stream_support import T0, FixedClock, batch_records, local_handler

from plantwatch.adapters.archive_manifest import verify
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive, FilesystemObjectStore
from plantwatch.adapters.timestream import TimestreamSink
from plantwatch.cloud.stream_handler import StreamHandler, kinesis_event
from plantwatch.contract.batch import ScoredBatch
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.ports import StreamRecord, WriteOutcome
from plantwatch.services.stream_processing import StreamProcessor
from plantwatch.testing.timestream_fake import FakeTimestreamWrite

POISONS = [
    b"not json at all",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00 truncated gzip",
    b'{"schema_version": 99, "gateway_id": "gw", "seq": 1}',
    b"[1, 2, 3]",
    gzip.compress(b'{"schema_version": 1, "gateway_id": "gw-x", "seq": 0}'),
    b'{"sensor_id": "t-1", "production_line": "l", "type": "temperature", "value": "NaN", "timestamp": "x"}',
]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def failures(response: dict[str, list[dict[str, str]]]) -> list[str]:
    """Sequence numbers Lambda is asked to deliver again."""
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def stored(store: DuckDBStore) -> list[tuple[object, ...]]:
    """Every stored reading, in a stable order."""
    return store.cursor().execute("SELECT sensor_id, ts, value, batch_key FROM readings ORDER BY ALL").fetchall()


@FAST
@given(position=st.integers(min_value=0, max_value=8), poison=st.sampled_from(POISONS))
def test_a_poison_record_anywhere_is_quarantined_and_the_rest_written(position: int, poison: bytes) -> None:
    clock = FixedClock()
    records = batch_records("gw-1", "line-1", batches=8, per_batch=25)
    bad = StreamRecord(record_id="poison", data=poison, arrival_ms=T0, topic="plantwatch/gateways/gw-1/batches")
    records.insert(position, bad)
    with tempfile.TemporaryDirectory() as tmp:
        handler, store = local_handler(Path(tmp), clock)
        response = handler.handle(kinesis_event(records))
        assert failures(response) == []
        assert store.cursor().execute("SELECT count(*) FROM readings").fetchall() == [(200,)]
        sources = store.cursor().execute("SELECT source FROM quarantine").fetchall()
        assert sources == [("plantwatch/gateways/gw-1/batches#poison",)]
        assert verify(FilesystemObjectStore(Path(tmp) / "archive")).ok


class FailingFrom:
    """A sink that writes batches before the n-th distinct batch of its first write, then fails transiently."""

    def __init__(self, inner: DuckDBStore, fail_at: int, *, raise_instead: bool) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.raise_instead = raise_instead
        self.armed = True

    def write(self, batches: Sequence[ScoredBatch]) -> WriteOutcome:
        """Write a prefix and report the rest incomplete (or raise), once."""
        if not self.armed:
            return self.inner.write(batches)
        self.armed = False
        if self.raise_instead:
            raise TimeoutError("simulated sink timeout")
        head, tail = batches[: self.fail_at], batches[self.fail_at :]
        outcome = self.inner.write(head)
        return msgspec.structs.replace(outcome, incomplete=tuple(b.key for b in tail))

    def record_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Delegate."""
        self.inner.record_quarantine(entries)


def replay_until_done(handler: StreamHandler, records: list[StreamRecord]) -> int:
    """Deliver as Lambda does: after a partial failure, again from the lowest returned sequence number."""
    deliveries = 0
    pending = records
    while pending:
        deliveries += 1
        retry = failures(handler.handle(kinesis_event(pending)))
        if not retry:
            break
        ids = [r.record_id for r in pending]
        pending = pending[min(ids.index(r) for r in retry) :]
    return deliveries


@FAST
@given(fail_at=st.integers(min_value=0, max_value=9), raise_instead=st.booleans())
def test_replaying_from_the_returned_sequence_number_reaches_the_clean_state(fail_at: int, raise_instead: bool) -> None:
    clock = FixedClock()
    records = batch_records("gw-1", "line-1", batches=10, per_batch=20)
    with tempfile.TemporaryDirectory() as clean_dir, tempfile.TemporaryDirectory() as flaky_dir:
        clean, clean_store = local_handler(Path(clean_dir), clock)
        assert replay_until_done(clean, records) == 1
        flaky_store = DuckDBStore(Path(flaky_dir) / "store.duckdb")
        sink = FailingFrom(flaky_store, fail_at, raise_instead=raise_instead)
        flaky, _ = local_handler(Path(flaky_dir) / "f", clock, sink=sink)
        first = failures(flaky.handle(kinesis_event(records)))
        # the handler hands back exactly the records from the first one not fully written
        expected_from = 0 if raise_instead else fail_at
        assert first == [r.record_id for r in records[expected_from:]]
        ids = [r.record_id for r in records]
        assert replay_until_done(flaky, records[min(ids.index(r) for r in first) :] if first else []) <= 1
        assert stored(flaky_store) == stored(clean_store)
        archived = verify(FilesystemObjectStore(Path(flaky_dir) / "f" / "archive"))
        assert archived.ok


@FAST
@given(throttled_calls=st.sets(st.integers(min_value=1, max_value=12), max_size=6))
def test_timestream_throttling_anywhere_converges_to_the_clean_state(throttled_calls: set[int]) -> None:
    clock = FixedClock()
    records = batch_records("gw-1", "line-1", batches=6, per_batch=50)

    def run(throttle: set[int]) -> FakeTimestreamWrite:
        fake = FakeTimestreamWrite(clock=clock, database="db", table="t", throttle=lambda call: call in throttle)
        sink = TimestreamSink(
            fake, database="db", table="t", clock=clock, max_attempts=2, workers=1, sleep=lambda s: None
        )
        with tempfile.TemporaryDirectory() as tmp:
            processor = StreamProcessor(sink=sink, archive=FilesystemArchive(Path(tmp), clock=clock), clock=clock)
            deliveries = replay_until_done(StreamHandler(processor), records)
            assert deliveries <= 1 + len(throttle)
            assert verify(FilesystemObjectStore(Path(tmp))).ok
        return fake

    assert run(throttled_calls).rows == run(set()).rows
