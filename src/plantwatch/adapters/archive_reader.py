"""Reading archived readings back for training: Parquet under ``batches/date=*/plant=*/line=*/`` in any object store."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plantwatch.models.datasets import ReadingColumns
from plantwatch.models.registry import ObjectStore

log = logging.getLogger(__name__)

_COLUMNS = ["plant", "line", "asset", "sensor_type", "ts", "value", "anomaly"]
_PARTITION = re.compile(r"batches/date=(\d{4}-\d{2}-\d{2})/plant=([^/]+)/line=([^/]+)/[^/]+\.parquet$")


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def archive_keys(
    store: ObjectStore, *, start_ms: int, end_ms: int, plant: str | None = None, lines: Sequence[str] | None = None
) -> list[str]:
    """Parquet keys whose date partition overlaps [start_ms, end_ms), optionally for one plant and some lines."""
    first, last = _day(start_ms), _day(max(start_ms, end_ms - 1))
    keys = []
    for key in store.list("batches/"):
        match = _PARTITION.search(key)
        if match is None:
            continue
        day, key_plant, key_line = match.groups()
        if first <= day <= last and plant in (None, key_plant) and (lines is None or key_line in lines):
            keys.append(key)
    return keys


def read_archive(
    store: ObjectStore, *, start_ms: int, end_ms: int, plant: str | None = None, lines: Sequence[str] | None = None
) -> ReadingColumns:
    """Archived readings with ``start_ms <= ts < end_ms`` as columns (files of other layouts are skipped)."""
    tables = []
    for key in archive_keys(store, start_ms=start_ms, end_ms=end_ms, plant=plant, lines=lines):
        data = store.get(key)
        if data is None:
            continue
        table = pq.read_table(pa.BufferReader(data), columns=_COLUMNS)
        ts = table.column("ts").cast(pa.int64()) if pa.types.is_timestamp(table.column("ts").type) else table["ts"]
        table = table.set_column(table.schema.get_field_index("ts"), "ts", ts)
        mask = pc.and_(pc.greater_equal(table["ts"], start_ms), pc.less(table["ts"], end_ms))
        tables.append(table.filter(mask))
    log.info("archive read", extra={"files": len(tables)})
    if not tables:
        empty = np.empty(0, dtype=str)
        return ReadingColumns(
            plant=empty,
            line=empty,
            asset=empty,
            sensor_type=empty,
            ts=np.empty(0, dtype=np.int64),
            value=np.empty(0),
            anomaly=np.empty(0, dtype=bool),
        )
    table = pa.concat_tables(tables)
    return ReadingColumns(
        plant=np.asarray(table["plant"].to_numpy(zero_copy_only=False), dtype=str),
        line=np.asarray(table["line"].to_numpy(zero_copy_only=False), dtype=str),
        asset=np.asarray(table["asset"].to_numpy(zero_copy_only=False), dtype=str),
        sensor_type=np.asarray(table["sensor_type"].to_numpy(zero_copy_only=False), dtype=str),
        ts=np.asarray(table["ts"].to_numpy(), dtype=np.int64),
        value=np.asarray(table["value"].to_numpy(zero_copy_only=False), dtype=np.float64),
        anomaly=np.asarray(table["anomaly"].fill_null(False).to_numpy(zero_copy_only=False), dtype=bool),
    )
