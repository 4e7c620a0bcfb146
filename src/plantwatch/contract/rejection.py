"""Rejections and quarantine entries: what was refused, why, and the bytes to prove it."""

from __future__ import annotations

import base64

import msgspec

#: Quarantine keeps the offending input up to this size; larger inputs keep their head and their length.
MAX_QUARANTINED_BYTES = 256 * 1024


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """One refused input or reading: a reason a person can act on, and where in the input it was."""

    reason: str
    index: int | None = None
    sensor_id: str | None = None


class QuarantineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A rejection as it is kept: when, from where, why, and the offending input (base64)."""

    received_at_ms: int
    source: str
    reason: str
    index: int | None
    sensor_id: str | None
    payload_b64: str
    payload_bytes: int

    @classmethod
    def of(cls, rejection: Rejection, *, payload: bytes, source: str, received_at_ms: int) -> QuarantineEntry:
        """Build the entry kept for ``rejection`` of ``payload`` received from ``source``."""
        kept = payload[:MAX_QUARANTINED_BYTES]
        return cls(
            received_at_ms=received_at_ms,
            source=source,
            reason=rejection.reason,
            index=rejection.index,
            sensor_id=rejection.sensor_id,
            payload_b64=base64.b64encode(kept).decode("ascii"),
            payload_bytes=len(payload),
        )
