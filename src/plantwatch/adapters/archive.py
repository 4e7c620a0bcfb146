"""The compliance archive over an object store: Parquet by date/plant/line, exactly one copy of each batch.

Layout (the same on the filesystem and in S3, readable by Athena and DuckDB)::

    batches/date=YYYY-MM-DD/plant=P/line=L/part-<digest>.parquet
    quarantine/date=YYYY-MM-DD/part-<digest>.parquet
    _manifest/<seq>.json                       (hash-chained, see archive_manifest)

One write (one call of ``put_batches`` or ``put_quarantine``, i.e. one Lambda invocation or one local
consumer step) makes one object per partition it touches and one manifest entry. Batches already named in the
manifest are skipped, so a batch delivered twice is archived once. Object names derive from the batch keys
they hold, so a retry of the same records after a crash rewrites nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plantwatch.adapters.archive_index import ArchivedIndex
from plantwatch.adapters.archive_manifest import (
    CHECKPOINT_EVERY,
    GENESIS,
    MANIFEST_PREFIX,
    ManifestEntry,
    ManifestObject,
    ObjectStore,
    decode_entry,
    encode_entry,
    last_seq,
    manifest_key,
    manifest_seq,
    seal,
    sha256_hex,
)
from plantwatch.adapters.arrow_tables import quarantine_table, readings_table
from plantwatch.contract.columns import Batch
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.ports import Clock

log = logging.getLogger(__name__)
_DAY_MS = 86_400_000
_MAX_APPEND_ATTEMPTS = 20


def day_of(ts_ms: int) -> str:
    """The UTC date (YYYY-MM-DD) of an epoch-millisecond time."""
    return datetime.fromtimestamp((ts_ms // _DAY_MS) * _DAY_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


def quarantine_id(entry: QuarantineEntry) -> str:
    """What makes a quarantine entry the same entry when its record is delivered again."""
    text = f"{entry.source}|{entry.index}|{entry.reason}|{entry.payload_b64}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _partitions(table: pa.Table) -> list[tuple[tuple[int, str, str], pa.Table]]:
    """The table's rows by (day number, plant, line), in that order; rows keep their order within a partition."""
    days = np.floor_divide(table["ts"].cast(pa.int64()).to_numpy(), _DAY_MS)
    plants = pc.dictionary_encode(table["plant"]).combine_chunks()
    lines = pc.dictionary_encode(table["line"]).combine_chunks()
    n_plants, n_lines = len(plants.dictionary), len(lines.dictionary)
    first_day = int(days.min()) if len(days) else 0
    code = ((days - first_day) * n_plants + plants.indices.to_numpy()) * n_lines + lines.indices.to_numpy()
    order = np.argsort(code, kind="stable")
    codes, starts = np.unique(code[order], return_index=True)
    ordered = table.take(pa.array(order))
    bounds = [*starts.tolist(), len(order)]
    parts = []
    for i, c in enumerate(codes.tolist()):
        rest, line = divmod(c, n_lines)
        day, plant = divmod(rest, n_plants)
        name = (first_day + day, plants.dictionary[plant].as_py(), lines.dictionary[line].as_py())
        parts.append((name, ordered.slice(bounds[i], bounds[i + 1] - bounds[i])))
    return sorted(parts, key=lambda p: p[0])


def _digest(members: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:32]


class ComplianceArchive:
    """Implements the Archive port over an ObjectStore, keeping the manifest chain and a batch-key index."""

    def __init__(self, store: ObjectStore, *, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._last_seq = 0
        self._last_hash = GENESIS
        self._archived = ArchivedIndex()
        self._loaded = False

    def _entry(self, seq: int) -> ManifestEntry | None:
        data = self.store.get(manifest_key(seq))
        return None if data is None else decode_entry(data)

    def _load(self) -> None:
        """Cold start: the newest manifest entry, and the index from the newest checkpoint on (not the whole chain)."""
        last = last_seq(self.store)
        tail: list[ManifestEntry] = []
        for seq in range(last, 0, -1):
            entry = self._entry(seq)
            if entry is None:  # a gap: the chain is damaged (verify names it); rebuild from everything there is
                tail = [e for s in range(1, last + 1) if (e := self._entry(s)) is not None]
                break
            tail.append(entry)
            if entry.checkpoint is not None:
                break
        tail.sort(key=lambda e: e.seq)
        start = next((i for i in range(len(tail) - 1, -1, -1) if tail[i].checkpoint is not None), None)
        if start is not None:
            self._archived = ArchivedIndex(tail[start].checkpoint)
            tail = tail[start + 1 :]
        for entry in tail:
            self._archived.update(m for obj in entry.objects for m in obj.members)
        if last:
            newest = tail[-1] if tail else self._entry(last)
            if newest is not None:
                self._last_seq, self._last_hash = newest.seq, newest.hash
        self._loaded = True

    def _refresh(self) -> None:
        """Read manifest entries written since we last looked (by us or another writer)."""
        if not self._loaded:
            self._load()
        start = manifest_key(self._last_seq) if self._last_seq else None
        for key, _ in self.store.list(MANIFEST_PREFIX, start_after=start):
            data = self.store.get(key)
            if data is None or manifest_seq(key) is None:
                continue
            entry = decode_entry(data)
            self._archived.update(m for obj in entry.objects for m in obj.members)
            self._last_seq, self._last_hash = entry.seq, entry.hash

    def _append(self, objects: list[ManifestObject]) -> None:
        members = [m for obj in objects for m in obj.members]
        for _ in range(_MAX_APPEND_ATTEMPTS):
            seq = self._last_seq + 1
            entry = seal(
                ManifestEntry(
                    seq=seq,
                    prev=self._last_hash,
                    written_at_ms=self.clock.now_ms(),
                    objects=tuple(objects),
                    checkpoint=self._archived.checkpoint(members) if seq % CHECKPOINT_EVERY == 0 else None,
                )
            )
            if self.store.put_new(manifest_key(entry.seq), encode_entry(entry)):
                self._last_seq, self._last_hash = entry.seq, entry.hash
                self._archived.update(members)
                return
            self._refresh()  # another writer took this sequence number
        raise RuntimeError(f"could not append to the manifest of {self.store.describe()}: too much contention")

    def _put_object(self, key: str, data: bytes, rows: int, members: Sequence[str]) -> ManifestObject:
        if not self.store.put_new(key, data):
            existing = self.store.get(key)  # written by an earlier attempt at the same batches
            if existing is not None:
                data = existing
        return ManifestObject(key=key, sha256=sha256_hex(data), bytes=len(data), rows=rows, members=tuple(members))

    def unarchived(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the manifest does not name yet."""
        with self._lock:
            self._refresh()
            return {key for key in keys if key not in self._archived}

    def put_batches(self, batches: Sequence[Batch]) -> None:
        """Archive batches not archived before, one Parquet object per (date, plant, line)."""
        with self._lock:
            self._refresh()
            fresh = {b.key: b for b in batches if b.key not in self._archived}
            if not fresh:
                return
            table = readings_table(list(fresh.values()))
            objects = []
            for (day_number, plant, line), part in _partitions(table):
                members = sorted(pc.unique(part["batch_key"]).to_pylist())
                day = day_of(day_number * _DAY_MS)
                key = f"batches/date={day}/plant={plant}/line={line}/part-{_digest(members)}.parquet"
                objects.append(self._put_object(key, _parquet(part), part.num_rows, members))
            self._append(objects)

    def put_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Archive quarantine entries not archived before, one Parquet object per date."""
        with self._lock:
            self._refresh()
            fresh = {quarantine_id(e): e for e in entries}
            fresh = {k: e for k, e in fresh.items() if k not in self._archived}
            if not fresh:
                return
            by_day: dict[str, list[tuple[str, QuarantineEntry]]] = defaultdict(list)
            for qid, entry in fresh.items():
                by_day[day_of(entry.received_at_ms)].append((qid, entry))
            objects = []
            for day, items in sorted(by_day.items()):
                members = sorted(q for q, _ in items)
                key = f"quarantine/date={day}/part-{_digest(members)}.parquet"
                table = quarantine_table([e for _, e in items])
                objects.append(self._put_object(key, _parquet(table), len(items), members))
            self._append(objects)
