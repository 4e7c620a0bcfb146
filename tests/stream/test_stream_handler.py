"""The stream-processor Lambda handler over canned, real-shaped Kinesis events (DuckDB sink, local archive)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import duckdb
import pytest
from stream_support import EVENTS, context, load_app

from plantwatch.adapters.archive_manifest import verify
from plantwatch.adapters.fs_archive import FilesystemObjectStore
from plantwatch.cloud.settings import StreamSettings

EVENT = EVENTS / "kinesis-batches-and-raw-readings.json"


def rows(tmp_path: Path, app: ModuleType, sql: str) -> list[tuple[object, ...]]:
    """Query the Lambda's DuckDB sink through its own connection."""
    store = app.stream.processor.sink
    return list(store.cursor().execute(sql).fetchall())


def test_canned_event_stores_batches_scores_raw_readings_and_quarantines_poison(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a Kinesis event with 4 scored batches (120 readings), 2 raw readings and 2 poison records
    event = json.loads(EVENT.read_text())
    app = load_app(monkeypatch, tmp_path)
    # WHEN the handler runs
    response = app.handler(event, context())
    # THEN nothing is handed back, every valid reading is stored once and the poison is quarantined
    assert response == {"batchItemFailures": []}
    assert rows(tmp_path, app, "SELECT count(*) FROM readings") == [(122,)]
    assert rows(tmp_path, app, "SELECT count(*) FROM quarantine") == [(2,)]
    # raw readings keep their own event time and are scored with the original thresholds (80 degC)
    raw = rows(
        tmp_path, app, "SELECT epoch_ms(ts), value, anomaly FROM readings WHERE sensor_id = 'temp-001' ORDER BY ts"
    )
    assert raw == [(1_767_268_830_000, 85.5, True), (1_767_268_831_000, 75.5, False)]
    # and the archive holds exactly what was accepted, intact
    result = verify(FilesystemObjectStore(tmp_path / "archive"))
    assert result.ok
    assert result.objects == 4
    archived = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/archive/batches/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert archived == [(122,)]
    # metrics go out as CloudWatch EMF on stdout
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf
    assert emf[-1]["ReadingsWritten"] == [122.0]
    assert emf[-1]["Quarantined"] == [2.0]


def test_the_same_event_delivered_twice_has_one_effect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    event = json.loads(EVENT.read_text())
    app = load_app(monkeypatch, tmp_path)
    app.handler(event, context())
    listing_before = sorted(FilesystemObjectStore(tmp_path / "archive").list())
    # WHEN Kinesis delivers the whole event again
    response = app.handler(event, context())
    # THEN one row per (sensor, timestamp) and no new archive object or manifest entry
    assert response == {"batchItemFailures": []}
    assert rows(tmp_path, app, "SELECT count(*), count(DISTINCT (sensor_id, ts)) FROM readings") == [(122, 122)]
    assert rows(tmp_path, app, "SELECT count(*) FROM quarantine") == [(2,)]
    assert sorted(FilesystemObjectStore(tmp_path / "archive").list()) == listing_before


def test_settings_come_from_the_environment_and_name_what_is_wrong() -> None:
    settings = StreamSettings.from_env(
        {
            "PLANTWATCH_SINK": "timestream",
            "TIMESTREAM_DATABASE": "db",
            "TIMESTREAM_TABLE": "t",
            "PLANTWATCH_ARCHIVE_URL": "s3://bucket/archive",
        }
    )
    assert (settings.sink, settings.timestream_database, settings.timestream_table) == ("timestream", "db", "t")
    with pytest.raises(ValueError, match="sink"):
        StreamSettings.from_env({"PLANTWATCH_SINK": "influx", "PLANTWATCH_ARCHIVE_URL": "/tmp/a"})
    with pytest.raises(ValueError, match="PLANTWATCH_ARCHIVE_URL"):
        StreamSettings.from_env({"PLANTWATCH_SINK": "duckdb"})
