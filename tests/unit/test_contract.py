"""Data contract v1: encoding, size guarantee, validation with per-reading rejection, legacy input."""

from __future__ import annotations

import gzip
import json
import random
from typing import Any

import msgspec
import pytest

from plantwatch.contract import MAX_PAYLOAD_BYTES, ScoredReading, decode_payload, encode_batches
from plantwatch.contract.batch import BatchHeader, ModelRef
from plantwatch.contract.decode import MAX_DECOMPRESSED_BYTES
from plantwatch.contract.legacy import LegacyDefaults
from plantwatch.contract.reading import MAX_FUTURE_MS, Reading
from tests.helpers import HEADER, NOW_MS, reading, scored


def document(n: int = 3, **overrides: Any) -> dict[str, Any]:
    """A valid uncompressed batch document with ``n`` readings of one sensor."""
    doc: dict[str, Any] = {
        "schema_version": 1,
        "gateway_id": "gw-line-1",
        "seq": 7,
        "plant": "plant-1",
        "model": {"name": "original-thresholds", "version": "1"},
        "sensors": [{"line": "line-1", "asset": "a1", "sensor_id": "s1", "sensor_type": "temperature", "unit": "degC"}],
        "columns": {
            "sensor": [0] * n,
            "ts": [NOW_MS - 1000 * (n - i) for i in range(n)],
            "value": [50.0 + i for i in range(n)],
            "score": [0.0] * n,
            "anomaly": [False] * n,
            "reasons": [[] for _ in range(n)],
        },
    }
    doc.update(overrides)
    return doc


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_round_trip_keeps_every_field() -> None:
    readings = [scored(i, value=10.0 + i) for i in range(50)]
    flagged = ScoredReading(reading=reading(99, value=99.0), score=0.75, anomaly=True, reasons=("threshold.high",))
    readings.append(flagged)

    [encoded] = encode_batches(HEADER, readings, first_seq=5)
    result = decode_payload(encoded.payload, now_ms=NOW_MS)

    assert result.kind == "batch" and result.rejections == ()
    assert result.batch is not None
    assert (result.batch.gateway_id, result.batch.seq, result.batch.key) == ("gw-line-1", 5, "gw-line-1:5")
    assert result.batch.model == HEADER.model
    assert list(result.batch.readings) == readings


def test_payload_is_gzip_of_json_that_standard_tools_read() -> None:
    [encoded] = encode_batches(HEADER, [scored(0)], first_seq=1)
    document = json.loads(gzip.decompress(encoded.payload))
    assert document["schema_version"] == 1 and document["seq"] == 1


def test_big_batches_are_split_under_the_iot_core_limit_with_consecutive_seqs() -> None:
    rng = random.Random(3)
    long = "x" * 60
    readings = [
        ScoredReading(
            reading=Reading(
                plant="plant-1",
                line=f"{long}{i % 97}",
                asset=f"{long}{i % 89}",
                sensor_id=f"{long}{i}",
                sensor_type="temperature",
                unit="degC",
                ts_ms=NOW_MS - rng.randrange(10**9),
                value=rng.uniform(-1e6, 1e6),
            ),
            score=rng.random(),
            anomaly=True,
            reasons=tuple(f"model.reason_{j}" for j in range(8)),
        )
        for i in range(6000)
    ]
    batches = encode_batches(HEADER, readings, first_seq=100, max_readings=6000)

    assert len(batches) > 1
    assert all(len(b.payload) <= MAX_PAYLOAD_BYTES for b in batches)
    assert [b.seq for b in batches] == list(range(100, 100 + len(batches)))
    decoded = [decode_payload(b.payload, now_ms=NOW_MS).batch for b in batches]
    assert [r for batch in decoded if batch for r in batch.readings] == readings


def test_a_reading_of_another_plant_is_refused_not_relabelled() -> None:
    other = ScoredReading(reading=msgspec.structs.replace(reading(0), plant="plant-2"), score=0.0, anomaly=False)
    with pytest.raises(ValueError, match="plant"):
        encode_batches(HEADER, [other], first_seq=1)


def test_sequence_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        encode_batches(HEADER, [scored(0)], first_seq=0)


@pytest.mark.parametrize(
    ("column", "bad", "reason"),
    [
        ("value", None, "value must be a number"),
        ("value", "12.5", "value must be a number"),
        ("value", 1e999, "not a finite number"),
        ("value", True, "value must be a number"),
        ("ts", NOW_MS + MAX_FUTURE_MS + 1000, "in the future"),
        ("ts", 12, "before 2000-01-01"),
        ("ts", 1.5e12, "integer epoch milliseconds"),
        ("score", float("inf"), "not a finite number"),
        ("anomaly", "yes", "anomaly must be true or false"),
        ("reasons", ["DROP TABLE"], "not a reason code"),
        ("sensor", 5, "not in the batch's sensors"),
    ],
)
def test_a_bad_reading_is_rejected_alone(column: str, bad: object, reason: str) -> None:
    doc = document(3)
    doc["columns"][column][1] = bad
    payload = raw(doc).replace(b"Infinity", b"1e999")

    result = decode_payload(payload, now_ms=NOW_MS)

    assert result.kind == "batch" and result.batch is not None
    assert [r.reading.value for r in result.batch.readings] == [50.0, 52.0]
    [rejection] = result.rejections
    assert rejection.index == 1 and reason in rejection.reason


def test_a_reading_of_an_invalid_sensor_entry_is_rejected_alone() -> None:
    doc = document(2)
    doc["sensors"].append(
        {"line": "line-1", "asset": "a/../../etc", "sensor_id": "s2", "sensor_type": "t", "unit": "u"}
    )
    doc["columns"]["sensor"][0] = 1

    result = decode_payload(raw(doc), now_ms=NOW_MS)

    assert result.batch is not None and len(result.batch.readings) == 1
    assert "asset" in result.rejections[0].reason


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(schema_version=2), "unknown schema_version"),
        (lambda d: d.update(schema_version="1"), "unknown schema_version"),
        (lambda d: d.update(seq=0), "seq must be a positive integer"),
        (lambda d: d.update(seq=True), "seq must be a positive integer"),
        (lambda d: d.update(gateway_id="gw line"), "gateway_id"),
        (lambda d: d.update(plant=None), "plant must be a string"),
        (lambda d: d.update(model={"name": "x"}), "model must be an object"),
        (lambda d: d["columns"]["ts"].pop(), "differ in length"),
        (lambda d: d["columns"].pop("score"), "score missing"),
        (lambda d: d.update(sensors={}), "sensors must be a list"),
    ],
)
def test_an_untrustworthy_batch_is_rejected_whole(mutate: Any, reason: str) -> None:
    doc = document(3)
    mutate(doc)
    result = decode_payload(raw(doc), now_ms=NOW_MS)
    assert result.kind == "rejected" and result.batch is None
    assert reason in result.rejections[0].reason


def test_oversized_payload_is_rejected_with_the_limit() -> None:
    result = decode_payload(b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", now_ms=NOW_MS)
    assert result.kind == "rejected" and "limit" in result.rejections[0].reason


def test_compression_bomb_is_refused() -> None:
    bomb = gzip.compress(b"[" + b"0," * (MAX_DECOMPRESSED_BYTES // 2) + b"0]", compresslevel=9)
    assert len(bomb) < MAX_PAYLOAD_BYTES
    result = decode_payload(bomb, now_ms=NOW_MS)
    assert result.kind == "rejected" and "inflates beyond" in result.rejections[0].reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x1f\x8bnot really gzip", "does not decompress"),
        (gzip.compress(b'{"schema_version": 1')[:-6], "truncated"),
        (b"[1, 2]", "expected an object"),
        (b'{"hello": "world"}', "unrecognised payload"),
        (b"", "neither gzip nor JSON"),
    ],
)
def test_undecodable_payloads_get_a_reason(payload: bytes, reason: str) -> None:
    result = decode_payload(payload, now_ms=NOW_MS)
    assert result.kind == "rejected" and reason in result.rejections[0].reason


# --- the original design's raw reading --------------------------------------------------------------------

ORIGINAL_EXAMPLE = {
    "sensor_id": "temp-001",
    "production_line": "line1",
    "type": "temperature",
    "value": 75.5,
    "timestamp": "2024-01-01T12:00:00Z",
}
JAN_2024_MS = 1_704_110_400_000  # 2024-01-01T12:00:00Z


def test_original_example_reading_is_accepted_with_its_own_event_time() -> None:
    result = decode_payload(
        json.dumps(ORIGINAL_EXAMPLE).encode(),
        now_ms=JAN_2024_MS + 5000,
        topic="manufacturing/sensors/temp-001/data",
        legacy_defaults=LegacyDefaults(plant="plant-9"),
    )
    assert result.kind == "legacy"
    assert result.legacy == Reading(
        plant="plant-9",
        line="line1",
        asset="unassigned",
        sensor_id="temp-001",
        sensor_type="temperature",
        unit="degC",
        ts_ms=JAN_2024_MS,
        value=75.5,
    )


def test_legacy_timestamps_with_offsets_and_milliseconds_are_converted_to_utc() -> None:
    doc = {**ORIGINAL_EXAMPLE, "timestamp": "2024-01-01T13:00:00.250+01:00"}
    result = decode_payload(json.dumps(doc).encode(), now_ms=JAN_2024_MS)
    assert result.legacy is not None and result.legacy.ts_ms == JAN_2024_MS + 250


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timestamp": None}, "ISO-8601 string"),
        ({"timestamp": "2024-01-01T12:00:00"}, "no UTC offset"),
        ({"timestamp": "yesterday"}, "not ISO-8601"),
        ({"timestamp": "2024-01-01T12:20:01Z"}, "in the future"),
        ({"value": "75.5"}, "value must be a number"),
        ({"value": float("nan")}, "not a finite number"),
        ({"type": "Temp!"}, "sensor type"),
        ({"production_line": ""}, "production_line"),
    ],
)
def test_bad_legacy_readings_are_rejected_with_a_reason(change: dict[str, Any], reason: str) -> None:
    payload = json.dumps({**ORIGINAL_EXAMPLE, **change}).encode()
    result = decode_payload(payload, now_ms=JAN_2024_MS)
    assert result.kind == "rejected" and reason in result.rejections[0].reason
    assert result.rejections[0].sensor_id == "temp-001"


def test_legacy_reading_missing_fields_names_them() -> None:
    result = decode_payload(b'{"sensor_id": "t1", "value": 3}', now_ms=JAN_2024_MS)
    assert "production_line, type, timestamp" in result.rejections[0].reason


def test_legacy_sensor_id_must_match_its_topic() -> None:
    result = decode_payload(
        json.dumps(ORIGINAL_EXAMPLE).encode(), now_ms=JAN_2024_MS, topic="manufacturing/sensors/temp-002/data"
    )
    assert result.kind == "rejected" and "does not match the topic" in result.rejections[0].reason


def test_unknown_sensor_types_are_accepted_with_unknown_unit() -> None:
    doc = {**ORIGINAL_EXAMPLE, "type": "humidity"}
    result = decode_payload(json.dumps(doc).encode(), now_ms=JAN_2024_MS)
    assert result.legacy is not None and result.legacy.unit == "unknown"


def test_batch_header_validates_model_lengths() -> None:
    header = BatchHeader(gateway_id="g", plant="plant-1", model=ModelRef(name="m" * 65, version="1"))
    [encoded] = encode_batches(header, [scored(0)], first_seq=1)
    result = decode_payload(encoded.payload, now_ms=NOW_MS)
    assert result.kind == "rejected" and "1-64 characters" in result.rejections[0].reason


def test_decoded_structs_are_frozen() -> None:
    [encoded] = encode_batches(HEADER, [scored(0)], first_seq=1)
    batch = decode_payload(encoded.payload, now_ms=NOW_MS).batch
    assert batch is not None
    with pytest.raises(AttributeError):
        batch.seq = 2  # type: ignore[misc]
    assert msgspec.structs.asdict(batch)["seq"] == 1
