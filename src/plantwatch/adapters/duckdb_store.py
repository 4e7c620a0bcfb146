"""DuckDB: the local sink and query store. Ingest goes through Arrow tables; every query is parameterised."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from plantwatch.adapters.archive import quarantine_id
from plantwatch.adapters.arrow_tables import readings_table

# --- analytics additions (api branch): rollups, alerts, audit log ---
from plantwatch.adapters.duckdb_alerts import ALERTS_SCHEMA, record_alerts
from plantwatch.adapters.duckdb_rollups import ROLLUP_SCHEMA, maintain_rollups
from plantwatch.contract.alerts import Alert

# --- end analytics additions ---
from plantwatch.contract.columns import Batch, count_of
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.ports import WriteOutcome

__all__ = ["DuckDBStore", "readings_table"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    plant VARCHAR NOT NULL, line VARCHAR NOT NULL, asset VARCHAR NOT NULL,
    sensor_id VARCHAR NOT NULL, sensor_type VARCHAR NOT NULL, unit VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL, value DOUBLE NOT NULL, score DOUBLE NOT NULL, anomaly BOOLEAN NOT NULL,
    reasons VARCHAR[] NOT NULL, batch_key VARCHAR NOT NULL, model VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_key VARCHAR PRIMARY KEY, gateway_id VARCHAR NOT NULL, seq BIGINT NOT NULL,
    plant VARCHAR NOT NULL, readings INTEGER NOT NULL, ingested_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS quarantine (
    received_at TIMESTAMP NOT NULL, source VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    sensor_id VARCHAR, payload_bytes INTEGER NOT NULL
);
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS entry_id VARCHAR;
"""


class DuckDBStore:
    """Readings, batch ledger and quarantine counts in one DuckDB file; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(path))
        self._write_lock = threading.Lock()
        self._con.execute(_SCHEMA)
        self._con.execute(ROLLUP_SCHEMA + ALERTS_SCHEMA)  # analytics additions (api branch)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one thread's queries."""
        return self._con.cursor()

    def write(self, batches: Sequence[Batch]) -> WriteOutcome:
        """Store batches not stored before, atomically with their keys in the batch ledger."""
        unique = {batch.key: batch for batch in batches}
        with self._write_lock:
            cur = self._con.cursor()
            keys = list(unique)
            seen = {
                row[0]
                for row in cur.execute(
                    "SELECT batch_key FROM batches WHERE batch_key IN (SELECT unnest(?::VARCHAR[]))", [keys]
                ).fetchall()
            }
            fresh = [batch for key, batch in unique.items() if key not in seen]
            duplicates = len(batches) - len(fresh)
            if not fresh:
                return WriteOutcome(written=0, duplicate_batches=duplicates)
            table = readings_table(fresh)
            ledger = pa.table(
                {
                    "batch_key": [b.key for b in fresh],
                    "gateway_id": [b.gateway_id for b in fresh],
                    "seq": pa.array([b.seq for b in fresh], pa.int64()),
                    "plant": [b.plant for b in fresh],
                    "readings": pa.array([count_of(b) for b in fresh], pa.int32()),
                }
            )
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.register("incoming_readings", table)
                cur.register("incoming_batches", ledger)
                cur.execute("INSERT INTO readings SELECT * FROM incoming_readings")
                maintain_rollups(cur, "incoming_readings")  # analytics additions (api branch)
                cur.execute(
                    "INSERT INTO batches (batch_key, gateway_id, seq, plant, readings) SELECT * FROM incoming_batches"
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.unregister("incoming_readings")
                cur.unregister("incoming_batches")
        return WriteOutcome(written=table.num_rows, duplicate_batches=duplicates)

    def record_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Keep a row per rejection (once, however often its record is delivered), so the API can count them."""
        if not entries:
            return
        table = pa.table(
            {
                "entry_id": [quarantine_id(e) for e in entries],
                "received_at": pa.array([e.received_at_ms for e in entries], pa.timestamp("ms")),
                "source": [e.source for e in entries],
                "reason": [e.reason for e in entries],
                "sensor_id": [e.sensor_id for e in entries],
                "payload_bytes": pa.array([e.payload_bytes for e in entries], pa.int32()),
            }
        )
        with self._write_lock:
            cur = self._con.cursor()
            cur.register("incoming_quarantine", table)
            try:
                cur.execute(
                    "INSERT INTO quarantine (received_at, source, reason, sensor_id, payload_bytes, entry_id) "
                    "SELECT DISTINCT ON (entry_id) received_at, source, reason, sensor_id, payload_bytes, entry_id "
                    "FROM incoming_quarantine WHERE entry_id NOT IN (SELECT entry_id FROM quarantine "
                    "WHERE entry_id IS NOT NULL)"
                )
            finally:
                cur.unregister("incoming_quarantine")

    # --- analytics additions (api branch) ---
    def record_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert or update alerts by ``alert_id`` (acknowledgements are kept); returns how many were stored."""
        with self._write_lock:
            return record_alerts(self._con.cursor(), alerts)

    # --- end analytics additions ---

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._write_lock:
            self._con.execute("CHECKPOINT")
            self._con.close()
