"""Scored batches: what a gateway publishes, encoded as gzip-compressed columnar JSON under IoT Core's limit.

Wire format v1 (after gunzip) is one JSON object, described by ``schemas/scored-batch.v1.json``::

    {"schema_version": 1, "gateway_id": "gw-line-1", "seq": 42, "plant": "plant-1",
     "model": {"name": "thresholds", "version": "1"},
     "sensors": [{"line": ..., "asset": ..., "sensor_id": ..., "sensor_type": ..., "unit": ...}, ...],
     "columns": {"sensor": [0, 1], "ts": [epoch ms, ...], "value": [...], "score": [...],
                 "anomaly": [false, true], "reasons": [[], ["threshold.high"]]}}

``sensors`` is a dictionary: each reading names its sensor by index, so ids are sent once per batch.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from plantwatch.contract.reading import Reading, ScoredReading, SensorRef

SCHEMA_VERSION: Final = 1
#: IoT Core refuses publishes over 128 KB; every encoded batch is at most this many bytes.
MAX_PAYLOAD_BYTES: Final = 128 * 1000
#: Batches are cut at this many readings before encoding; encoding splits further if a batch is too big.
DEFAULT_MAX_READINGS: Final = 2000
GZIP_MAGIC: Final = b"\x1f\x8b"


#: The longest model name or version a batch or score summary may carry (the cloud refuses longer ones).
MODEL_REF_MAX: Final = 64


class ModelRef(msgspec.Struct, frozen=True, kw_only=True):
    """The model (name and version) that scored a batch; each 1-:data:`MODEL_REF_MAX` characters."""

    name: str
    version: str


class BatchHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What every batch of one gateway shares: who sent it, for which plant, scored by which model."""

    gateway_id: str
    plant: str
    model: ModelRef


class ScoredBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded batch; ``gateway_id`` and ``seq`` together are its idempotency key."""

    schema_version: int
    gateway_id: str
    seq: int
    plant: str
    model: ModelRef
    readings: tuple[ScoredReading, ...]

    @property
    def key(self) -> str:
        """Idempotency key: the same batch delivered twice has the same key."""
        return f"{self.gateway_id}:{self.seq}"


class EncodedBatch(msgspec.Struct, frozen=True, kw_only=True):
    """An encoded batch ready to publish: its sequence number, payload and reading count."""

    seq: int
    payload: bytes
    count: int


class _WireColumns(msgspec.Struct, kw_only=True):
    sensor: list[int]
    ts: list[int]
    value: list[float]
    score: list[float]
    anomaly: list[bool]
    reasons: list[list[str]]


class _WireBatch(msgspec.Struct, kw_only=True):
    schema_version: int
    gateway_id: str
    seq: int
    plant: str
    model: ModelRef
    sensors: list[SensorRef]
    columns: _WireColumns


_encoder = msgspec.json.Encoder()


def _encode_one(header: BatchHeader, seq: int, readings: Sequence[ScoredReading]) -> bytes:
    index: dict[SensorRef, int] = {}
    columns = _WireColumns(sensor=[], ts=[], value=[], score=[], anomaly=[], reasons=[])
    for scored in readings:
        reading = scored.reading
        if reading.plant != header.plant:
            raise ValueError(f"reading of plant {reading.plant!r} in a batch of plant {header.plant!r}")
        ref = reading.sensor
        columns.sensor.append(index.setdefault(ref, len(index)))
        columns.ts.append(reading.ts_ms)
        columns.value.append(reading.value)
        columns.score.append(scored.score)
        columns.anomaly.append(scored.anomaly)
        columns.reasons.append(list(scored.reasons))
    wire = _WireBatch(
        schema_version=SCHEMA_VERSION,
        gateway_id=header.gateway_id,
        seq=seq,
        plant=header.plant,
        model=header.model,
        sensors=list(index),
        columns=columns,
    )
    return gzip.compress(_encoder.encode(wire), compresslevel=6, mtime=0)


def encode_batches(
    header: BatchHeader,
    readings: Sequence[ScoredReading],
    *,
    first_seq: int,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_readings: int = DEFAULT_MAX_READINGS,
) -> list[EncodedBatch]:
    """Encode ``readings`` into consecutive batches numbered from ``first_seq``, each at most ``max_bytes``.

    A chunk that encodes too large is split in half until it fits. A single valid reading encodes to a few
    hundred bytes (identifiers are at most 64 characters, reasons at most 8 of 48), so splitting always ends.
    """
    if first_seq < 1:
        raise ValueError("sequence numbers start at 1")
    out: list[EncodedBatch] = []
    pending: list[Sequence[ScoredReading]] = list(_chunks(readings, max_readings))
    pending.reverse()
    seq = first_seq
    while pending:
        chunk = pending.pop()
        payload = _encode_one(header, seq, chunk)
        if len(payload) > max_bytes:
            if len(chunk) == 1:
                raise ValueError(f"one reading encodes to {len(payload)} bytes, over the {max_bytes} limit")
            half = len(chunk) // 2
            pending.extend([chunk[half:], chunk[:half]])
            continue
        out.append(EncodedBatch(seq=seq, payload=payload, count=len(chunk)))
        seq += 1
    return out


def _chunks(readings: Sequence[ScoredReading], size: int) -> Iterator[Sequence[ScoredReading]]:
    for start in range(0, len(readings), size):
        yield readings[start : start + size]


def readings_of(batch: ScoredBatch) -> list[Reading]:
    """The plain readings of a batch, without scores."""
    return [scored.reading for scored in batch.readings]
