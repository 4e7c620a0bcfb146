"""Keeping one refused message: a quarantine entry in the archive (the evidence) and in the sink (the count)."""

from __future__ import annotations

from plantwatch.contract.rejection import QuarantineEntry, Rejection
from plantwatch.ports import Archive, Clock, Sink


def keep_refused(archive: Archive, sink: Sink, clock: Clock, *, source: str, payload: bytes, reason: str) -> None:
    """Archive and count ``payload`` from ``source`` as refused for ``reason``; raises if a store fails."""
    entry = QuarantineEntry.of(Rejection(reason=reason), payload=payload, source=source, received_at_ms=clock.now_ms())
    archive.put_quarantine([entry])
    sink.record_quarantine([entry])
