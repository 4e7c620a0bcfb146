"""Alerts and the hash-chained audit log of their acknowledgements, in the DuckDB store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import pyarrow as pa

from plantwatch.adapters.duckdb_sql import IN_SCOPE, rows, scope_params
from plantwatch.contract.alerts import Alert
from plantwatch.domain.audit import GENESIS, AuditEntry, entry_hash, first_break
from plantwatch.services.analytics import Row, Scope

ALERTS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id VARCHAR PRIMARY KEY, plant VARCHAR NOT NULL, line VARCHAR NOT NULL, asset VARCHAR NOT NULL,
    sensor_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, state VARCHAR NOT NULL, raised_at_ms BIGINT NOT NULL,
    cleared_at_ms BIGINT, reasons VARCHAR[] NOT NULL, score DOUBLE NOT NULL, gateway_id VARCHAR NOT NULL,
    acknowledged_by VARCHAR, acknowledged_at_ms BIGINT
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, actor VARCHAR NOT NULL, action VARCHAR NOT NULL,
    plant VARCHAR NOT NULL, alert_id VARCHAR NOT NULL, note VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL
);
"""

_ALERT_COLUMNS = (
    "alert_id, plant, line, asset, sensor_id, kind, state, raised_at_ms, cleared_at_ms, reasons, score, gateway_id, "
    "acknowledged_by, acknowledged_at_ms"
)


def record_alerts(cursor: Any, alerts: Sequence[Alert]) -> int:
    """Insert alerts, or update state, clearing time, reasons and score of known ones; the first acknowledgement
    (through the API, or on the floor as the alert's events tell) stays.

    A cleared alert is never reopened by a late or repeated event of its earlier state.
    """
    if not alerts:
        return 0
    latest = {a.alert_id: a for a in alerts}
    table = pa.table(
        {
            "alert_id": [a.alert_id for a in latest.values()],
            "plant": [a.plant for a in latest.values()],
            "line": [a.line for a in latest.values()],
            "asset": [a.asset for a in latest.values()],
            "sensor_id": [a.sensor_id for a in latest.values()],
            "kind": [a.kind for a in latest.values()],
            "state": [a.state for a in latest.values()],
            "raised_at_ms": pa.array([a.raised_at_ms for a in latest.values()], pa.int64()),
            "cleared_at_ms": pa.array([a.cleared_at_ms for a in latest.values()], pa.int64()),
            "reasons": pa.array([list(a.reasons) for a in latest.values()], pa.list_(pa.string())),
            "score": pa.array([a.score for a in latest.values()], pa.float64()),
            "gateway_id": [a.gateway_id for a in latest.values()],
            "acknowledged_by": pa.array([a.acknowledged_by for a in latest.values()], pa.string()),
            "acknowledged_at_ms": pa.array([a.acknowledged_at_ms for a in latest.values()], pa.int64()),
        }
    )
    cursor.register("incoming_alerts", table)
    try:
        # a late or repeated event of a cleared alert leaves it as it is (as the DynamoDB store does)
        cursor.execute(
            "INSERT INTO alerts SELECT * FROM incoming_alerts ON CONFLICT DO UPDATE SET "
            "state = EXCLUDED.state, cleared_at_ms = EXCLUDED.cleared_at_ms, reasons = EXCLUDED.reasons, "
            "score = EXCLUDED.score, "
            # the first acknowledgement stays, whether through the API or on the floor
            "acknowledged_at_ms = CASE WHEN alerts.acknowledged_by IS NULL THEN EXCLUDED.acknowledged_at_ms "
            "ELSE alerts.acknowledged_at_ms END, "
            "acknowledged_by = COALESCE(alerts.acknowledged_by, EXCLUDED.acknowledged_by) "
            "WHERE alerts.state <> 'cleared' OR EXCLUDED.state = 'cleared'"
        )
    finally:
        cursor.unregister("incoming_alerts")
    count: int = table.num_rows
    return count


class DuckDBAlerts:
    """:class:`~plantwatch.services.analytics.AlertStore` over the store's DuckDB connection."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = threading.Lock()

    def record_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert or update alerts."""
        count: int = self.store.record_alerts(alerts)
        return count

    def alerts(self, scope: Scope, *, state: str | None, limit: int) -> list[Row]:
        """Alerts in scope, newest raised first."""
        cur = self.store.cursor().execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {IN_SCOPE} AND (?::VARCHAR IS NULL OR state = ?) "  # noqa: S608
            "ORDER BY raised_at_ms DESC, alert_id LIMIT ?",
            [*scope_params(scope), state, state, limit],
        )
        return rows(cur)

    def acknowledge(self, scope: Scope, *, alert_id: str, actor: str, note: str, at_ms: int) -> Row | None:
        """Acknowledge once (later calls return the first acknowledgement) and append it to the audit log."""
        with self._lock:
            cur = self.store.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                found = rows(
                    cur.execute(
                        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ? AND {IN_SCOPE}",  # noqa: S608
                        [alert_id, *scope_params(scope)],
                    )
                )
                if not found or found[0]["acknowledged_by"] is not None:
                    cur.execute("COMMIT")
                    return found[0] if found else None
                last = cur.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                entry = AuditEntry(
                    seq=seq,
                    at_ms=at_ms,
                    actor=actor,
                    action="alert.acknowledge",
                    plant=found[0]["plant"],
                    alert_id=alert_id,
                    note=note,
                )
                cur.execute(
                    "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [seq, at_ms, actor, entry.action, entry.plant, alert_id, note, prev, entry_hash(entry, prev)],
                )
                cur.execute(
                    "UPDATE alerts SET acknowledged_by = ?, acknowledged_at_ms = ? WHERE alert_id = ?",
                    [actor, at_ms, alert_id],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return {**found[0], "acknowledged_by": actor, "acknowledged_at_ms": at_ms}

    def audit(self, scope: Scope, *, limit: int) -> tuple[list[Row], int | None]:
        """Audit entries of the scope's plants and whether the whole chain is intact."""
        entries = rows(self.store.cursor().execute("SELECT * FROM audit_log ORDER BY seq"))
        fields = set(AuditEntry.__struct_fields__)
        broken = first_break(
            (AuditEntry(**{k: v for k, v in r.items() if k in fields}), r["prev_hash"], r["hash"]) for r in entries
        )
        return [r for r in entries if r["plant"] in scope.plants][:limit], broken
