"""Sinks and the archive table take batches of columns and of structs alike, with the same effect."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_support import T0, FixedClock, scored_readings

from plantwatch.adapters.arrow_tables import readings_table
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.adapters.timestream import TimestreamSink
from plantwatch.adapters.timestream_records import READING_MEASURE, float_reprs
from plantwatch.contract.batch import SCHEMA_VERSION, ScoredBatch
from plantwatch.contract.columns import BatchColumns
from plantwatch.domain.thresholds import THRESHOLD_MODEL
from plantwatch.ports import WriteOutcome
from plantwatch.testing.timestream_fake import FakeTimestreamWrite


def batches() -> list[ScoredBatch]:
    """Three batches of two lines, the last one re-stating a reading of the first with another value."""
    out = [
        ScoredBatch(
            schema_version=SCHEMA_VERSION,
            gateway_id=f"gw-{line}",
            seq=seq,
            plant="plant-1",
            model=THRESHOLD_MODEL,
            readings=tuple(scored_readings(line, 130, T0 + seq * 60_000)),
        )
        for seq, line in [(1, "line-1"), (2, "line-2")]
    ]
    first = out[0].readings[0]
    moved = msgspec.structs.replace(first, reading=msgspec.structs.replace(first.reading, value=99.5))
    out.append(msgspec.structs.replace(out[0], seq=5, readings=(moved,)))
    return out


def written(
    given: list[ScoredBatch] | list[BatchColumns], clock: FixedClock
) -> tuple[FakeTimestreamWrite, WriteOutcome]:
    """The fake after one write of ``given``, and the sink's outcome."""
    fake = FakeTimestreamWrite(clock=clock, database="db", table="t")
    return fake, TimestreamSink(fake, database="db", table="t", clock=clock, workers=1).write(given)


def test_timestream_rows_are_the_same_from_columns_and_from_structs(clock: FixedClock) -> None:
    structs = batches()
    from_structs, outcome = written(structs, clock)
    from_columns, same = written([BatchColumns.of(b) for b in structs], clock)
    assert from_columns.rows == from_structs.rows
    assert same == outcome
    assert from_columns.calls == from_structs.calls == 3 + 1  # 261 readings, and their alerts in one call
    # the re-stated reading shares a request with the first (rows are grouped by sensor): refused as a duplicate
    assert [(r.batch_key, r.sensor_id) for r in outcome.rejected] == [("gw-line-1:5", "line-1-temp-0")]
    assert "Duplicate data" in outcome.rejected[0].reason
    assert outcome.written == 260
    reading = structs[2].readings[0].reading
    stored = {
        key: value
        for key, value in from_columns.measures(READING_MEASURE).items()
        if ("sensor_id", reading.sensor_id) in key[0] and key[2] == reading.ts_ms
    }
    assert list(stored.values()) == [
        (
            1,
            (
                ("value", "DOUBLE", repr(structs[0].readings[0].reading.value)),
                ("score", "DOUBLE", "0.0"),
                ("anomaly", "BOOLEAN", "false"),
            ),
        )
    ]


def test_the_archive_table_holds_every_reading_with_its_batch(clock: FixedClock) -> None:
    structs = batches()
    table = readings_table([BatchColumns.of(structs[0]), structs[1], BatchColumns.of(structs[2])])
    assert table.equals(readings_table(structs))
    expected = [
        {
            "plant": r.reading.plant,
            "line": r.reading.line,
            "asset": r.reading.asset,
            "sensor_id": r.reading.sensor_id,
            "sensor_type": r.reading.sensor_type,
            "unit": r.reading.unit,
            "ts": datetime.fromtimestamp(r.reading.ts_ms / 1000, tz=UTC).replace(tzinfo=None),
            "value": r.reading.value,
            "score": r.score,
            "anomaly": r.anomaly,
            "reasons": list(r.reasons),
            "batch_key": b.key,
            "model": f"{b.model.name}@{b.model.version}",
        }
        for b in structs
        for r in b.readings
    ]
    assert table.to_pylist() == expected
    assert any(row["reasons"] for row in expected)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**17), 10**17).map(float),
        min_size=1,
        max_size=50,
    )
)
def test_measure_values_are_written_as_python_writes_them(values: list[float]) -> None:
    edges = [0.0, -0.0, 1e-4, 9.9e-5, 1e15, 1e16, 9999999999999998.0, 5e-324, 123.0, -5.0, 55.3, 1.5e10]
    assert float_reprs(np.array(values + edges)) == [repr(v) for v in values + edges]


def test_archive_objects_hold_each_partitions_rows_in_order(tmp_path: Path, clock: FixedClock) -> None:
    # GIVEN batches of two lines whose readings cross midnight, interleaved
    late = T0 + 43_200_000 - 30_000  # 23:59:30
    structs = [
        ScoredBatch(
            schema_version=SCHEMA_VERSION,
            gateway_id=f"gw-{line}",
            seq=seq,
            plant="plant-1",
            model=THRESHOLD_MODEL,
            readings=tuple(scored_readings(line, 300, late + seq)),
        )
        for seq, line in [(1, "line-2"), (2, "line-1"), (3, "line-2")]
    ]
    # WHEN they are archived as columns
    FilesystemArchive(tmp_path, clock=clock).put_batches([BatchColumns.of(b) for b in structs])
    # THEN each (date, plant, line) object holds exactly that partition's rows, in their original order
    everything = readings_table(structs).to_pylist()
    objects = sorted(tmp_path.glob("batches/**/*.parquet"))
    assert [p.relative_to(tmp_path / "batches").parent.as_posix() for p in objects] == [
        f"date={day}/plant=plant-1/line={line}" for day in ("2026-01-01", "2026-01-02") for line in ("line-1", "line-2")
    ]
    for path in objects:
        day, _, line = (part.split("=")[1] for part in path.relative_to(tmp_path / "batches").parent.parts)
        expected = [r for r in everything if r["line"] == line and r["ts"].date().isoformat() == day]
        assert pq.read_table(path).to_pylist() == expected
