"""Analytics queries answered by DuckDB; every value is a bound parameter."""

from __future__ import annotations

from typing import Any

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.services.analytics import Row, TimeRange


def _rows(cursor: Any) -> list[Row]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_RANGE = "ts >= make_timestamp(?::BIGINT * 1000) AND ts < make_timestamp(?::BIGINT * 1000)"


class DuckDBQueries:
    """:class:`~plantwatch.services.analytics.AnalyticsQueries` over a :class:`DuckDBStore`."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def sensors(self, *, line: str | None) -> list[Row]:
        """Catalogue of sensors."""
        cur = self.store.cursor().execute(
            "SELECT plant, line, asset, sensor_id, sensor_type, unit, count(*) AS readings, "
            "epoch_ms(max(ts)) AS last_ts_ms FROM readings WHERE (?::VARCHAR IS NULL OR line = ?) "
            "GROUP BY ALL ORDER BY plant, line, asset, sensor_id",
            [line, line],
        )
        return _rows(cur)

    def readings(self, *, sensor_id: str, window: TimeRange, limit: int) -> list[Row]:
        """Raw readings of one sensor."""
        cur = self.store.cursor().execute(
            f"SELECT epoch_ms(ts) AS ts_ms, value, score, anomaly, reasons FROM readings "  # noqa: S608
            f"WHERE sensor_id = ? AND {_RANGE} ORDER BY ts LIMIT ?",
            [sensor_id, window.start_ms, window.end_ms, limit],
        )
        return _rows(cur)

    def buckets(self, *, sensor_id: str, window: TimeRange, bucket_s: int, limit: int) -> list[Row]:
        """Per-bucket aggregates of one sensor."""
        cur = self.store.cursor().execute(
            "SELECT epoch_ms(time_bucket(to_seconds(?::BIGINT), ts)) AS ts_ms, avg(value) AS avg, "  # noqa: S608
            "min(value) AS min, max(value) AS max, count(*) AS count, count(*) FILTER (WHERE anomaly) AS anomalies "
            f"FROM readings WHERE sensor_id = ? AND {_RANGE} GROUP BY 1 ORDER BY 1 LIMIT ?",
            [bucket_s, sensor_id, window.start_ms, window.end_ms, limit],
        )
        return _rows(cur)

    def anomalies(self, *, line: str | None, window: TimeRange, limit: int) -> list[Row]:
        """Anomalous readings, newest first."""
        cur = self.store.cursor().execute(
            "SELECT plant, line, asset, sensor_id, sensor_type, unit, epoch_ms(ts) AS ts_ms, value, score, "  # noqa: S608
            f"reasons, model FROM readings WHERE anomaly AND (?::VARCHAR IS NULL OR line = ?) AND {_RANGE} "
            "ORDER BY ts DESC, sensor_id LIMIT ?",
            [line, line, window.start_ms, window.end_ms, limit],
        )
        return _rows(cur)

    def summary(self, *, window: TimeRange) -> list[Row]:
        """Average and count per sensor, line and type."""
        cur = self.store.cursor().execute(
            "SELECT sensor_id, line AS production_line, sensor_type, avg(value) AS avg_value, "  # noqa: S608
            f"count(*) AS reading_count, epoch_ms(max(ts)) AS last_ts_ms FROM readings WHERE {_RANGE} "
            "GROUP BY sensor_id, line, sensor_type ORDER BY max(ts) DESC, sensor_id",
            [window.start_ms, window.end_ms],
        )
        return _rows(cur)

    def totals(self) -> Row:
        """Counts of what is stored."""
        cur = self.store.cursor().execute(
            "SELECT (SELECT count(*) FROM readings) AS readings, "
            "(SELECT count(*) FROM readings WHERE anomaly) AS anomalies, "
            "(SELECT count(*) FROM batches) AS batches, (SELECT count(*) FROM quarantine) AS quarantined"
        )
        return _rows(cur)[0]
