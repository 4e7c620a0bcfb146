"""Decode payloads straight into columns (:class:`BatchColumns`), with the same rejections as decode_payload.

A v1 batch whose cells all have the wire format's types (the normal case) is decoded by msgspec into typed
lists, turned into numpy arrays and validated vectorised; only readings a mask flags go through the
per-reading checks of :mod:`plantwatch.contract.decode`, so every rejection has exactly the reason and index
``decode_payload`` gives it. Anything else (a cell of the wrong type, a bad header, a legacy reading, bytes
that are not a batch) is decoded by ``decode_payload`` itself and converted, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.contract.batch import GZIP_MAGIC, MAX_PAYLOAD_BYTES, ModelRef
from plantwatch.contract.columns import BatchColumns
from plantwatch.contract.decode import (
    MAX_READINGS_PER_BATCH,
    Kind,
    decode_payload,
    gunzip,
    header_problem,
    reading_rejection,
    sensor_entry_problem,
)
from plantwatch.contract.legacy import LegacyDefaults
from plantwatch.contract.reading import MAX_FUTURE_MS, MIN_TIMESTAMP_MS, Reading, SensorRef, reasons_problem
from plantwatch.contract.rejection import Rejection

#: Checked sensor entries and reason lists are remembered (they repeat in every batch of a gateway) up to this many.
MAX_CACHED: Final = 100_000


class _WireColumns(msgspec.Struct):
    sensor: list[int]
    ts: list[int]
    value: list[float]
    score: list[float]
    anomaly: list[bool]
    reasons: list[list[str]]


class _WireBatch(msgspec.Struct):
    schema_version: Any
    gateway_id: Any
    seq: Any
    plant: Any
    model: Any
    sensors: list[SensorRef]
    columns: _WireColumns


@dataclass(frozen=True, slots=True)
class ColumnsResult:
    """What a payload held: a batch as columns (valid readings only), a legacy reading, and every rejection."""

    kind: Kind
    batch: BatchColumns | None = None
    legacy: Reading | None = None
    rejections: tuple[Rejection, ...] = ()


class ColumnDecoder:
    """Decodes payloads into :class:`ColumnsResult`; never raises. Keeps small caches: one per consumer."""

    def __init__(self) -> None:
        self._decoder = msgspec.json.Decoder(_WireBatch)
        self._sensors: dict[SensorRef, SensorRef | str] = {}
        self._reasons: dict[tuple[str, ...], str | None] = {}

    def decode(
        self,
        payload: bytes,
        *,
        now_ms: int,
        topic: str | None = None,
        legacy_defaults: LegacyDefaults | None = None,
    ) -> ColumnsResult:
        """Decode ``payload`` received at ``now_ms`` on ``topic``: decode_payload's result, as columns."""
        data = bytes(payload)
        if len(data) <= MAX_PAYLOAD_BYTES:
            document: bytes | str = gunzip(data) if data.startswith(GZIP_MAGIC) else data
            if isinstance(document, bytes):
                fast = self._batch(document, now_ms)
                if fast is not None:
                    return fast
        result = decode_payload(data, now_ms=now_ms, topic=topic, legacy_defaults=legacy_defaults)
        return ColumnsResult(
            kind=result.kind,
            batch=None if result.batch is None else BatchColumns.of(result.batch),
            legacy=result.legacy,
            rejections=result.rejections,
        )

    def _batch(self, document: bytes, now_ms: int) -> ColumnsResult | None:
        """The batch decoded on the fast path, or None when decode_payload must decide."""
        try:
            wire = self._decoder.decode(document)
        except msgspec.DecodeError:
            return None
        header = {
            "schema_version": wire.schema_version,
            "seq": wire.seq,
            "model": wire.model,
            "gateway_id": wire.gateway_id,
            "plant": wire.plant,
        }
        cols = wire.columns
        n = len(cols.sensor)
        lengths = {len(cols.ts), len(cols.value), len(cols.score), len(cols.anomaly), len(cols.reasons)}
        if header_problem(header) is not None or lengths != {n} or n > MAX_READINGS_PER_BATCH:
            return None
        try:
            idx = np.array(cols.sensor, dtype=np.int64)
            ts = np.array(cols.ts, dtype=np.int64)
        except OverflowError:  # beyond int64: decode_payload words the rejection
            return None
        value = np.array(cols.value, dtype=np.float64)
        score = np.array(cols.score, dtype=np.float64)
        if not (np.isfinite(value).all() and np.isfinite(score).all()):
            return None
        sensors = [self._sensor(ref) for ref in wire.sensors]
        bad = (idx < 0) | (idx >= len(sensors)) | (ts < MIN_TIMESTAMP_MS) | (ts > now_ms + MAX_FUTURE_MS)
        invalid = [i for i, s in enumerate(sensors) if isinstance(s, str)]
        if invalid:
            bad |= np.isin(idx, invalid)
        reasons = cols.reasons
        for i in np.flatnonzero(np.fromiter(map(len, reasons), dtype=np.int64, count=n)).tolist():
            if self._reasons_problem(reasons[i]) is not None:
                bad[i] = True
        anomaly = np.array(cols.anomaly, dtype=np.bool_)
        rejections = []
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                rejection = reading_rejection(
                    i,
                    cols.sensor[i],
                    cols.ts[i],
                    cols.value[i],
                    cols.score[i],
                    cols.anomaly[i],
                    reasons[i],
                    sensors,
                    now_ms,
                )
                if rejection is None:  # a mask is only ever wider than the checks
                    bad[i] = False
                else:
                    rejections.append(rejection)
            keep = ~bad
            idx, ts, value, score, anomaly = idx[keep], ts[keep], value[keep], score[keep], anomaly[keep]
            reasons = [reasons[i] for i in np.flatnonzero(keep).tolist()]
        refs = _compact(sensors, idx) if invalid else (tuple(s for s in sensors if not isinstance(s, str)), idx)
        batch = BatchColumns(
            gateway_id=wire.gateway_id,
            seq=wire.seq,
            plant=wire.plant,
            model=ModelRef(name=wire.model["name"], version=wire.model["version"]),
            sensors=refs[0],
            sensor=refs[1],
            ts_ms=ts,
            value=value,
            score=score,
            anomaly=anomaly,
            reasons=reasons,
        )
        return ColumnsResult(kind="batch", batch=batch, rejections=tuple(rejections))

    def _sensor(self, ref: SensorRef) -> SensorRef | str:
        """The checked entry (the same object for the same entry), or why it is not valid."""
        known = self._sensors.get(ref)
        if known is None:
            if len(self._sensors) >= MAX_CACHED:
                self._sensors.clear()
            problem = sensor_entry_problem(ref.line, ref.asset, ref.sensor_id, ref.sensor_type, ref.unit)
            known = self._sensors[ref] = ref if problem is None else problem
        return known

    def _reasons_problem(self, reasons: list[str]) -> str | None:
        key = tuple(reasons)
        if key not in self._reasons:
            if len(self._reasons) >= MAX_CACHED:
                self._reasons.clear()
            self._reasons[key] = reasons_problem(reasons)
        return self._reasons[key]


def _compact(
    sensors: Sequence[SensorRef | str], idx: npt.NDArray[np.int64]
) -> tuple[tuple[SensorRef, ...], npt.NDArray[np.int64]]:
    """The valid sensor entries alone, and the readings' indices renumbered into them."""
    remap = np.full(len(sensors), -1, dtype=np.int64)
    valid = [i for i, s in enumerate(sensors) if not isinstance(s, str)]
    remap[valid] = np.arange(len(valid), dtype=np.int64)
    return tuple(s for s in sensors if not isinstance(s, str)), remap[idx]
