"""Arrow tables of readings and quarantine entries: what DuckDB ingests and the archive writes as Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import pyarrow as pa

from plantwatch.contract.batch import ScoredBatch
from plantwatch.contract.reading import ScoredReading
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

#: A reading together with the batch that carried it.
Carried = tuple[ScoredBatch, ScoredReading]


def carried_table(rows: Sequence[Carried]) -> pa.Table:
    """Readings with their batch key and model, as one Arrow table."""
    readings = [s.reading for _, s in rows]
    models: dict[int, str] = {}
    for batch, _ in rows:
        models.setdefault(id(batch), f"{batch.model.name}@{batch.model.version}")
    columns = [
        [r.plant for r in readings],
        [r.line for r in readings],
        [r.asset for r in readings],
        [r.sensor_id for r in readings],
        [r.sensor_type for r in readings],
        [r.unit for r in readings],
        [r.ts_ms for r in readings],
        [r.value for r in readings],
        [s.score for _, s in rows],
        [s.anomaly for _, s in rows],
        [list(s.reasons) for _, s in rows],
        [b.key for b, _ in rows],
        [models[id(b)] for b, _ in rows],
    ]
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, READINGS_SCHEMA, strict=True)],
        schema=READINGS_SCHEMA,
    )


def readings_table(batches: Sequence[ScoredBatch]) -> pa.Table:
    """The readings of ``batches`` as one Arrow table."""
    return carried_table([(batch, scored) for batch in batches for scored in batch.readings])


def quarantine_table(entries: Sequence[QuarantineEntry]) -> pa.Table:
    """Quarantine entries as one Arrow table."""
    return pa.table(
        {name: [getattr(e, name) for e in entries] for name in QUARANTINE_SCHEMA.names}, schema=QUARANTINE_SCHEMA
    )
