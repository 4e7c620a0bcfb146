"""Property-based tests of the decoder: any input gives a valid batch or clean rejections, never an exception."""

from __future__ import annotations

import gzip
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwatch.contract import decode_payload, encode_batches
from plantwatch.contract.reading import MAX_FUTURE_MS
from tests.helpers import HEADER, NOW_MS, scored
from tests.unit.test_contract import document

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def check(result: Any, total: int | None = None) -> None:
    assert result.kind in ("batch", "legacy", "rejected")
    assert all(isinstance(r.reason, str) and r.reason for r in result.rejections)
    if result.kind == "rejected":
        assert result.batch is None and result.legacy is None and result.rejections
    if result.batch is not None and total is not None:
        assert len(result.batch.readings) + len(result.rejections) == total


@SETTINGS
@given(st.binary(max_size=2048))
def test_any_bytes_decode_or_reject_cleanly(payload: bytes) -> None:
    check(decode_payload(payload, now_ms=NOW_MS))


@SETTINGS
@given(st.binary(max_size=512))
def test_any_gzipped_bytes_decode_or_reject_cleanly(payload: bytes) -> None:
    check(decode_payload(gzip.compress(payload), now_ms=NOW_MS))


@SETTINGS
@given(json_values)
def test_any_json_decodes_or_rejects_cleanly(value: Any) -> None:
    check(decode_payload(json.dumps(value).encode(), now_ms=NOW_MS))


@SETTINGS
@given(st.data(), st.integers(min_value=1, max_value=12))
def test_corrupted_cells_reject_only_their_readings(data: st.DataObject, n: int) -> None:
    doc = document(n)
    columns = ["sensor", "ts", "value", "score", "anomaly", "reasons"]
    for _ in range(data.draw(st.integers(min_value=0, max_value=n))):
        column = data.draw(st.sampled_from(columns))
        row = data.draw(st.integers(min_value=0, max_value=n - 1))
        doc["columns"][column][row] = data.draw(json_values)
    result = decode_payload(json.dumps(doc).encode(), now_ms=NOW_MS)
    check(result, total=n)
    for kept in result.batch.readings if result.batch else ():
        assert kept.reading.ts_ms <= NOW_MS + MAX_FUTURE_MS


@SETTINGS
@given(st.lists(st.floats(min_value=-1e9, max_value=1e9), min_size=1, max_size=300), st.integers(1, 2**40))
def test_encoded_batches_always_decode_to_what_was_encoded(values: list[float], seq: int) -> None:
    readings = [scored(i, value=v) for i, v in enumerate(values)]
    batches = encode_batches(HEADER, readings, first_seq=seq)
    decoded = []
    for encoded in batches:
        result = decode_payload(encoded.payload, now_ms=NOW_MS)
        assert result.batch is not None and result.rejections == ()
        decoded.extend(result.batch.readings)
    assert decoded == readings
