"""A gateway whose spool starts over (a replaced box with the same thing name, a wiped data directory) numbers its
batches past the old spool's, so the cloud's idempotency key (gateway, seq) does not take the new box's readings
for re-deliveries: the real DuckDB store and filesystem archive keep every one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.edge.bootstrap import build_gateway
from plantwatch.edge.config import parse_config
from plantwatch.ports import StreamRecord
from plantwatch.services.stream_processing import StreamProcessor
from tests.helpers import NOW_MS


class Clock:
    def now_ms(self) -> int:
        return NOW_MS


def run_box(data_dir: Path, start_ms: int, steps: int) -> list[StreamRecord]:
    """A simulated line-1 gateway as the edge runs it (its spool in ``data_dir``); the batches it sealed."""
    config = parse_config(
        {
            "gateway_id": "gw-line-1",
            "plant": "plant-1",
            "data_dir": str(data_dir),
            "batch_interval_ms": 0,
            "summary_window_ms": 0,
            "sources": [{"kind": "simulator", "line": "line-1", "assets_per_line": 1}],
            "uplink": {"transport": "none"},
            "alerts": {"floor": "none"},
        }
    )
    runtime = build_gateway(config)
    try:
        for i in range(steps):
            runtime.gateway.step(start_ms + i * 1000)
    finally:
        runtime.stop(drain_s=0)
    spool = SqliteSpool(config.spool_path())
    try:
        return [
            StreamRecord(record_id=str(b.seq), data=b.payload, arrival_ms=NOW_MS, topic=b.topic)
            for b in spool.peek(100)
        ]
    finally:
        spool.close()


def test_a_new_spool_of_the_same_gateway_numbers_past_the_old_one_and_loses_nothing(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")
    processor = StreamProcessor(sink=store, archive=FilesystemArchive(tmp_path / "archive"), clock=Clock())
    old = run_box(tmp_path / "old-box", NOW_MS - 3_600_000, 3)
    first = processor.process(old)
    assert first.duplicate_batches == 0 and first.written == first.readings_in > 0
    # WHEN the box is replaced (or its data directory wiped): the same gateway id, a new spool, later readings
    shutil.rmtree(tmp_path / "old-box")
    new = run_box(tmp_path / "new-box", NOW_MS - 1_800_000, 3)
    # THEN its batches are numbered past the old spool's, and every reading is stored and archived
    assert min(int(r.record_id) for r in new) > max(int(r.record_id) for r in old)
    second = processor.process(new)
    assert second.duplicate_batches == 0 and second.written == second.readings_in > 0
    readings = store.cursor().execute("SELECT count(*) FROM readings").fetchone()
    archived = sum(pq.read_table(f).num_rows for f in (tmp_path / "archive").rglob("*.parquet"))
    assert readings is not None and readings[0] == archived == first.written + second.written


def test_first_seq_numbers_a_new_spool_only_and_an_older_spool_reads_as_numbered_from_1(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.sqlite", first_seq=5_000)
    spool.put("t", [(5_000, b"x")], [1])
    spool.close()
    reopened = SqliteSpool(tmp_path / "s.sqlite", first_seq=9_000)  # an existing spool keeps its numbers
    assert (reopened.first_seq(), reopened.next_seq()) == (5_000, 5_001)
    # a spool written before first_seq was kept (its counters without it) was numbered from 1
    reopened._db.execute("DELETE FROM counters WHERE name = 'first_seq'")
    reopened.close()
    older = SqliteSpool(tmp_path / "s.sqlite", first_seq=9_000)
    assert (older.first_seq(), older.next_seq()) == (1, 5_001)
    older.close()
    with pytest.raises(ValueError, match="first_seq must be positive"):
        SqliteSpool(tmp_path / "t.sqlite", first_seq=0)


def test_a_box_whose_clock_is_not_set_yet_still_numbers_past_any_spool_numbered_from_1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from plantwatch.adapters.sqlite_spool import SEQ_FLOOR_MS, fresh_seq

    assert fresh_seq() >= SEQ_FLOOR_MS  # a set clock: now
    monkeypatch.setattr(time, "time_ns", lambda: 42 * 1_000_000_000)  # booted without NTP: 1970
    with caplog.at_level("WARNING", logger="plantwatch.adapters.sqlite_spool"):
        assert fresh_seq() == SEQ_FLOOR_MS
    assert "set the clock (NTP)" in caplog.text
