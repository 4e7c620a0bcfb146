"""A gateway's durable spool in SQLite: batches survive crashes and restarts until the cloud acknowledges them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from plantwatch.ports import SpooledBatch


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with full fsync: committed rows survive a crash or power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class SqliteSpool:
    """Outbox of encoded batches with the gateway's sequence counter, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_sqlite(path)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS outbox (
                spool_id INTEGER PRIMARY KEY AUTOINCREMENT,
                seq INTEGER NOT NULL UNIQUE,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL
            );
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT OR IGNORE INTO counters VALUES ('next_seq', 1);
            """
        )

    def next_seq(self) -> int:
        """The sequence number the next batch will get (survives restarts, only grows)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()
        return int(row[0])

    def put(self, topic: str, batches: Sequence[tuple[int, bytes]]) -> None:
        """Store batches and move the sequence counter past them, in one transaction."""
        if not batches:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO outbox (seq, topic, payload) VALUES (?, ?, ?)",
                    [(seq, topic, payload) for seq, payload in batches],
                )
                self._db.execute(
                    "UPDATE counters SET value = max(value, ?) WHERE name = 'next_seq'",
                    (max(seq for seq, _ in batches) + 1,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def peek(self, limit: int) -> list[SpooledBatch]:
        """The oldest ``limit`` waiting batches."""
        with self._lock:
            rows = self._db.execute(
                "SELECT spool_id, seq, topic, payload FROM outbox ORDER BY spool_id LIMIT ?", (limit,)
            ).fetchall()
        return [SpooledBatch(spool_id=r[0], seq=r[1], topic=r[2], payload=bytes(r[3])) for r in rows]

    def remove(self, spool_ids: Sequence[int]) -> None:
        """Forget acknowledged batches."""
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE spool_id = ?", [(i,) for i in spool_ids])

    def depth(self) -> int:
        """How many batches wait for acknowledgement."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
