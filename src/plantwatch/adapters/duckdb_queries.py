"""Analytics queries answered by DuckDB; every value is a bound parameter, every query carries the caller's scope.

Bucketed queries read the rollups kept on ingest (1-minute, 1-hour) whenever the bucket is a whole number of
their grain, and raw readings only for sub-minute buckets.
"""

from __future__ import annotations

from typing import Any

from plantwatch.adapters.duckdb_rollups import ROLLUP_GRAINS
from plantwatch.adapters.duckdb_sql import IN_SCOPE, rows, scope_params
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.services.analytics import Row, Scope, Series, TimeRange

_RANGE = "ts >= make_timestamp(?::BIGINT * 1000) AND ts < make_timestamp(?::BIGINT * 1000)"


_WHICH = "(?::VARCHAR IS NULL OR sensor_id = ?) AND (?::VARCHAR IS NULL OR line = ?)"


def _which(series: Series) -> list[Any]:
    return [series.sensor_id, series.sensor_id, series.line, series.line]


class DuckDBQueries:
    """:class:`~plantwatch.services.analytics.AnalyticsQueries` over a :class:`DuckDBStore`."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def _query(self, sql: str, params: list[Any]) -> list[Row]:
        return rows(self.store.cursor().execute(sql, params))

    def sensors(self, scope: Scope) -> list[Row]:
        """Catalogue of sensors, from the latest-reading rollup."""
        return self._query(
            "SELECT plant, line, asset, sensor_id, sensor_type, unit, model, n AS readings, last_ms AS last_ts_ms, "  # noqa: S608
            f"last_value, last_score, last_anomaly FROM sensor_latest WHERE {IN_SCOPE} "
            "ORDER BY plant, line, asset, sensor_id",
            scope_params(scope),
        )

    def readings(self, scope: Scope, *, series: Series, window: TimeRange, limit: int) -> list[Row]:
        """Raw readings of one sensor or line, oldest first."""
        return self._query(
            "SELECT plant, line, asset, sensor_id, sensor_type, unit, epoch_ms(ts) AS ts_ms, value, score, anomaly, "  # noqa: S608
            f"reasons, model FROM readings WHERE {_WHICH} AND {_RANGE} AND {IN_SCOPE} ORDER BY ts, sensor_id LIMIT ?",
            [*_which(series), window.start_ms, window.end_ms, *scope_params(scope), limit],
        )

    def buckets(self, scope: Scope, *, series: Series, window: TimeRange, bucket_s: int, tz: str | None) -> list[Row]:
        """Per-sensor, per-bucket n/total/min/max/anomalies (UTC buckets; ``tz`` is handled by the service)."""
        del tz  # local-time bucketing happens in the service, over UTC buckets of a fine enough grain
        bucket_ms = bucket_s * 1000
        grains = [(name, g) for name, g in ROLLUP_GRAINS.items() if bucket_s % g == 0]
        which, params = _WHICH, _which(series)
        if grains:
            table, _ = grains[-1]
            sql = (
                f"SELECT plant, line, sensor_id, bucket_ms // {bucket_ms} * {bucket_ms} AS ts_ms, sum(n) AS n, "  # noqa: S608
                f"sum(total) AS total, min(lo) AS min, max(hi) AS max, sum(anomalies) AS anomalies FROM {table} "
                f"WHERE {which} AND bucket_ms >= ? AND bucket_ms < ? AND {IN_SCOPE} GROUP BY ALL ORDER BY 1, 2, 3, 4"
            )
        else:
            sql = (
                f"SELECT plant, line, sensor_id, epoch_ms(ts) // {bucket_ms} * {bucket_ms} AS ts_ms, count(*) AS n, "  # noqa: S608
                "sum(value) AS total, min(value) AS min, max(value) AS max, "
                "count(*) FILTER (WHERE anomaly) AS anomalies "
                f"FROM readings WHERE {which} AND {_RANGE} AND {IN_SCOPE} GROUP BY ALL ORDER BY 1, 2, 3, 4"
            )
        return self._query(sql, [*params, window.start_ms, window.end_ms, *scope_params(scope)])

    def anomalies(self, scope: Scope, *, window: TimeRange, limit: int) -> list[Row]:
        """Anomalous readings, newest first."""
        return self._query(
            "SELECT plant, line, asset, sensor_id, sensor_type, unit, epoch_ms(ts) AS ts_ms, value, score, "  # noqa: S608
            f"reasons, model FROM readings WHERE anomaly AND {_RANGE} AND {IN_SCOPE} "
            "ORDER BY ts DESC, sensor_id LIMIT ?",
            [window.start_ms, window.end_ms, *scope_params(scope), limit],
        )

    def summary(self, scope: Scope, *, window: TimeRange) -> list[Row]:
        """Average and count per sensor, line and type."""
        return self._query(
            "SELECT sensor_id, line AS production_line, sensor_type, avg(value) AS avg_value, "  # noqa: S608
            f"count(*) AS reading_count FROM readings WHERE {_RANGE} AND {IN_SCOPE} "
            "GROUP BY sensor_id, line, sensor_type ORDER BY max(ts) DESC, sensor_id",
            [window.start_ms, window.end_ms, *scope_params(scope)],
        )

    def totals(self, scope: Scope) -> Row:
        """Counts of what is stored in scope (quarantined inputs carry no plant: they are counted platform-wide)."""
        return self._query(
            f"SELECT (SELECT coalesce(sum(n), 0) FROM sensor_latest WHERE {IN_SCOPE}) AS readings, "  # noqa: S608
            f"(SELECT coalesce(sum(anomalies), 0) FROM readings_1h WHERE {IN_SCOPE}) AS anomalies, "
            "(SELECT count(*) FROM batches WHERE list_contains(?::VARCHAR[], plant)) AS batches, "
            "(SELECT count(*) FROM quarantine) AS quarantined",
            [*scope_params(scope), *scope_params(scope), list(scope.plants)],
        )[0]
