"""Wire formats: readings, scored batches, legacy raw readings, validation and quarantine (pure)."""

from plantwatch.contract.batch import (
    MAX_PAYLOAD_BYTES,
    BatchHeader,
    EncodedBatch,
    ModelRef,
    ScoredBatch,
    encode_batches,
)
from plantwatch.contract.decode import DecodeResult, decode_payload
from plantwatch.contract.legacy import LegacyDefaults, legacy_topic
from plantwatch.contract.reading import (
    KNOWN_SENSOR_TYPES,
    Reading,
    ScoredReading,
    SensorRef,
)
from plantwatch.contract.rejection import QuarantineEntry, Rejection

__all__ = [
    "KNOWN_SENSOR_TYPES",
    "MAX_PAYLOAD_BYTES",
    "BatchHeader",
    "DecodeResult",
    "EncodedBatch",
    "LegacyDefaults",
    "ModelRef",
    "QuarantineEntry",
    "Reading",
    "Rejection",
    "ScoredBatch",
    "ScoredReading",
    "SensorRef",
    "decode_payload",
    "encode_batches",
    "legacy_topic",
]
