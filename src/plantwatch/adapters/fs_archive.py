"""The compliance archive on a local filesystem: Parquet files partitioned by date, plant and line.

Layout (the same keys the S3 archive uses)::

    batches/date=YYYY-MM-DD/plant=P/line=L/part-<sha256 of the batch keys>.parquet
    quarantine/date=YYYY-MM-DD/part-<sha256 of the entries>.parquet

File names are derived from content, so writing the same batches twice writes the same file.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from plantwatch.adapters.duckdb_store import readings_table
from plantwatch.contract.batch import ScoredBatch
from plantwatch.contract.rejection import QuarantineEntry


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FilesystemArchive:
    """Writes accepted batches and quarantine entries under a root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_batches(self, batches: Sequence[ScoredBatch]) -> None:
        """Archive batches, one file per (date, plant, line) partition of the first reading of each batch."""
        groups: dict[tuple[str, str, str], list[ScoredBatch]] = defaultdict(list)
        for batch in batches:
            if not batch.readings:
                continue
            first = batch.readings[0].reading
            groups[(_day(first.ts_ms), batch.plant, first.line)].append(batch)
        for (day, plant, line), group in groups.items():
            digest = hashlib.sha256("\n".join(b.key for b in group).encode()).hexdigest()[:32]
            path = self.root / "batches" / f"date={day}" / f"plant={plant}" / f"line={line}" / f"part-{digest}.parquet"
            _write_atomic(readings_table(group), path)

    def put_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Archive rejected inputs with their reasons."""
        if not entries:
            return
        table = pa.Table.from_pylist([{f: getattr(e, f) for f in e.__struct_fields__} for e in entries])
        digest = hashlib.sha256(
            "\n".join(f"{e.source}|{e.index}|{e.reason}|{e.payload_b64}" for e in entries).encode()
        ).hexdigest()[:32]
        path = self.root / "quarantine" / f"date={_day(entries[0].received_at_ms)}" / f"part-{digest}.parquet"
        _write_atomic(table, path)
