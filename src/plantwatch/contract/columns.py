"""Scored batches as columns: the stream processor's form of a batch, numpy arrays instead of one struct a reading.

:class:`BatchColumns` holds what :class:`~plantwatch.contract.batch.ScoredBatch` holds (valid readings only),
the way the wire format already carries it: a sensor dictionary and one array per field. Sinks and the
archive accept either form (:data:`Batch`) and read the columns (:func:`columns_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from plantwatch.contract.batch import SCHEMA_VERSION, ModelRef, ScoredBatch
from plantwatch.contract.reading import ScoredReading, SensorRef


@dataclass(frozen=True, slots=True, eq=False)
class BatchColumns:
    """A decoded batch of valid readings as columns; ``gateway_id`` and ``seq`` are its idempotency key.

    Reading ``i`` is sensor ``sensors[sensor[i]]`` at ``ts_ms[i]`` with ``value[i]``, ``score[i]``,
    ``anomaly[i]`` and ``reasons[i]``; every array has one entry per reading.
    """

    gateway_id: str
    seq: int
    plant: str
    model: ModelRef
    sensors: tuple[SensorRef, ...]
    sensor: npt.NDArray[np.int64]
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    score: npt.NDArray[np.float64]
    anomaly: npt.NDArray[np.bool_]
    reasons: Sequence[Sequence[str]]
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        """Idempotency key: the same batch delivered twice has the same key."""
        return f"{self.gateway_id}:{self.seq}"

    @property
    def count(self) -> int:
        """How many readings the batch holds."""
        return len(self.ts_ms)

    @classmethod
    def of(cls, batch: ScoredBatch) -> BatchColumns:
        """The columns of a batch of structs (each reading must be of the batch's plant)."""
        index: dict[SensorRef, int] = {}
        sensor = []
        for scored in batch.readings:
            reading = scored.reading
            if reading.plant != batch.plant:
                raise ValueError(f"reading of plant {reading.plant!r} in a batch of plant {batch.plant!r}")
            sensor.append(index.setdefault(reading.sensor, len(index)))
        readings = batch.readings
        return cls(
            schema_version=batch.schema_version,
            gateway_id=batch.gateway_id,
            seq=batch.seq,
            plant=batch.plant,
            model=batch.model,
            sensors=tuple(index),
            sensor=np.array(sensor, dtype=np.int64),
            ts_ms=np.array([s.reading.ts_ms for s in readings], dtype=np.int64),
            value=np.array([s.reading.value for s in readings], dtype=np.float64),
            score=np.array([s.score for s in readings], dtype=np.float64),
            anomaly=np.array([s.anomaly for s in readings], dtype=np.bool_),
            reasons=[s.reasons for s in readings],
        )

    def scored_batch(self) -> ScoredBatch:
        """The same batch as structs, one :class:`ScoredReading` per reading (slow: for the rare consumer)."""
        readings = []
        for idx, ts, value, score, anomaly, reasons in zip(
            self.sensor.tolist(),
            self.ts_ms.tolist(),
            self.value.tolist(),
            self.score.tolist(),
            self.anomaly.tolist(),
            self.reasons,
            strict=True,
        ):
            ref = self.sensors[idx]
            reading = ref.reading(plant=self.plant, ts_ms=ts, value=value)
            readings.append(ScoredReading(reading=reading, score=score, anomaly=anomaly, reasons=tuple(reasons)))
        return ScoredBatch(
            schema_version=self.schema_version,
            gateway_id=self.gateway_id,
            seq=self.seq,
            plant=self.plant,
            model=self.model,
            readings=tuple(readings),
        )


#: What sinks and archives accept: a batch of structs or of columns.
Batch: TypeAlias = ScoredBatch | BatchColumns


def columns_of(batch: Batch) -> BatchColumns:
    """``batch`` as columns (converted when it is a batch of structs)."""
    return batch if isinstance(batch, BatchColumns) else BatchColumns.of(batch)


def scored_batch_of(batch: Batch) -> ScoredBatch:
    """``batch`` as structs (converted when it is a batch of columns)."""
    return batch if isinstance(batch, ScoredBatch) else batch.scored_batch()


def count_of(batch: Batch) -> int:
    """How many readings ``batch`` holds, in either form."""
    return batch.count if isinstance(batch, BatchColumns) else len(batch.readings)
