"""A gateway's durable spool in SQLite: batches survive crashes and restarts until the cloud acknowledges them.

One file holds the outbox (batches and alert events, in the order they were sealed), the batch sequence
counter, the disk-budget accounting (payload bytes of waiting batches), the exact counts and sequence ranges
of what the full-policy dropped or refused, and the alert engine's state. Every change is one transaction in
WAL mode with ``synchronous=FULL``: a committed row survives a crash or power loss.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from plantwatch.ports import DroppedRange, PutOutcome, SpooledBatch, SpoolStats

log = logging.getLogger(__name__)

REJECT = "reject"
DROP_OLDEST = "drop_oldest"
_COUNTERS = ("next_seq", "bytes", "dropped_batches", "dropped_readings", "rejected_batches", "rejected_readings")


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with full fsync: committed rows survive a crash or power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


#: 2026-11-29T00:00:00Z in epoch ms: no spool this code creates is older, whatever a box's clock says.
SEQ_FLOOR_MS: Final = 1_795_910_400_000


def fresh_seq() -> int:
    """The first sequence number for a gateway's new spool: now in epoch milliseconds. An earlier spool of the same
    gateway would have had to seal more than a batch a millisecond, from its start on, to have reached it.

    A box without a real-time clock can start before NTP has set it (near 1970): the number is then at least
    :data:`SEQ_FLOOR_MS`, past what any spool numbered from 1 reaches, and the clock is logged as wrong."""
    now = time.time_ns() // 1_000_000
    if now < SEQ_FLOOR_MS:
        log.warning(
            "the clock says %d ms since 1970, before this software was made: numbering the new spool from "
            "%d; set the clock (NTP) before the gateway starts",
            now,
            SEQ_FLOOR_MS,
        )
    return max(now, SEQ_FLOOR_MS)


class SqliteSpool:
    """Outbox of encoded batches and alert events with the gateway's sequence counter, in one SQLite file."""

    def __init__(
        self, path: Path, *, budget_bytes: int | None = None, when_full: str = DROP_OLDEST, first_seq: int = 1
    ) -> None:
        """``first_seq``: the sequence number of a new spool's first batch (an existing spool keeps its counter).

        The cloud keys batches by gateway and sequence number, for good: a gateway whose spool starts over (a
        replaced box with the same thing name, a wiped data directory) must not number from 1 again, or its
        batches are taken for ones already archived. Gateways therefore start a new spool at the wall clock in
        epoch milliseconds (:func:`fresh_seq`), past any number an earlier spool could have reached.
        """
        if first_seq < 1:
            raise ValueError(f"first_seq must be positive, got {first_seq}")
        if when_full not in (REJECT, DROP_OLDEST):
            raise ValueError(f"when_full must be {REJECT!r} or {DROP_OLDEST!r}, got {when_full!r}")
        self.path = path
        self.budget_bytes = budget_bytes
        self.when_full = when_full
        self._lock = threading.Lock()
        self._db = open_sqlite(path)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS outbox (
                spool_id INTEGER PRIMARY KEY AUTOINCREMENT,
                seq INTEGER UNIQUE,             -- batch sequence number; NULL for alert events
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                readings INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS dropped (
                first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                batches INTEGER NOT NULL, readings INTEGER NOT NULL, at_ms INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value BLOB NOT NULL);
            """
        )
        known = {name for (name,) in self._db.execute("SELECT name FROM counters")}
        if "first_seq" not in known:  # a spool from before first_seq was kept numbered from 1
            self._db.execute("INSERT INTO counters VALUES ('first_seq', ?)", (1 if "next_seq" in known else first_seq,))
        for name in _COUNTERS:
            self._db.execute(
                "INSERT OR IGNORE INTO counters VALUES (?, ?)", (name, first_seq if name == "next_seq" else 0)
            )

    # --- sealing ------------------------------------------------------------------------------------------
    def first_seq(self) -> int:
        """The sequence number this spool's first batch got (or will get)."""
        with self._lock:
            return self._counter("first_seq")

    def next_seq(self) -> int:
        """The sequence number the next batch will get (survives restarts, only grows)."""
        with self._lock:
            return self._counter("next_seq")

    def put(
        self, topic: str, batches: Sequence[tuple[int, bytes]], readings: Sequence[int] | None = None
    ) -> PutOutcome:
        """Store batches and move the sequence counter past them, in one transaction, within the disk budget.

        When the batches don't fit, ``reject`` refuses them (the sequence counter does not move, so no gap is
        created) and ``drop_oldest`` deletes the oldest waiting batches and records their sequence ranges.
        """
        if not batches:
            return PutOutcome(stored=0)
        counts = list(readings) if readings is not None else [0] * len(batches)
        size = sum(len(payload) for _, payload in batches)
        with self._lock, self._transaction():
            used = self._counter("bytes")
            budget = self.budget_bytes
            if budget is not None and used + size > budget:
                if self.when_full == REJECT or size > budget:
                    self._add("rejected_batches", len(batches))
                    self._add("rejected_readings", sum(counts))
                    return PutOutcome(stored=0, rejected_batches=len(batches), rejected_readings=sum(counts))
                dropped = self._drop_oldest(used + size - budget)
            else:
                dropped = []
            self._db.executemany(
                "INSERT INTO outbox (seq, topic, payload, readings) VALUES (?, ?, ?, ?)",
                [(seq, topic, payload, n) for (seq, payload), n in zip(batches, counts, strict=True)],
            )
            self._add("bytes", size)
            self._db.execute(
                "UPDATE counters SET value = max(value, ?) WHERE name = 'next_seq'",
                (max(seq for seq, _ in batches) + 1,),
            )
        return PutOutcome(stored=len(batches), dropped=dropped)

    def _drop_oldest(self, need: int) -> list[DroppedRange]:
        rows = self._db.execute(
            "SELECT spool_id, seq, length(payload), readings FROM outbox WHERE seq IS NOT NULL ORDER BY spool_id"
        )
        victims: list[tuple[int, int, int, int]] = []
        freed = 0
        for row in rows:
            if freed >= need:
                break
            victims.append(row)
            freed += row[2]
        rows.close()
        ranges: list[DroppedRange] = []
        for spool_id, seq, _, count in victims:
            last = ranges[-1] if ranges else None
            if last is not None and last.last_seq + 1 == seq:
                ranges[-1] = DroppedRange(
                    first_seq=last.first_seq, last_seq=seq, batches=last.batches + 1, readings=last.readings + count
                )
            else:
                ranges.append(DroppedRange(first_seq=seq, last_seq=seq, batches=1, readings=count))
            del spool_id
        self._db.executemany("DELETE FROM outbox WHERE spool_id = ?", [(v[0],) for v in victims])
        now = time.time_ns() // 1_000_000
        self._db.executemany(
            "INSERT INTO dropped VALUES (?, ?, ?, ?, ?)",
            [(r.first_seq, r.last_seq, r.batches, r.readings, now) for r in ranges],
        )
        self._add("bytes", -freed)
        self._add("dropped_batches", len(victims))
        self._add("dropped_readings", sum(v[3] for v in victims))
        return ranges

    def put_alerts(
        self, topic: str, payloads: Sequence[bytes], state: bytes | None = None, *, state_name: str = "alerts"
    ) -> None:
        """Store alert events (outside the batch budget: they are small and must not be lost) with the state
        that produced them (kept as ``state_name``), in one transaction."""
        with self._lock, self._transaction():
            self._db.executemany("INSERT INTO outbox (topic, payload) VALUES (?, ?)", [(topic, p) for p in payloads])
            if state is not None:
                self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (state_name, state))

    def alert_state(self) -> bytes | None:
        """The alert engine state stored last, if any."""
        return self.state("alerts")

    def put_state(self, name: str, value: bytes | None) -> None:
        """Keep (or, with None, forget) a named piece of gateway state across restarts."""
        with self._lock, self._transaction():
            if value is None:
                self._db.execute("DELETE FROM state WHERE name = ?", (name,))
            else:
                self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (name, value))

    def state(self, name: str) -> bytes | None:
        """The named state stored last, if any."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    # --- draining -----------------------------------------------------------------------------------------
    def peek(self, limit: int) -> list[SpooledBatch]:
        """The oldest ``limit`` waiting batches and alert events, in the order they were sealed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT spool_id, coalesce(seq, 0), topic, payload FROM outbox ORDER BY spool_id LIMIT ?", (limit,)
            ).fetchall()
        return [SpooledBatch(spool_id=r[0], seq=r[1], topic=r[2], payload=bytes(r[3])) for r in rows]

    def remove(self, spool_ids: Sequence[int]) -> None:
        """Forget acknowledged batches (ids already dropped are ignored)."""
        with self._lock, self._transaction():
            freed = 0
            for spool_id in spool_ids:
                row = self._db.execute(
                    "DELETE FROM outbox WHERE spool_id = ? RETURNING seq, length(payload)", (spool_id,)
                ).fetchone()
                if row is not None and row[0] is not None:
                    freed += row[1]
            if freed:
                self._add("bytes", -freed)

    def depth(self) -> int:
        """How many batches and alert events wait for acknowledgement."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def stats(self) -> SpoolStats:
        """Depth, bytes used, and the exact counts and ranges of what the full-policy dropped or refused."""
        with self._lock:
            c = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            ranges = [
                DroppedRange(first_seq=r[0], last_seq=r[1], batches=r[2], readings=r[3])
                for r in self._db.execute("SELECT first_seq, last_seq, batches, readings FROM dropped ORDER BY rowid")
            ]
            depth = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return SpoolStats(
            depth=depth,
            bytes=c["bytes"],
            budget_bytes=self.budget_bytes,
            dropped_batches=c["dropped_batches"],
            dropped_readings=c["dropped_readings"],
            rejected_batches=c["rejected_batches"],
            rejected_readings=c["rejected_readings"],
            dropped_ranges=ranges,
        )

    def integrity_check(self) -> str:
        """SQLite's own integrity check ('ok' when the file is sound)."""
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # --- helpers ------------------------------------------------------------------------------------------
    def _counter(self, name: str) -> int:
        return int(self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def _add(self, name: str, delta: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
