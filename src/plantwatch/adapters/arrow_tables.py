"""Arrow tables of readings and quarantine entries: what DuckDB ingests and the archive writes as Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa

from plantwatch.contract.columns import Batch, columns_of
from plantwatch.contract.reading import SensorRef
from plantwatch.contract.rejection import QuarantineEntry

READINGS_SCHEMA: Final = pa.schema(
    [
        ("plant", pa.string()),
        ("line", pa.string()),
        ("asset", pa.string()),
        ("sensor_id", pa.string()),
        ("sensor_type", pa.string()),
        ("unit", pa.string()),
        ("ts", pa.timestamp("ms")),
        ("value", pa.float64()),
        ("score", pa.float64()),
        ("anomaly", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
        ("batch_key", pa.string()),
        ("model", pa.string()),
    ]
)

QUARANTINE_SCHEMA: Final = pa.schema(
    [
        ("received_at_ms", pa.int64()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("index", pa.int64()),
        ("sensor_id", pa.string()),
        ("payload_b64", pa.string()),
        ("payload_bytes", pa.int64()),
    ]
)


def readings_table(batches: Sequence[Batch]) -> pa.Table:
    """The readings of ``batches`` with their batch key and model, as one Arrow table (built from columns)."""
    columns = [columns_of(b) for b in batches]
    sensor_of: dict[tuple[str, SensorRef], int] = {}
    parts = []
    for b in columns:
        lut = np.array([sensor_of.setdefault((b.plant, s), len(sensor_of)) for s in b.sensors], dtype=np.int64)
        parts.append(lut[b.sensor] if len(lut) else np.zeros(0, dtype=np.int64))
    counts = [b.count for b in columns]
    sensor = pa.array(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    batch = pa.array(np.repeat(np.arange(len(columns), dtype=np.int64), counts))
    sensors = list(sensor_of)
    reasons = [r for b in columns for r in b.reasons]
    lengths = np.fromiter(map(len, reasons), dtype=np.int32, count=len(reasons))
    offsets = np.zeros(len(reasons) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    arrays = [
        pa.array([plant for plant, _ in sensors], pa.string()).take(sensor),
        pa.array([s.line for _, s in sensors], pa.string()).take(sensor),
        pa.array([s.asset for _, s in sensors], pa.string()).take(sensor),
        pa.array([s.sensor_id for _, s in sensors], pa.string()).take(sensor),
        pa.array([s.sensor_type for _, s in sensors], pa.string()).take(sensor),
        pa.array([s.unit for _, s in sensors], pa.string()).take(sensor),
        pa.array(_concat([b.ts_ms for b in columns], np.int64)).cast(pa.timestamp("ms")),
        pa.array(_concat([b.value for b in columns], np.float64)),
        pa.array(_concat([b.score for b in columns], np.float64)),
        pa.array(_concat([b.anomaly for b in columns], np.bool_)),
        pa.ListArray.from_arrays(pa.array(offsets), pa.array([r for rs in reasons if rs for r in rs], pa.string())),
        pa.array([b.key for b in columns], pa.string()).take(batch),
        pa.array([f"{b.model.name}@{b.model.version}" for b in columns], pa.string()).take(batch),
    ]
    return pa.Table.from_arrays(arrays, schema=READINGS_SCHEMA)


def _concat(arrays: list[Any], dtype: type[Any]) -> Any:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def quarantine_table(entries: Sequence[QuarantineEntry]) -> pa.Table:
    """Quarantine entries as one Arrow table."""
    return pa.table(
        {name: [getattr(e, name) for e in entries] for name in QUARANTINE_SCHEMA.names}, schema=QUARANTINE_SCHEMA
    )
