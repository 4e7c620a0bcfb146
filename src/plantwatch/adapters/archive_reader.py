"""Reading archived readings back for training: Parquet under ``batches/date=*/plant=*/line=*/`` in any object store.

A week of one line is many objects (one per stream-processor invocation and line: at the default 5 s batching
window about 120,000), so keys are listed per day and plant, objects are fetched and decoded by a pool of
threads (S3 answers each GET after tens of milliseconds; pyarrow decodes without holding the GIL), and the
readings are kept as coded columns (:class:`~plantwatch.models.datasets.ReadingColumns`).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plantwatch.adapters.arrow_tables import READINGS_SCHEMA
from plantwatch.adapters.object_store import READ_WORKERS
from plantwatch.models.datasets import BlockSample, ReadingColumns
from plantwatch.models.registry import ObjectStore

log = logging.getLogger(__name__)

_COLUMNS = ["plant", "line", "asset", "sensor_type", "ts", "value", "anomaly"]
_PARTITION = re.compile(r"batches/date=(\d{4}-\d{2}-\d{2})/plant=([^/]+)/line=([^/]+)/[^/]+\.parquet$")

_SEP = "\x1f"
#: A window of more days than this is listed in one go (filtered by day) instead of one listing per day.
MAX_LISTED_DAYS = 62
#: A sampled read keeps or drops whole blocks of this long (a block holds 900 feature windows at 1 Hz).
SAMPLE_BLOCK_MS = 15 * 60_000
#: What a line's read keeps at most in the retraining job: a week of a 12-sensor line at 1 Hz is 7.3 M readings,
#: and its whole invocation peaks at about 1 GiB of the function's 2 GB (docs/benchmarks.md).
LINE_READ_BUDGET = 8_000_000


def _day(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def archive_keys(
    store: ObjectStore, *, start_ms: int, end_ms: int, plant: str | None = None, lines: Sequence[str] | None = None
) -> list[str]:
    """Parquet keys whose date partition overlaps [start_ms, end_ms), optionally for one plant and some lines.

    Only the window's days are listed (and within them the plant's folder, or one line's), never the whole
    archive: a year of a plant is millions of objects.
    """
    first, last = _day(start_ms), _day(max(start_ms, end_ms - 1))
    prefixes = []
    day = first
    if (last - first).days >= MAX_LISTED_DAYS:  # "everything until now": one listing of all days, filtered below
        prefixes, day = ["batches/"], last + timedelta(days=1)
    while day <= last:
        prefix = f"batches/date={day:%Y-%m-%d}/"
        if plant is not None:
            prefix += f"plant={plant}/"
            prefixes += [f"{prefix}line={line}/" for line in lines] if lines is not None else [prefix]
        else:
            prefixes.append(prefix)
        day += timedelta(days=1)
    keys = []
    days = (f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}")
    for prefix in prefixes:
        for key in store.list(prefix):
            match = _PARTITION.search(key)
            if match is None:
                continue
            key_day, key_plant, key_line = match.groups()
            if days[0] <= key_day <= days[1] and plant in (None, key_plant) and (lines is None or key_line in lines):
                keys.append(key)
    return keys


def keys_by_line(
    store: ObjectStore, *, start_ms: int, end_ms: int, plant: str, lines: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """The plant's Parquet keys of the window (:func:`archive_keys`), by line: one listing for a whole run."""
    found: dict[str, list[str]] = {}
    for key in archive_keys(store, start_ms=start_ms, end_ms=end_ms, plant=plant, lines=lines):
        match = _PARTITION.search(key)
        if match is not None:
            found.setdefault(match.group(3), []).append(key)
    return dict(sorted(found.items()))


class _Codes:
    """Small vocabularies (assets, sensor types) and the codes of each object's readings in them."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def of(self, column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int32]:
        """The code of every value of a string column (its dictionary is tiny: one object is one line)."""
        encoded = pc.dictionary_encode(column)
        chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
        parts = []
        for chunk in chunks:
            codes = np.array([self.vocab.setdefault(v, len(self.vocab)) for v in chunk.dictionary.to_pylist()])
            parts.append(codes[chunk.indices.to_numpy(zero_copy_only=False)].astype(np.int32))
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)

    def sorted(self) -> tuple[list[str], npt.NDArray[np.int32]]:
        """The vocabulary in sorted order, and the map from a code to its sorted code."""
        names = sorted(self.vocab)
        remap = np.empty(len(names), dtype=np.int32)
        for new, name in enumerate(names):
            remap[self.vocab[name]] = new
        return names, remap


#: The columns the reader uses, typed as the archive writes them (``ts`` a timestamp in ms).
_SCHEMA = pa.schema([READINGS_SCHEMA.field(name) for name in _COLUMNS])


def _load(store: ObjectStore, key: str, start_ms: int, end_ms: int) -> tuple[str, pa.Table | None, str | None]:
    """(key, its readings within the window in :data:`_SCHEMA`, None) or (key, None, why it is unreadable);
    absent: (key, None, None). Everything that depends on what the object holds happens here, so an altered
    object (another type, a null where a reading has a value) is left out and named, never aborts the read."""
    data = store.get(key)
    if data is None:
        return key, None, None
    try:
        raw = pq.read_table(pa.BufferReader(data), columns=_COLUMNS)
        columns = [raw[field.name].cast(field.type) for field in _SCHEMA]  # ts in epoch ms from here on
        columns[_COLUMNS.index("ts")] = columns[_COLUMNS.index("ts")].cast(pa.int64())
        columns[_COLUMNS.index("anomaly")] = pc.fill_null(columns[_COLUMNS.index("anomaly")], False)
        table = pa.Table.from_arrays(columns, names=_COLUMNS)
        nulls = [name for name in _COLUMNS[:6] if table[name].null_count]
        if nulls:
            rows = pc.sum(functools.reduce(pc.or_, [pc.is_null(table[n]) for n in nulls]).cast(pa.int64())).as_py()
            return key, None, f"null {', '.join(nulls)} in {rows} row(s)"
        mask = pc.and_(pc.greater_equal(table["ts"], start_ms), pc.less(table["ts"], end_ms))
        return key, table.filter(mask).combine_chunks(), None
    except (pa.ArrowException, OSError) as exc:  # not Parquet (truncated, altered), a missing column, a bad type
        return key, None, f"{type(exc).__name__}: {str(exc)[:200]}"


def _chunks(keys: Sequence[str], size: int) -> Iterator[list[str]]:
    it = iter(keys)
    while chunk := list(islice(it, size)):
        yield chunk


def read_archive(
    store: ObjectStore,
    *,
    start_ms: int,
    end_ms: int,
    plant: str | None = None,
    lines: Sequence[str] | None = None,
    unreadable: list[tuple[str, str]] | None = None,
    workers: int = READ_WORKERS,
    keys: Sequence[str] | None = None,
    max_readings: int | None = None,
) -> ReadingColumns:
    """Archived readings with ``start_ms <= ts < end_ms`` as coded columns (files of other layouts are skipped).

    An object that is not readable Parquet of the archive's columns (truncated, altered) does not stop the read:
    it is logged as an error and appended to ``unreadable`` as (key, reason), for the caller to report. ``workers``:
    objects fetched and decoded at once (each holds one object's bytes and table). ``keys``:
    the objects to read, when the caller has listed them (:func:`archive_keys`); otherwise they are listed.

    ``max_readings`` bounds what the read keeps, so memory depends on it and not on how busy the line was: past
    it, whole blocks of :data:`SAMPLE_BLOCK_MS` are kept, those of the lowest hash that fit (:class:`BlockSample`).
    ValueError if not even one block fits.
    """
    if keys is None:
        keys = archive_keys(store, start_ms=start_ms, end_ms=end_ms, plant=plant, lines=lines)
    if max_readings is not None and max_readings < 1:
        raise ValueError(f"max_readings must be at least 1, not {max_readings}")
    assets, types = _Codes(), _Codes()
    parts = _Parts(max_readings)
    files = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="archive-read") as pool:
        for chunk in _chunks(keys, 4 * max(1, workers)):  # bounded: only this many objects are held at once
            for key, table, error in pool.map(lambda k: _load(store, k, start_ms, end_ms), chunk):
                if error is not None:
                    log.error("archive object %s is unreadable and was left out: %s", key, error)
                    if unreadable is not None:
                        unreadable.append((key, error))
                if table is None or table.num_rows == 0:
                    continue
                files += 1
                keep = parts.arriving(table["ts"].to_numpy())
                if keep is not None:
                    table = table.filter(pa.array(keep))
                triple = pc.binary_join_element_wise(table["plant"], table["line"], table["asset"], _SEP)
                parts.add(
                    asset=assets.of(triple),
                    type=types.of(table["sensor_type"]),
                    ts=table["ts"].to_numpy(),
                    value=table["value"].to_numpy(),
                    anomaly=table["anomaly"].to_numpy(zero_copy_only=False),
                )
    log.info("archive read", extra={"files": files, "keys": len(keys), "readings": parts.read, "kept": parts.held})
    if parts.read and not parts.held:
        raise ValueError(
            f"a read budget of {max_readings:,} readings is less than the first 15-minute block to keep of the "
            f"{parts.read:,} readings in the window ({parts.smallest_cut:,} readings): nothing would be kept. Raise "
            "the budget (retraining: retrain_max_readings_per_line, PLANTWATCH_MAX_READINGS_PER_LINE; plantwatch "
            "train: --max-readings)."
        )
    sample = parts.sample()
    if not files:
        return ReadingColumns.empty()
    asset_names, asset_remap = assets.sorted()
    type_names, type_remap = types.sorted()
    return ReadingColumns(
        assets=tuple((p, line, a) for p, line, a in (name.split(_SEP) for name in asset_names)),
        sensor_types=tuple(type_names),
        asset=asset_remap[parts.joined("asset")],
        sensor_type=type_remap[parts.joined("type")],
        ts=parts.joined("ts"),
        value=parts.joined("value"),
        anomaly=parts.joined("anomaly"),
        sample=sample,
    )


def block_hash(ts_ms: npt.NDArray[np.int64], block_ms: int = SAMPLE_BLOCK_MS) -> npt.NDArray[np.uint64]:
    """A well-mixed hash (SplitMix64's finaliser) of each time's block: blocks kept by lowest hash are spread over
    the window without a period (every 8th block would be the same hours of every day, the same shift)."""
    x = (ts_ms // block_ms).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


class _Parts:
    """The columns read so far, object by object, and the sampling that keeps them under a budget.

    Blocks are kept in the order of their hash, lowest first, as many as fit. When what is held goes over the
    budget, the held blocks are ranked by hash, the first that does not fit and every later one are dropped, and
    that block's hash becomes the cut: readings of blocks at or above it are dropped as they arrive. A block's
    count only grows, so the cut only falls, and it ends at the first block, in hash order, whose readings take
    the total past the budget: the same blocks whatever order the objects came in, and at least one unless the
    first block alone is over the budget.
    """

    names = ("asset", "type", "ts", "value", "anomaly")

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.columns: dict[str, list[npt.NDArray[np.generic]]] = {k: [] for k in self.names}
        self.cut: np.uint64 | None = None
        self.counts: dict[int, int] = {}  # readings held per block
        self.parts_of: dict[int, list[int]] = {}  # the parts holding each block's readings
        self.seen: set[int] = set()
        self.read = 0
        self.held = 0
        self.smallest_cut = 0  # readings of the first block in hash order, when it alone is over the budget

    def arriving(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_] | None:
        """Count an object's readings; which of them to keep (None: all)."""
        self.read += len(ts)
        if self.budget is None:
            return None
        self.seen.update(np.unique(ts // SAMPLE_BLOCK_MS).tolist())
        return None if self.cut is None else np.asarray(block_hash(ts) < self.cut, dtype=bool)

    def add(self, **columns: npt.NDArray[np.generic]) -> None:
        for name in self.names:
            self.columns[name].append(columns[name])
        ts = columns["ts"]
        self.held += len(ts)
        if self.budget is None:
            return
        part = len(self.columns["ts"]) - 1
        blocks, counts = np.unique(np.asarray(ts) // SAMPLE_BLOCK_MS, return_counts=True)
        for block, count in zip(blocks.tolist(), counts.tolist(), strict=True):
            self.counts[block] = self.counts.get(block, 0) + count
            self.parts_of.setdefault(block, []).append(part)
        if self.held > self.budget:
            self._lower_cut(self.budget)

    def _lower_cut(self, budget: int) -> None:
        blocks = np.array(sorted(self.counts), dtype=np.int64)
        hashes = block_hash(blocks * SAMPLE_BLOCK_MS)
        order = np.argsort(hashes, kind="stable")
        total = np.cumsum([self.counts[int(b)] for b in blocks[order]])
        first_out = int(np.searchsorted(total, budget, side="right"))  # the first block past the budget
        self.cut = hashes[order][first_out]
        if first_out == 0:
            self.smallest_cut = int(total[0])
        dropped = [int(b) for b in blocks[order][first_out:]]
        # only the parts holding a dropped block are touched (an object holds one block, or two at a boundary)
        for i in sorted({i for b in dropped for i in self.parts_of.pop(b)}):
            keep = block_hash(self.columns["ts"][i]) < self.cut  # type: ignore[arg-type]
            for name in self.names:
                self.columns[name][i] = self.columns[name][i][keep]
        for b in dropped:
            del self.counts[b]
        self.held = sum(self.counts.values())

    def sample(self) -> BlockSample | None:
        """What the budget kept, if it dropped anything."""
        if self.cut is None:
            return None
        return BlockSample(block_ms=SAMPLE_BLOCK_MS, blocks=len(self.seen), kept=len(self.counts), read=self.read)

    def joined(self, name: str) -> npt.NDArray[Any]:
        return np.concatenate(self.columns[name])
