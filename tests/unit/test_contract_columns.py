"""The columnar decoder gives exactly decode_payload's result (same batch, same rejections), as columns."""

from __future__ import annotations

import gzip
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwatch.contract import decode_payload, encode_batches
from plantwatch.contract.columns import BatchColumns, columns_of, count_of, scored_batch_of
from plantwatch.contract.decode_columns import ColumnDecoder, ColumnsResult
from plantwatch.contract.reading import MAX_FUTURE_MS
from tests.helpers import HEADER, NOW_MS, scored
from tests.unit.test_contract import document
from tests.unit.test_contract_properties import json_values

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENSOR_FIELDS = ["line", "asset", "sensor_id", "sensor_type", "unit"]
HEADER_FIELDS = ["schema_version", "gateway_id", "seq", "plant", "model"]


def same_as_decode_payload(payload: bytes, decoder: ColumnDecoder | None = None) -> ColumnsResult:
    """Decode both ways and require the same kind, rejections, legacy reading and batch."""
    expected = decode_payload(payload, now_ms=NOW_MS)
    got = (decoder or ColumnDecoder()).decode(payload, now_ms=NOW_MS)
    assert (got.kind, got.rejections, got.legacy) == (expected.kind, expected.rejections, expected.legacy)
    if expected.batch is None:
        assert got.batch is None
    else:
        assert got.batch is not None
        assert got.batch.scored_batch() == expected.batch
        assert got.batch.key == expected.batch.key
    return got


@SETTINGS
@given(st.data(), st.integers(min_value=1, max_value=12), st.booleans())
def test_corrupted_cells_give_the_same_rejections(data: st.DataObject, n: int, zipped: bool) -> None:
    doc = document(n)
    doc["sensors"].append(
        {"line": "line-2", "asset": "a2", "sensor_id": "s2", "sensor_type": "pressure", "unit": "kPa"}
    )
    doc["columns"]["sensor"] = [i % 2 for i in range(n)]
    columns = ["sensor", "ts", "value", "score", "anomaly", "reasons"]
    for _ in range(data.draw(st.integers(min_value=0, max_value=n))):
        column = data.draw(st.sampled_from(columns))
        row = data.draw(st.integers(min_value=0, max_value=n - 1))
        doc["columns"][column][row] = data.draw(
            json_values
            | st.integers(min_value=-1, max_value=3)
            | st.integers(min_value=NOW_MS, max_value=NOW_MS + 2 * MAX_FUTURE_MS)
            | st.lists(st.sampled_from(["threshold.high", "Bad", "x" * 49, "forest"]), max_size=9)
        )
    if data.draw(st.booleans()):
        entry = data.draw(st.integers(min_value=0, max_value=1))
        doc["sensors"][entry][data.draw(st.sampled_from(SENSOR_FIELDS))] = data.draw(json_values | st.just("bad id!"))
    payload = json.dumps(doc).encode()
    same_as_decode_payload(gzip.compress(payload) if zipped else payload)


@SETTINGS
@given(st.sampled_from([*HEADER_FIELDS, "sensors", "columns"]), json_values)
def test_a_bad_header_is_rejected_the_same_way(field: str, value: Any) -> None:
    same_as_decode_payload(json.dumps(document(3, **{field: value})).encode())


@SETTINGS
@given(json_values)
def test_any_json_gives_the_same_result(value: Any) -> None:
    same_as_decode_payload(json.dumps(value).encode())


def test_legacy_readings_and_junk_give_the_same_result() -> None:
    legacy = {"sensor_id": "t1", "production_line": "line-1", "type": "temperature", "value": 81.5}
    same_as_decode_payload(json.dumps({**legacy, "timestamp": "2025-11-24T15:59:00Z"}).encode())
    same_as_decode_payload(b"\x1f\x8bnot gzip")
    same_as_decode_payload(b'{"schema_version": 1, "columns": {"ts": [1e999]}}')


def test_valid_batches_with_bad_readings_never_need_decode_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a batch whose cells have the wire types, with a reading from the future, an unknown sensor index,
    # a bad reason code and a reading of an invalid sensor entry
    doc = document(6)
    doc["sensors"].insert(0, {"line": "line 1", "asset": "a1", "sensor_id": "s0", "sensor_type": "t", "unit": "u"})
    doc["columns"]["sensor"] = [1, 1, 0, 5, 1, 1]
    doc["columns"]["ts"][1] = NOW_MS + MAX_FUTURE_MS + 1
    doc["columns"]["reasons"][4] = ["Not a code"]
    payload = gzip.compress(json.dumps(doc).encode())
    expected = decode_payload(payload, now_ms=NOW_MS)
    # WHEN the columnar decoder decodes it with decode_payload unavailable
    monkeypatch.setattr("plantwatch.contract.decode_columns.decode_payload", None)
    got = ColumnDecoder().decode(payload, now_ms=NOW_MS)
    # THEN it finds the same four rejections and keeps the two good readings, renumbering the sensor dictionary
    assert got.rejections == expected.rejections
    assert [r.index for r in got.rejections] == [1, 2, 3, 4]
    assert got.batch is not None and expected.batch is not None
    assert got.batch.scored_batch() == expected.batch
    assert got.batch.sensors == (expected.batch.readings[0].reading.sensor,)


def test_encoded_batches_decode_to_what_was_encoded_and_convert_both_ways() -> None:
    readings = [scored(i, value=40.0 + i * 0.1) for i in range(500)]
    decoder = ColumnDecoder()
    for encoded in encode_batches(HEADER, readings, first_seq=3, max_readings=200):
        got = same_as_decode_payload(encoded.payload, decoder)
        assert got.batch is not None and got.rejections == ()
        structs = got.batch.scored_batch()
        again = BatchColumns.of(structs)
        assert again.scored_batch() == structs
        assert columns_of(structs).scored_batch() == structs
        assert columns_of(got.batch) is got.batch
        assert scored_batch_of(got.batch) == structs
        assert scored_batch_of(structs) is structs
        assert count_of(got.batch) == count_of(structs) == encoded.count


def test_a_batch_of_structs_with_another_plant_cannot_become_columns() -> None:
    batch = decode_payload(encode_batches(HEADER, [scored(0)], first_seq=1)[0].payload, now_ms=NOW_MS).batch
    assert batch is not None

    odd = msgspec.structs.replace(batch, plant="plant-2")
    with pytest.raises(ValueError, match="plant"):
        BatchColumns.of(odd)
