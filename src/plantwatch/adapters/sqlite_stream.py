"""A durable local stream in SQLite: the local platform's Kinesis, with per-consumer checkpoints."""

from __future__ import annotations

import threading
from pathlib import Path

from plantwatch.adapters.sqlite_spool import open_sqlite
from plantwatch.ports import StreamRecord


class SqliteStream:
    """Append-only log of (topic, payload) records; consumers read after their checkpoint."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_sqlite(path)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS records (
                record_id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT,
                data BLOB NOT NULL,
                arrival_ms INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS checkpoints (consumer TEXT PRIMARY KEY, record_id INTEGER NOT NULL);
            """
        )

    def append(self, topic: str | None, data: bytes, arrival_ms: int) -> int:
        """Append one record durably; returns its id."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO records (topic, data, arrival_ms) VALUES (?, ?, ?)", (topic, data, arrival_ms)
            )
        return int(cur.lastrowid or 0)

    def _checkpoint(self, consumer: str) -> int:
        row = self._db.execute("SELECT record_id FROM checkpoints WHERE consumer = ?", (consumer,)).fetchone()
        return int(row[0]) if row else 0

    def read(self, consumer: str, limit: int) -> list[StreamRecord]:
        """Up to ``limit`` records after the consumer's checkpoint, oldest first."""
        with self._lock:
            after = self._checkpoint(consumer)
            rows = self._db.execute(
                "SELECT record_id, topic, data, arrival_ms FROM records WHERE record_id > ? ORDER BY record_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [StreamRecord(record_id=str(r[0]), topic=r[1], data=bytes(r[2]), arrival_ms=r[3]) for r in rows]

    def commit(self, consumer: str, record_id: str) -> None:
        """Move the consumer's checkpoint to ``record_id`` (processed up to and including it)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO checkpoints VALUES (?, ?) ON CONFLICT(consumer) DO UPDATE SET record_id = "
                "max(record_id, excluded.record_id)",
                (consumer, int(record_id)),
            )

    def backlog(self, consumer: str) -> int:
        """Records not yet processed by the consumer."""
        with self._lock:
            after = self._checkpoint(consumer)
            row = self._db.execute("SELECT count(*) FROM records WHERE record_id > ?", (after,)).fetchone()
        return int(row[0])

    def trim(self, consumer: str, older_than_ms: int) -> int:
        """Delete processed records that arrived before ``older_than_ms``; returns how many."""
        with self._lock:
            after = self._checkpoint(consumer)
            cur = self._db.execute(
                "DELETE FROM records WHERE record_id <= ? AND arrival_ms < ?", (after, older_than_ms)
            )
        return cur.rowcount

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
