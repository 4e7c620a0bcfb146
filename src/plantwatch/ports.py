"""The boundaries of plantwatch as typing.Protocols; adapters implement them, services depend only on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from plantwatch.contract.batch import ScoredBatch
from plantwatch.contract.reading import Reading
from plantwatch.contract.rejection import QuarantineEntry


class Clock(Protocol):
    """Wall-clock time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Current time, epoch milliseconds UTC."""
        ...


class SensorSource(Protocol):
    """Something a gateway reads readings from (simulator, Modbus, OPC UA, raw MQTT)."""

    def poll(self, now_ms: int) -> Sequence[Reading]:
        """Readings that became available up to ``now_ms``."""
        ...


class SpooledBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A batch waiting in a gateway's durable spool to be acknowledged by the cloud."""

    spool_id: int
    seq: int
    topic: str
    payload: bytes


class Spool(Protocol):
    """A gateway's durable outbox: batches stay until the uplink's acknowledgement removes them."""

    def next_seq(self) -> int:
        """The sequence number the next batch will get."""
        ...

    def put(self, topic: str, batches: Sequence[tuple[int, bytes]]) -> None:
        """Store (seq, payload) batches atomically, and advance the sequence past them."""
        ...

    def peek(self, limit: int) -> list[SpooledBatch]:
        """The oldest ``limit`` batches, oldest first."""
        ...

    def remove(self, spool_ids: Sequence[int]) -> None:
        """Forget acknowledged batches."""
        ...

    def depth(self) -> int:
        """How many batches are waiting."""
        ...


class StreamRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One record of a stream (a Kinesis record, or a local stream entry)."""

    record_id: str
    data: bytes
    arrival_ms: int
    topic: str | None = None


class SinkRejection(msgspec.Struct, frozen=True, kw_only=True):
    """A reading a sink refused for good (retrying cannot help): it is quarantined with this reason."""

    batch_key: str
    sensor_id: str
    ts_ms: int
    reason: str


class WriteOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a sink did with a write: readings written, batches it had already seen, and what it could not write.

    ``incomplete`` names batches not fully written because of a transient failure (throttling, timeouts):
    the caller retries them. ``rejected`` lists readings refused for good: the caller quarantines them.
    """

    written: int
    duplicate_batches: int
    incomplete: tuple[str, ...] = ()
    rejected: tuple[SinkRejection, ...] = ()


class Sink(Protocol):
    """Where accepted readings are stored for analytics; writes are idempotent by batch key."""

    def write(self, batches: Sequence[ScoredBatch]) -> WriteOutcome:
        """Store every batch not stored before; a batch already stored is counted, not stored again."""
        ...

    def record_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Count and keep what was rejected, so drops are visible next to the data."""
        ...


class Archive(Protocol):
    """The compliance archive: every accepted batch and every quarantined input, kept as written."""

    def put_batches(self, batches: Sequence[ScoredBatch]) -> None:
        """Archive accepted batches."""
        ...

    def put_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Archive rejected inputs with their reasons."""
        ...
