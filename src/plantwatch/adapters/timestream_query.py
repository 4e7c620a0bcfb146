"""Analytics queries answered by Amazon Timestream for LiveAnalytics (the cloud backend).

The Timestream Query API takes no bind parameters, so every statement is built here from allow-listed
identifiers (the database and table names checked once, column names fixed in this module) and literals that are
validated and escaped (identifiers match the contract's pattern, numbers are formatted from ints). Every statement
is one SELECT and carries the caller's plant filter.

Table layout (what the stream handler writes): dimensions plant, line, asset, sensor_id, sensor_type;
measure ``reading`` (MULTI: value DOUBLE, score DOUBLE, anomaly BOOLEAN) and measure ``anomaly_alert`` (BIGINT,
dimension alert_type = reasons joined by ','). Units come from the known sensor types; the model is not stored
there, so it reads ``unknown``; batches and quarantined inputs are not counted (0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from plantwatch.contract.reading import IDENT_PATTERN, KNOWN_SENSOR_TYPES
from plantwatch.services.analytics import UNKNOWN_MODEL, Row, Scope, Series, TimeRange

_IDENT = re.compile(IDENT_PATTERN)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,256}$")
_DIMS = "plant, line, asset, sensor_id, sensor_type"


class TimestreamQueryClient(Protocol):
    """The part of boto3's ``timestream-query`` client this adapter uses."""

    def query(self, **kwargs: Any) -> dict[str, Any]:
        """Run one query (``QueryString``, optional ``NextToken``/``MaxRows``); one page of results."""
        ...


def literal(value: str) -> str:
    """A SQL string literal of an identifier: validated against the contract's pattern, quotes doubled."""
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ValueError(f"{value!r} is not an identifier")
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(literal(v) for v in values)})"


def _ms(value: int) -> str:
    return f"from_milliseconds({int(value)})"


def _interval(seconds: int) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _scalar(kind: str, cell: dict[str, Any]) -> Any:
    if cell.get("NullValue"):
        return None
    text = cell["ScalarValue"]
    if kind in ("BIGINT", "INTEGER"):
        return int(text)
    if kind == "DOUBLE":
        return float(text)
    if kind == "BOOLEAN":
        return text == "true"
    if kind == "TIMESTAMP":
        return datetime.fromisoformat(text[:26])
    return text


def _reasons(text: str | None) -> list[str]:
    return [r for r in (text or "").split(",") if r]


class TimestreamQueries:
    """:class:`~plantwatch.services.analytics.AnalyticsQueries` over a Timestream table."""

    def __init__(self, client: TimestreamQueryClient, *, database: str, table: str) -> None:
        for what, name in (("database", database), ("table", table)):
            if not _NAME.match(name):
                raise ValueError(f"Timestream {what} name {name!r} is not allowed")
        self.client = client
        self.table = f'"{database}"."{table}"'

    # --- building -------------------------------------------------------------------------------------------
    def scope_filter(self, scope: Scope, alias: str = "") -> str:
        """The plant (and line) filter every statement carries."""
        prefix = f"{alias}." if alias else ""
        where = _in(f"{prefix}plant", scope.plants)
        if scope.lines:
            where += " AND " + _in(f"{prefix}line", scope.lines)
        return where

    def _reading_rows(self, scope: Scope, where: str, tail: str) -> str:
        """Readings with the reasons of their anomaly_alert record."""
        return (
            f"SELECT r.plant, r.line, r.asset, r.sensor_id, r.sensor_type, to_milliseconds(r.time) AS ts_ms, "  # noqa: S608
            f"r.value, r.score, r.anomaly, a.alert_type AS reasons FROM {self.table} r "
            f"LEFT JOIN (SELECT plant, sensor_id, time, alert_type FROM {self.table} "
            f"WHERE measure_name = 'anomaly_alert' AND {self.scope_filter(scope)}) a "
            "ON a.plant = r.plant AND a.sensor_id = r.sensor_id AND a.time = r.time "
            f"WHERE r.measure_name = 'reading' AND {self.scope_filter(scope, 'r')} AND {where} {tail}"
        )

    @staticmethod
    def _window(window: TimeRange, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return f"{prefix}time >= {_ms(window.start_ms)} AND {prefix}time < {_ms(window.end_ms)}"

    @staticmethod
    def _series(series: Series, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        parts = ["TRUE"]
        if series.sensor_id is not None:
            parts.append(f"{prefix}sensor_id = {literal(series.sensor_id)}")
        if series.line is not None:
            parts.append(f"{prefix}line = {literal(series.line)}")
        return " AND ".join(parts)

    # --- running --------------------------------------------------------------------------------------------
    def run(self, sql: str) -> list[Row]:
        """Every page of one statement's result, as rows."""
        rows: list[Row] = []
        token: str | None = None
        while True:
            page = self.client.query(QueryString=sql, **({"NextToken": token} if token else {}))
            names = [(c["Name"], c["Type"].get("ScalarType", "VARCHAR")) for c in page["ColumnInfo"]]
            for raw in page["Rows"]:
                rows.append({n: _scalar(t, cell) for (n, t), cell in zip(names, raw["Data"], strict=True)})
            token = page.get("NextToken")
            if not token:
                return rows

    def _with_catalogue(self, rows: list[Row]) -> list[Row]:
        for row in rows:
            row["unit"] = KNOWN_SENSOR_TYPES.get(row["sensor_type"], "")
            if "reasons" in row:
                row["reasons"] = _reasons(row["reasons"])
            row["model"] = UNKNOWN_MODEL
        return rows

    # --- the questions --------------------------------------------------------------------------------------
    def sensors(self, scope: Scope) -> list[Row]:
        """Catalogue of sensors with their latest reading."""
        rows = self.run(
            f"SELECT {_DIMS}, count(*) AS readings, to_milliseconds(max(time)) AS last_ts_ms, "  # noqa: S608
            "max_by(value, time) AS last_value, max_by(score, time) AS last_score, "
            f"max_by(anomaly, time) AS last_anomaly FROM {self.table} "
            f"WHERE measure_name = 'reading' AND {self.scope_filter(scope)} "
            f"GROUP BY {_DIMS} ORDER BY plant, line, asset, sensor_id"
        )
        return self._with_catalogue(rows)

    def readings(self, scope: Scope, *, series: Series, window: TimeRange, limit: int) -> list[Row]:
        """Raw readings of one sensor or line, oldest first."""
        where = f"{self._series(series, 'r')} AND {self._window(window, 'r')}"
        rows = self.run(self._reading_rows(scope, where, f"ORDER BY r.time, r.sensor_id LIMIT {int(limit)}"))
        return self._with_catalogue(rows)

    def buckets(self, scope: Scope, *, series: Series, window: TimeRange, bucket_s: int, tz: str | None) -> list[Row]:
        """Per-sensor, per-bucket n/total/min/max/anomalies (UTC bins; local time is the service's job)."""
        del tz
        return self.run(
            f"SELECT plant, line, sensor_id, to_milliseconds(bin(time, {_interval(bucket_s)})) AS ts_ms, "  # noqa: S608
            "count(*) AS n, sum(value) AS total, min(value) AS min, max(value) AS max, "
            f"count_if(anomaly) AS anomalies FROM {self.table} WHERE measure_name = 'reading' "
            f"AND {self.scope_filter(scope)} AND {self._series(series)} AND {self._window(window)} "
            f"GROUP BY plant, line, sensor_id, bin(time, {_interval(bucket_s)}) ORDER BY 1, 2, 3, 4"
        )

    def anomalies(self, scope: Scope, *, window: TimeRange, limit: int) -> list[Row]:
        """Anomalous readings, newest first."""
        where = f"r.anomaly AND {self._window(window, 'r')}"
        rows = self.run(self._reading_rows(scope, where, f"ORDER BY r.time DESC, r.sensor_id LIMIT {int(limit)}"))
        for row in rows:
            del row["anomaly"]
        return self._with_catalogue(rows)

    def summary(self, scope: Scope, *, window: TimeRange) -> list[Row]:
        """Average and count per sensor, line and type."""
        return self.run(
            "SELECT sensor_id, line AS production_line, sensor_type, avg(value) AS avg_value, "  # noqa: S608
            f"count(*) AS reading_count FROM {self.table} WHERE measure_name = 'reading' "
            f"AND {self.scope_filter(scope)} AND {self._window(window)} "
            "GROUP BY sensor_id, line, sensor_type ORDER BY max(time) DESC, sensor_id"
        )

    def totals(self, scope: Scope) -> Row:
        """Counts of readings and anomalies in scope (no batch ledger or quarantine in Timestream: 0)."""
        [row] = self.run(
            f"SELECT count(*) AS readings, count_if(anomaly) AS anomalies FROM {self.table} "  # noqa: S608
            f"WHERE measure_name = 'reading' AND {self.scope_filter(scope)}"
        )
        return {**row, "batches": 0, "quarantined": 0}
