"""Decode any payload plantwatch receives into valid data and rejections; never raises.

Accepts a gzip-compressed scored batch (v1), the same batch as plain JSON, or a legacy raw reading.
A whole payload is rejected only when nothing in it can be trusted (undecodable, unknown schema version,
bad header, columns of different lengths); otherwise each bad reading is rejected on its own.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any, Final, Literal, cast

import msgspec

from plantwatch.contract.batch import (
    GZIP_MAGIC,
    MAX_PAYLOAD_BYTES,
    MODEL_REF_MAX,
    SCHEMA_VERSION,
    ModelRef,
    ScoredBatch,
)
from plantwatch.contract.legacy import LegacyDefaults, looks_legacy, parse_legacy
from plantwatch.contract.reading import (
    Reading,
    ScoredReading,
    SensorRef,
    ident_problem,
    reasons_problem,
    sensor_type_problem,
    timestamp_problem,
    unit_problem,
    value_problem,
)
from plantwatch.contract.rejection import Rejection

#: A batch may not inflate beyond this (defends against compression bombs).
MAX_DECOMPRESSED_BYTES: Final = 8 * 1024 * 1024
MAX_READINGS_PER_BATCH: Final = 20_000
COLUMNS: Final = ("sensor", "ts", "value", "score", "anomaly", "reasons")

Kind = Literal["batch", "legacy", "rejected"]


class DecodeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a payload held: a batch (valid readings only), a legacy reading, and every rejection."""

    kind: Kind
    batch: ScoredBatch | None = None
    legacy: Reading | None = None
    rejections: tuple[Rejection, ...] = ()


def _rejected(reason: str) -> DecodeResult:
    return DecodeResult(kind="rejected", rejections=(Rejection(reason=reason),))


def decode_payload(
    payload: bytes,
    *,
    now_ms: int,
    topic: str | None = None,
    legacy_defaults: LegacyDefaults | None = None,
) -> DecodeResult:
    """Decode ``payload`` received at ``now_ms`` (epoch ms) on ``topic``; every problem becomes a rejection."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _rejected(
            f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit: send smaller batches"
        )
    if payload.startswith(GZIP_MAGIC):
        inflated = gunzip(payload)
        if isinstance(inflated, str):
            return _rejected(inflated)
        payload = inflated
    document = _parse_json(payload)
    if isinstance(document, _Invalid):
        return _rejected(f"payload is neither gzip nor JSON ({document.error}): expected a scored batch or raw reading")
    if not isinstance(document, dict):
        return _rejected(f"payload is a JSON {type(document).__name__}, expected an object")
    if looks_legacy(document):
        result = parse_legacy(document, now_ms=now_ms, defaults=legacy_defaults or LegacyDefaults(), topic=topic)
        if isinstance(result, Rejection):
            return DecodeResult(kind="rejected", rejections=(result,))
        return DecodeResult(kind="legacy", legacy=result)
    if "schema_version" in document:
        return _decode_batch(document, now_ms=now_ms)
    return _rejected(
        "unrecognised payload: expected a scored batch (schema_version, gateway_id, seq, ...) or a raw reading "
        "(sensor_id, production_line, type, value, timestamp)"
    )


class _Invalid(msgspec.Struct, frozen=True):
    error: str


def _parse_json(payload: bytes) -> Any:
    """Parse JSON fast; fall back to the lenient stdlib parser so that one NaN, Infinity or 1e999 cell
    becomes a per-reading rejection instead of making the whole batch unreadable."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        try:
            return json.loads(payload)
        except (ValueError, RecursionError):
            return _Invalid(str(exc))


def gunzip(payload: bytes) -> bytes | str:
    """The inflated gzip ``payload`` (bounded by MAX_DECOMPRESSED_BYTES), or why it cannot be inflated."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(payload, MAX_DECOMPRESSED_BYTES)
    except zlib.error as exc:
        return f"payload starts like gzip but does not decompress ({exc})"
    if inflater.unconsumed_tail:
        return f"payload inflates beyond {MAX_DECOMPRESSED_BYTES} bytes: refused"
    if not inflater.eof:
        return "gzip payload is truncated"
    return data


def header_problem(document: dict[str, Any]) -> str | None:
    """Why a batch document's header (version, seq, model, gateway, plant) is refused, or None."""
    version = document.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return (
            f"unknown schema_version {str(version)[:20]!r}: this receiver understands {SCHEMA_VERSION}; "
            "upgrade the cloud side before the gateways"
        )
    seq = document.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return f"seq must be a positive integer, got {str(seq)[:30]!r}"
    model = document.get("model")
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("name"), str)
        or not isinstance(model.get("version"), str)
    ):
        return "model must be an object with string name and version"
    if not (0 < len(model["name"]) <= MODEL_REF_MAX and 0 < len(model["version"]) <= MODEL_REF_MAX):
        return f"model name and version must be 1-{MODEL_REF_MAX} characters"
    return ident_problem("gateway_id", document.get("gateway_id")) or ident_problem("plant", document.get("plant"))


def _columns(document: dict[str, Any]) -> dict[str, list[Any]] | str:
    columns = document.get("columns")
    sensors = document.get("sensors")
    if not isinstance(sensors, list):
        return "sensors must be a list"
    if not isinstance(columns, dict):
        return "columns must be an object"
    missing = [name for name in COLUMNS if not isinstance(columns.get(name), list)]
    if missing:
        return f"columns {', '.join(missing)} missing or not lists"
    lengths = {name: len(columns[name]) for name in COLUMNS}
    if len(set(lengths.values())) != 1:
        return f"columns differ in length {lengths}: readings cannot be attributed"
    if lengths["sensor"] > MAX_READINGS_PER_BATCH:
        return f"{lengths['sensor']} readings in one batch, over the limit of {MAX_READINGS_PER_BATCH}"
    return columns


def sensor_entry_problem(
    line: object, asset: object, sensor_id: object, sensor_type: object, unit: object
) -> str | None:
    """Why a sensor dictionary entry with these fields is not valid, or None if it is."""
    return (
        ident_problem("line", line)
        or ident_problem("asset", asset)
        or ident_problem("sensor_id", sensor_id)
        or sensor_type_problem(sensor_type)
        or unit_problem(unit)
    )


def reading_rejection(
    i: int,
    idx: object,
    ts: object,
    value: object,
    score: object,
    anomaly: object,
    reasons: object,
    sensors: Sequence[SensorRef | str],
    now_ms: int,
) -> Rejection | None:
    """Why reading ``i`` of a batch (its cells, and the batch's checked sensor entries) is refused, or None."""
    sensor = sensors[idx] if isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < len(sensors) else None
    if sensor is None:
        return Rejection(reason=f"sensor index {str(idx)[:20]} is not in the batch's sensors", index=i)
    if isinstance(sensor, str):
        return Rejection(reason=sensor, index=i)
    problem = (
        timestamp_problem(ts, now_ms)
        or value_problem("value", value)
        or value_problem("score", score)
        or (None if isinstance(anomaly, bool) else f"anomaly must be true or false, got {str(anomaly)[:20]}")
        or reasons_problem(reasons)
    )
    return None if problem is None else Rejection(reason=problem, index=i, sensor_id=sensor.sensor_id)


def _sensor(entry: object) -> SensorRef | str:
    if not isinstance(entry, dict):
        return "sensor entry must be an object"
    problem = sensor_entry_problem(
        entry.get("line"), entry.get("asset"), entry.get("sensor_id"), entry.get("sensor_type"), entry.get("unit")
    )
    if problem:
        return problem
    return SensorRef(
        line=entry["line"],
        asset=entry["asset"],
        sensor_id=entry["sensor_id"],
        sensor_type=entry["sensor_type"],
        unit=entry["unit"],
    )


def _decode_batch(document: dict[str, Any], *, now_ms: int) -> DecodeResult:
    problem = header_problem(document)
    if problem:
        return _rejected(problem)
    columns = _columns(document)
    if isinstance(columns, str):
        return _rejected(columns)
    plant: str = document["plant"]
    sensors = [_sensor(entry) for entry in document["sensors"]]
    readings: list[ScoredReading] = []
    rejections: list[Rejection] = []
    for i, (idx, ts, value, score, anomaly, reasons) in enumerate(zip(*(columns[c] for c in COLUMNS), strict=True)):
        rejection = reading_rejection(i, idx, ts, value, score, anomaly, reasons, sensors, now_ms)
        if rejection is not None:
            rejections.append(rejection)
            continue
        sensor = cast(SensorRef, sensors[idx])  # checked by reading_rejection
        reading = sensor.reading(plant=plant, ts_ms=ts, value=float(value))
        readings.append(ScoredReading(reading=reading, score=float(score), anomaly=anomaly, reasons=tuple(reasons)))
    batch = ScoredBatch(
        schema_version=SCHEMA_VERSION,
        gateway_id=document["gateway_id"],
        seq=document["seq"],
        plant=plant,
        model=ModelRef(name=document["model"]["name"], version=document["model"]["version"]),
        readings=tuple(readings),
    )
    return DecodeResult(kind="batch", batch=batch, rejections=tuple(rejections))
