"""A fake Timestream Query client: records every statement, enforces what the real service would refuse, and
answers by running the statement on DuckDB after translating Timestream's few non-standard functions.

Enforced like the service: one statement, at most 256 KiB of SQL, results in pages of at most 1,000 rows with a
NextToken that is only valid for the same QueryString. Enforced for plantwatch's own rule: every statement
filters on plant. Documented Timestream behaviour it does not model: query cost, memory/magnetic tiers, and
the UTC-only time functions beyond bin/ago/to_milliseconds/from_milliseconds.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from plantwatch.adapters.duckdb_store import DuckDBStore

MAX_QUERY_BYTES = 262_144
PAGE_ROWS = 1000
_STRING = re.compile(r"'(?:[^']|'')*'")
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_BIN = re.compile(r"\bbin\(([\w.]+), (\d+) ?(ms|[smhd])\)")
_UNITS = {"ms": "millisecond", "s": "second", "m": "minute", "h": "hour", "d": "day"}
_TYPES = {"BIGINT": "BIGINT", "INTEGER": "BIGINT", "HUGEINT": "BIGINT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}


class ValidationException(Exception):  # noqa: N818 - the service's error name
    """What the service answers to a statement it refuses."""


class FakeTimestreamQuery:
    """``timestream-query`` client fake holding one table in the stream handler's layout."""

    def __init__(self, database: str, table: str) -> None:
        self.database, self.table = database, table
        self.statements: list[str] = []
        self._pages: dict[str, tuple[str, list[tuple[Any, ...]], list[dict[str, Any]]]] = {}
        self.con = duckdb.connect()
        self.con.execute(f'CREATE SCHEMA "{database}"')
        self.con.execute(
            f'CREATE TABLE "{database}"."{table}" (time TIMESTAMP, plant VARCHAR, line VARCHAR, asset VARCHAR, '
            "sensor_id VARCHAR, sensor_type VARCHAR, measure_name VARCHAR, value DOUBLE, score DOUBLE, "
            "anomaly BOOLEAN, alert_type VARCHAR, measure_value_bigint BIGINT)"
        )
        self.con.execute("CREATE MACRO to_milliseconds(t) AS epoch_ms(t)")
        self.con.execute("CREATE MACRO from_milliseconds(x) AS make_timestamp(x * 1000)")
        self.con.execute("CREATE MACRO create_time_series(t, v) AS list({'time': t, 'value': v} ORDER BY t)")
        self.con.execute("CREATE MACRO ago(i) AS now()::TIMESTAMP - i")

    def load(self, store: DuckDBStore) -> None:
        """Copy a DuckDB store's readings as the stream handler writes them: readings, and alerts for anomalies."""
        arrow = store.cursor().sql("SELECT * FROM readings").to_arrow_table()
        self.con.register("source", arrow)
        target = f'"{self.database}"."{self.table}"'
        self.con.execute(
            f"INSERT INTO {target} SELECT ts, plant, line, asset, sensor_id, sensor_type, 'reading', value, score, "
            "anomaly, NULL, NULL FROM source"
        )
        self.con.execute(
            f"INSERT INTO {target} SELECT ts, plant, line, asset, sensor_id, sensor_type, 'anomaly_alert', NULL, "
            "NULL, NULL, array_to_string(reasons, ','), 1 FROM source WHERE anomaly"
        )
        self.con.unregister("source")

    @staticmethod
    def check(sql: str) -> None:
        """Refuse what the service (or plantwatch's rule) refuses."""
        if len(sql.encode()) > MAX_QUERY_BYTES:
            raise ValidationException("QueryString is longer than 262144 bytes")
        bare = _QUOTED.sub('""', _STRING.sub("''", sql))
        if "'" in bare.replace("''", "") or ";" in bare or "--" in bare or "/*" in bare:
            raise ValidationException(f"not exactly one statement: {sql[:200]}")
        if not bare.lstrip().upper().startswith("SELECT"):
            raise ValidationException("only SELECT statements")
        if not re.search(r"\bplant (IN \(|= )'", sql):
            raise ValidationException(f"statement without a plant filter: {sql[:200]}")

    def query(self, *, QueryString: str, NextToken: str | None = None, MaxRows: int | None = None) -> dict[str, Any]:  # noqa: N803
        """One page of the statement's result, in Timestream's response shape."""
        page_rows = min(MaxRows or PAGE_ROWS, PAGE_ROWS)
        if NextToken is None:
            self.check(QueryString)
            self.statements.append(QueryString)
            translated = _BIN.sub(
                lambda m: (
                    f"time_bucket(INTERVAL '{m.group(2)} {_UNITS[m.group(3)]}s', {m.group(1)}, TIMESTAMP '1970-01-01')"
                ),
                QueryString,
            )
            cur = self.con.execute(translated)
            columns = [
                {"Name": d[0], "Type": {"ScalarType": _TYPES.get(str(d[1]), "VARCHAR")}} for d in cur.description
            ]
            token, offset = f"t{len(self._pages)}", 0
            self._pages[token] = (QueryString, cur.fetchall(), columns)
        else:
            token, _, start = NextToken.partition(":")
            if token not in self._pages or self._pages[token][0] != QueryString:
                raise ValidationException("NextToken does not belong to this QueryString")
            offset = int(start)
        _, rows, columns = self._pages[token]
        chunk = rows[offset : offset + page_rows]
        answer: dict[str, Any] = {"ColumnInfo": columns, "Rows": [{"Data": [_cell(v) for v in r]} for r in chunk]}
        if offset + page_rows < len(rows):
            answer["NextToken"] = f"{token}:{offset + page_rows}"
        return answer


def _cell(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NullValue": True}
    if isinstance(value, bool):
        return {"ScalarValue": "true" if value else "false"}
    if isinstance(value, float):
        return {"ScalarValue": repr(value)}
    return {"ScalarValue": str(value)}
