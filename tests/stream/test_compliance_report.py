"""`plantwatch report`: completeness, gaps, alerts, quarantine, models and integrity from a local archive."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from stream_support import T0, FixedClock, batch_records, local_handler

from plantwatch.cli import main
from plantwatch.cloud.stream_handler import kinesis_event
from plantwatch.ports import StreamRecord


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file."""
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def archive(tmp_path: Path, clock: FixedClock) -> Path:
    """Ten batches of 6 sensors x 10 s, the fifth lost; one poison record."""
    handler, _ = local_handler(tmp_path, clock)
    records = batch_records("gw-1", "line-1", batches=10, per_batch=60)
    del records[4]  # readings 12:00:40 - 12:00:49 never arrive
    records.append(StreamRecord(record_id="poison", data=b"\x00junk", arrival_ms=T0, topic=None))
    assert handler.handle(kinesis_event(records))["batchItemFailures"] == []
    return tmp_path / "archive"


def test_report_names_gaps_alerts_quarantine_models_and_integrity(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = ["report", "--plant", "plant-1", "--from", "2026-01-01", "--to", "2026-01-01"]
    assert main([*argv, "--archive", str(archive), "--out", str(out)]) == 0
    completeness = read_csv(out / "completeness.csv")
    assert len(completeness) == 6
    assert {row["received"] for row in completeness} == {"90"}
    assert {row["period_s"] for row in completeness} == {"1.0"}
    gaps = [g for g in read_csv(out / "gaps.csv") if g["sensor_id"] == "line-1-temp-0"]
    # the day before the first reading, and the lost batch
    assert [(g["from"], g["to"], g["missing_readings"]) for g in gaps] == [
        ("2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z", "43199"),
        ("2026-01-01T12:00:39Z", "2026-01-01T12:00:50Z", "10"),
    ]
    alerts = read_csv(out / "alerts.csv")
    assert alerts
    assert all(a["reasons"] == "threshold.high" for a in alerts)
    assert [q["source"] for q in read_csv(out / "quarantine.csv")] == ["stream#poison"]
    assert [m["model"] for m in read_csv(out / "models.csv")] == ["original-thresholds@1"]
    assert read_csv(out / "integrity.csv") == []
    page = (out / "report.html").read_text()
    assert "Archive integrity: <span class='ok'>intact</span>" in page
    assert page.count("<h2") == 6


def test_report_shows_a_tampered_archive(archive: Path, tmp_path: Path) -> None:
    victim = next(archive.glob("batches/**/*.parquet"))
    victim.write_bytes(victim.read_bytes()[:-1])
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "--plant",
                "plant-1",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-02",
                "--archive",
                str(archive),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    findings = read_csv(out / "integrity.csv")
    assert [(f["key"], f["problem"]) for f in findings] == [(victim.relative_to(archive).as_posix(), "truncated")]
    assert "NOT intact" in (out / "report.html").read_text()


def test_report_rejects_a_reversed_range(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "--plant", "plant-1", "--from", "2026-01-02", "--to", "2026-01-01", "--archive", str(archive)]
    assert main(argv) == 2
    assert "--to 2026-01-01 is before --from 2026-01-02" in capsys.readouterr().err
