"""Build the compliance report from an archive (local directory or S3) with DuckDB over its Parquet objects.

Only the partitions of the requested plant and days are read (S3 objects are fetched to a temporary
directory first). Every query is parameterised.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb

from plantwatch.adapters.archive_manifest import ObjectStore, VerifyResult, verify
from plantwatch.adapters.archive_url import open_store
from plantwatch.adapters.fs_archive import FilesystemObjectStore
from plantwatch.services.compliance_report import (
    Report,
    ReportRequest,
    Row,
    Section,
    iso,
    section,
    to_csv,
    to_html,
)

_COMPLETENESS = """
WITH r AS (SELECT DISTINCT sensor_id, line, asset, sensor_type, epoch_ms(ts) AS t FROM readings),
d AS (SELECT *, t - lag(t) OVER (PARTITION BY sensor_id ORDER BY t) AS dt FROM r),
p AS (SELECT sensor_id, any_value(line) AS line, any_value(asset) AS asset, any_value(sensor_type) AS sensor_type,
             count(*) AS received, min(t) AS first_t, max(t) AS last_t,
             coalesce(median(dt) FILTER (WHERE dt > 0), 0) AS period_ms
      FROM d GROUP BY sensor_id)
SELECT * FROM p ORDER BY line, asset, sensor_id
"""
_GAPS = """
WITH r AS (SELECT DISTINCT sensor_id, epoch_ms(ts) AS t FROM readings),
d AS (SELECT *, t - lag(t) OVER (PARTITION BY sensor_id ORDER BY t) AS dt FROM r)
SELECT sensor_id, t - dt AS gap_from, t AS gap_to FROM d WHERE dt > 2 * ? AND sensor_id = ? ORDER BY t
"""
_ALERTS = """
WITH r AS (SELECT sensor_id, line, epoch_ms(ts) AS t, anomaly, score, reasons FROM readings),
d AS (SELECT *, CASE WHEN anomaly AND coalesce(lag(anomaly) OVER w, false) = false THEN 1 ELSE 0 END AS starts
      FROM r WINDOW w AS (PARTITION BY sensor_id ORDER BY t)),
e AS (SELECT *, sum(starts) OVER (PARTITION BY sensor_id ORDER BY t) AS episode FROM d)
SELECT sensor_id, any_value(line) AS line, min(t) AS started, max(t) AS last_seen, count(*) AS readings,
       max(score) AS peak_score, string_agg(DISTINCT reason, ' ') AS reasons
FROM e, unnest(CASE WHEN len(reasons) = 0 THEN ['anomaly'] ELSE reasons END) AS u(reason)
WHERE anomaly GROUP BY sensor_id, episode ORDER BY started, sensor_id
"""
_MODELS = """
SELECT model, count(*) AS readings, count(DISTINCT sensor_id) AS sensors,
       min(epoch_ms(ts)) AS first_used, max(epoch_ms(ts)) AS last_used
FROM readings GROUP BY model ORDER BY first_used
"""


def _materialise(store: ObjectStore, prefixes: list[str], workdir: Path, skip: set[str]) -> list[str]:
    """Local paths of the Parquet objects under ``prefixes`` not in ``skip`` (S3 objects are fetched to ``workdir``)."""
    paths = []
    for prefix in prefixes:
        for key, _ in store.list(prefix):
            if not key.endswith(".parquet") or key in skip:
                continue
            if isinstance(store, FilesystemObjectStore):
                paths.append(str(store.root / key))
                continue
            data = store.get(key)
            if data is None:
                continue
            local = workdir / key
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            paths.append(str(local))
    return paths


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> list[Row]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def build_report(request: ReportRequest, *, archive: str) -> Report:
    """Query the archive for the report's sections and verify its integrity."""
    store = open_store(archive)
    integrity = verify(store)
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect()
        days = request.days()
        suspect = {f.key for f in integrity.findings}  # reported in the integrity section, not read
        batches = [f"batches/date={d}/plant={request.plant}/" for d in days]
        batch_files = _materialise(store, batches, Path(tmp), suspect)
        quarantine_files = _materialise(store, [f"quarantine/date={d}/" for d in days], Path(tmp), suspect)
        window = [request.start_ms, request.end_ms]
        if batch_files:
            con.execute(
                "CREATE TABLE readings AS SELECT * FROM read_parquet(?, hive_partitioning=false) "
                "WHERE epoch_ms(ts) >= ? AND epoch_ms(ts) < ?",
                [batch_files, *window],
            )
        else:
            con.execute(
                "CREATE TABLE readings (sensor_id VARCHAR, line VARCHAR, asset VARCHAR, sensor_type VARCHAR, "
                "ts TIMESTAMP, anomaly BOOLEAN, score DOUBLE, reasons VARCHAR[], model VARCHAR)"
            )
        completeness = _completeness(con, request)
        alerts = _rows(con, _ALERTS)
        for alert in alerts:
            alert["started"], alert["last_seen"] = iso(alert["started"]), iso(alert["last_seen"])
            alert["acknowledged_at"] = "not recorded in the archive"
        models = _rows(con, _MODELS)
        for model in models:
            model["first_used"], model["last_used"] = iso(model["first_used"]), iso(model["last_used"])
        quarantine: list[Row] = []
        if quarantine_files:
            quarantine = _rows(
                con,
                "SELECT received_at_ms, source, reason, sensor_id, payload_bytes FROM read_parquet(?) "
                "WHERE received_at_ms >= ? AND received_at_ms < ? ORDER BY received_at_ms",
                [quarantine_files, *window],
            )
            for q in quarantine:
                q["received_at"] = iso(q.pop("received_at_ms"))
        con.close()
    return Report(
        request=request,
        generated_at_ms=time.time_ns() // 1_000_000,
        archive=archive,
        integrity_ok=integrity.ok,
        sections=(*completeness, *_sections(alerts, quarantine, models, integrity)),
    )


def _completeness(con: duckdb.DuckDBPyConnection, request: ReportRequest) -> tuple[Section, Section]:
    sensors = _rows(con, _COMPLETENESS)
    data_end = max((s["last_t"] for s in sensors), default=request.start_ms)
    until = min(request.end_ms, data_end + 1)
    gaps: list[Row] = []
    for s in sensors:
        period = float(s["period_ms"]) or 1.0
        s["expected"] = max(s["received"], int((until - request.start_ms) // period))
        s["completeness"] = round(s["received"] / s["expected"], 4) if s["expected"] else 1.0
        s["period_s"] = period / 1000
        edges = []
        if s["first_t"] - request.start_ms > 2 * period:
            edges.append({"gap_from": request.start_ms, "gap_to": s["first_t"]})
        edges.extend(_rows(con, _GAPS, [period, s["sensor_id"]]))
        if until - s["last_t"] > 2 * period:
            edges.append({"gap_from": s["last_t"], "gap_to": until})
        for gap in edges:
            gaps.append(
                {
                    "sensor_id": s["sensor_id"],
                    "from": iso(gap["gap_from"]),
                    "to": iso(gap["gap_to"]),
                    "missing_readings": max(0, round((gap["gap_to"] - gap["gap_from"]) / period) - 1),
                }
            )
        s["first"], s["last"] = iso(s["first_t"]), iso(s["last_t"])
    return (
        section(
            "completeness",
            "Data completeness per sensor",
            "Expected readings assume each sensor's median sampling period over the report window (up to the "
            "last archived reading of the plant).",
            sensors,
            ["line", "asset", "sensor_id", "sensor_type", "period_s", "expected", "received", "completeness",
             "first", "last"],
        ),
        section("gaps", "Gaps", "Intervals longer than twice the sensor's sampling period.", gaps,
                ["sensor_id", "from", "to", "missing_readings"]),
    )  # fmt: skip


def _sections(
    alerts: list[Row], quarantine: list[Row], models: list[Row], integrity: VerifyResult
) -> tuple[Section, ...]:
    findings = [{"key": f.key, "problem": f.problem, "detail": f.detail} for f in integrity.findings]
    return (
        section(
            "alerts",
            "Anomalies and alerts",
            "Consecutive anomalous readings of a sensor form one alert. Acknowledgements are kept by the alert "
            "service, not the archive.",
            alerts,
            ["line", "sensor_id", "started", "last_seen", "readings", "peak_score", "reasons", "acknowledged_at"],
        ),
        section("quarantine", "Quarantined inputs", "Inputs refused with the reason given.", quarantine,
                ["received_at", "source", "sensor_id", "reason", "payload_bytes"]),
        section("models", "Model versions in use", "Models that scored the archived readings.", models,
                ["model", "readings", "sensors", "first_used", "last_used"]),
        section(
            "integrity",
            "Archive integrity",
            f"{integrity.entries} manifest entries and {integrity.objects} objects checked against their SHA-256 "
            f"and the hash chain: {'intact' if integrity.ok else 'problems below; those objects were left out'}.",
            findings,
            ["key", "problem", "detail"],
        ),
    )  # fmt: skip


def write_report(request: ReportRequest, *, archive: str, out_dir: Path) -> list[Path]:
    """Write report.html and one CSV per section into ``out_dir``; returns the paths written."""
    report = build_report(request, archive=archive)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.html"]
    paths[0].write_text(to_html(report), encoding="utf-8")
    for sec in report.sections:
        path = out_dir / f"{sec.name}.csv"
        path.write_text(to_csv(sec), encoding="utf-8")
        paths.append(path)
    return paths
