"""Rollups kept on ingest (like continuous aggregates): per-sensor 1-minute and 1-hour aggregates, latest reading.

Dashboards read these small tables instead of scanning raw readings. ``maintain_rollups`` folds a set of new
readings (a table or view with the ``readings`` columns) into them inside the writer's transaction.
"""

from __future__ import annotations

from typing import Any, Final

ROLLUP_GRAINS: Final = {"readings_1m": 60, "readings_1h": 3600}

_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    plant VARCHAR NOT NULL, line VARCHAR NOT NULL, asset VARCHAR NOT NULL, sensor_id VARCHAR NOT NULL,
    sensor_type VARCHAR NOT NULL, unit VARCHAR NOT NULL, bucket_ms BIGINT NOT NULL,
    n BIGINT NOT NULL, total DOUBLE NOT NULL, lo DOUBLE NOT NULL, hi DOUBLE NOT NULL, anomalies BIGINT NOT NULL,
    PRIMARY KEY (plant, sensor_id, bucket_ms)
);
"""

ROLLUP_SCHEMA: Final = (
    "".join(_ROLLUP_TABLE.format(name=name) for name in ROLLUP_GRAINS)
    + """
CREATE TABLE IF NOT EXISTS sensor_latest (
    plant VARCHAR NOT NULL, line VARCHAR NOT NULL, asset VARCHAR NOT NULL, sensor_id VARCHAR NOT NULL,
    sensor_type VARCHAR NOT NULL, unit VARCHAR NOT NULL, model VARCHAR NOT NULL, n BIGINT NOT NULL,
    last_ms BIGINT NOT NULL, last_value DOUBLE NOT NULL, last_score DOUBLE NOT NULL, last_anomaly BOOLEAN NOT NULL,
    PRIMARY KEY (plant, sensor_id)
);
"""
)

_FOLD_BUCKETS = """
INSERT INTO {name}
SELECT plant, any_value(line), any_value(asset), sensor_id, any_value(sensor_type), any_value(unit),
       epoch_ms(ts::TIMESTAMP) // {grain_ms} * {grain_ms} AS bucket_ms, count(*), sum(value), min(value), max(value),
       count(*) FILTER (WHERE anomaly)
FROM {source} GROUP BY plant, sensor_id, bucket_ms
ON CONFLICT DO UPDATE SET n = n + EXCLUDED.n, total = total + EXCLUDED.total, lo = least(lo, EXCLUDED.lo),
    hi = greatest(hi, EXCLUDED.hi), anomalies = anomalies + EXCLUDED.anomalies
"""

_FOLD_LATEST = """
INSERT INTO sensor_latest
SELECT plant, arg_max(line, ts), arg_max(asset, ts), sensor_id, arg_max(sensor_type, ts), arg_max(unit, ts),
       arg_max(model, ts), count(*), epoch_ms(max(ts)::TIMESTAMP), arg_max(value, ts), arg_max(score, ts),
       arg_max(anomaly, ts)
FROM {source} GROUP BY plant, sensor_id
ON CONFLICT DO UPDATE SET
    n = n + EXCLUDED.n,
    line = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.line ELSE line END,
    asset = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.asset ELSE asset END,
    sensor_type = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.sensor_type ELSE sensor_type END,
    unit = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.unit ELSE unit END,
    model = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.model ELSE model END,
    last_value = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.last_value ELSE last_value END,
    last_score = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.last_score ELSE last_score END,
    last_anomaly = CASE WHEN EXCLUDED.last_ms >= last_ms THEN EXCLUDED.last_anomaly ELSE last_anomaly END,
    last_ms = greatest(last_ms, EXCLUDED.last_ms)
"""


def maintain_rollups(cursor: Any, source: str) -> None:
    """Fold the readings in table/view ``source`` (a trusted name, never user input) into every rollup."""
    for name, grain_s in ROLLUP_GRAINS.items():
        cursor.execute(_FOLD_BUCKETS.format(name=name, grain_ms=grain_s * 1000, source=source))
    cursor.execute(_FOLD_LATEST.format(source=source))
