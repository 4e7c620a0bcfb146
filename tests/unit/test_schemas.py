"""The JSON Schemas under schemas/ describe exactly what the encoder writes and the decoder accepts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from plantwatch.contract import QuarantineEntry, ScoredReading, decode_payload, encode_batches
from tests.helpers import HEADER, NOW_MS, reading, scored

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        document = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(document)))
    return Registry().with_resources(resources)


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def test_every_schema_is_valid_draft_2020_12() -> None:
    names = sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert names == [
        "legacy-reading.json",
        "quarantine-entry.v1.json",
        "reading.v1.json",
        "score-summary.v1.json",
        "scored-batch.v1.json",
    ]
    for name in names:
        validator(name)


def test_encoded_batches_match_the_batch_schema() -> None:
    flagged = ScoredReading(reading=reading(3, value=99.0), score=0.7, anomaly=True, reasons=("threshold.high",))
    [encoded] = encode_batches(HEADER, [scored(i) for i in range(20)] + [flagged], first_seq=3)
    validator("scored-batch.v1.json").validate(json.loads(gzip.decompress(encoded.payload)))


@pytest.mark.parametrize(
    ("path", "value"),
    [(("schema_version",), 2), (("seq",), 0), (("gateway_id",), "a b"), (("columns", "reasons", 0), ["Bad Reason"])],
)
def test_schema_and_decoder_reject_the_same_mistakes(path: tuple[Any, ...], value: Any) -> None:
    [encoded] = encode_batches(HEADER, [scored(0)], first_seq=1)
    document = json.loads(gzip.decompress(encoded.payload))
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not validator("scored-batch.v1.json").is_valid(document)
    result = decode_payload(json.dumps(document).encode(), now_ms=NOW_MS)
    assert result.rejections


def test_original_example_matches_the_legacy_schema() -> None:
    schema = json.loads((SCHEMAS / "legacy-reading.json").read_text())
    for example in schema["examples"]:
        validator("legacy-reading.json").validate(example)


def test_readings_and_quarantine_entries_match_their_schemas() -> None:
    validator("reading.v1.json").validate(msgspec.to_builtins(reading(0)))
    result = decode_payload(b"junk", now_ms=NOW_MS)
    entry = QuarantineEntry.of(result.rejections[0], payload=b"junk", source="t#1", received_at_ms=NOW_MS)
    validator("quarantine-entry.v1.json").validate(msgspec.to_builtins(entry))
