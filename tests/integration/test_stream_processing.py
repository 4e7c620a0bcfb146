"""Stream processing over the real DuckDB store and filesystem archive: poison records, duplicates, legacy input."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.contract import encode_batches
from plantwatch.ports import StreamRecord
from plantwatch.services.stream_processing import StreamProcessor
from tests.helpers import HEADER, NOW_MS, scored


class FixedClock:
    def now_ms(self) -> int:
        return NOW_MS


@pytest.fixture
def parts(tmp_path: Path) -> tuple[StreamProcessor, DuckDBStore, Path]:
    store = DuckDBStore(tmp_path / "db.duckdb")
    archive = tmp_path / "archive"
    processor = StreamProcessor(sink=store, archive=FilesystemArchive(archive), clock=FixedClock())
    return processor, store, archive


def records(*payloads: bytes, topic: str = "plantwatch/gateways/gw-line-1/batches") -> list[StreamRecord]:
    return [StreamRecord(record_id=str(i + 1), data=p, arrival_ms=NOW_MS, topic=topic) for i, p in enumerate(payloads)]


def count(store: DuckDBStore, sql: str) -> int:
    return int(store.cursor().execute(sql).fetchone()[0])  # type: ignore[index]


def test_poison_records_are_quarantined_and_good_ones_stored(parts: tuple[StreamProcessor, DuckDBStore, Path]) -> None:
    processor, store, archive = parts
    good = [b.payload for b in encode_batches(HEADER, [scored(i) for i in range(30)], first_seq=1, max_readings=10)]
    report = processor.process(records(good[0], b"\x00poison", good[1], b'{"schema_version": 9}', good[2]))

    assert (report.records, report.written, report.quarantined) == (5, 30, 2)
    assert count(store, "SELECT count(*) FROM readings") == 30
    reasons = [r[0] for r in store.cursor().execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()]
    assert "unknown schema_version" in reasons[1] and "neither gzip nor JSON" in reasons[0]
    kept = duckdb.sql(f"SELECT source, payload_bytes FROM read_parquet('{archive}/quarantine/**/*.parquet')").fetchall()
    assert sorted(kept) == [
        ("plantwatch/gateways/gw-line-1/batches#2", 7),
        ("plantwatch/gateways/gw-line-1/batches#4", 21),
    ]


def test_duplicate_delivery_stores_each_reading_once(parts: tuple[StreamProcessor, DuckDBStore, Path]) -> None:
    processor, store, _ = parts
    [batch] = encode_batches(HEADER, [scored(i) for i in range(5)], first_seq=9)

    first = processor.process(records(batch.payload, batch.payload))
    again = processor.process(records(batch.payload))

    assert (first.written, first.duplicate_batches) == (5, 1)
    assert (again.written, again.duplicate_batches) == (0, 1)
    assert count(store, "SELECT count(*) FROM readings") == 5
    assert count(store, "SELECT count(*) FROM batches WHERE batch_key = 'gw-line-1:9'") == 1


def test_legacy_readings_keep_their_event_time_and_get_original_thresholds(
    parts: tuple[StreamProcessor, DuckDBStore, Path],
) -> None:
    processor, store, archive = parts
    event = {"sensor_id": "temp-001", "production_line": "line1", "type": "temperature", "value": 85.5}
    payload = json.dumps({**event, "timestamp": "2025-11-24T15:59:00Z"}).encode()

    report = processor.process(records(payload, payload, topic="manufacturing/sensors/temp-001/data"))

    assert (report.written, report.duplicate_batches) == (1, 1)
    row = store.cursor().execute("SELECT epoch_ms(ts), value, anomaly, reasons, model FROM readings").fetchone()
    assert row == (NOW_MS - 60_000, 85.5, True, ["threshold.high"], "original-thresholds@1")
    assert list((archive / "batches").glob("date=2025-11-24/plant=default/line=line1/*.parquet"))


def test_archive_holds_every_accepted_reading(parts: tuple[StreamProcessor, DuckDBStore, Path]) -> None:
    processor, _, archive = parts
    payloads = [b.payload for b in encode_batches(HEADER, [scored(i) for i in range(40)], first_seq=1, max_readings=7)]
    processor.process(records(*payloads))
    archived = duckdb.sql(
        f"SELECT count(*), count(DISTINCT batch_key) FROM read_parquet('{archive}/batches/**/*.parquet')"
    )
    assert archived.fetchall() == [(40, 6)]
