"""Arrow tables of readings and quarantine entries: what DuckDB ingests and the archive writes as Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import pyarrow as pa

from plantwatch.contract.batch import ScoredBatch
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


def readings_table(batches: Sequence[ScoredBatch]) -> pa.Table:
    """The readings of ``batches`` with their batch key and model, as one Arrow table."""
    readings = [s.reading for b in batches for s in b.readings]
    scored = [s for b in batches for s in b.readings]
    keys: list[str] = []
    models: list[str] = []
    for b in batches:
        keys.extend([b.key] * len(b.readings))
        models.extend([f"{b.model.name}@{b.model.version}"] * len(b.readings))
    columns = [
        [r.plant for r in readings],
        [r.line for r in readings],
        [r.asset for r in readings],
        [r.sensor_id for r in readings],
        [r.sensor_type for r in readings],
        [r.unit for r in readings],
        [r.ts_ms for r in readings],
        [r.value for r in readings],
        [s.score for s in scored],
        [s.anomaly for s in scored],
        [list(s.reasons) for s in scored],
        keys,
        models,
    ]
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, READINGS_SCHEMA, strict=True)],
        schema=READINGS_SCHEMA,
    )


def quarantine_table(entries: Sequence[QuarantineEntry]) -> pa.Table:
    """Quarantine entries as one Arrow table."""
    return pa.table(
        {name: [getattr(e, name) for e in entries] for name in QUARANTINE_SCHEMA.names}, schema=QUARANTINE_SCHEMA
    )
