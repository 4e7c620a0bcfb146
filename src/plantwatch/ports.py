"""The boundaries of plantwatch as typing.Protocols; adapters implement them, services depend only on them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from plantwatch.contract.columns import Batch
from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.contract.rejection import QuarantineEntry


class Clock(Protocol):
    """Wall-clock time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Current time, epoch milliseconds UTC."""
        ...


class GatewayRegistry(Protocol):
    """Which plant each gateway belongs to (IoT registry thing attributes in the cloud, configuration locally)."""

    def plant_of(self, gateway_id: str) -> str | None:
        """The plant ``gateway_id`` is registered to; None when it is not registered to any."""
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


class DroppedRange(msgspec.Struct, frozen=True, kw_only=True):
    """Consecutive batches a full spool dropped: their sequence numbers and how many readings they held."""

    first_seq: int
    last_seq: int
    batches: int
    readings: int


class PutOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a spool did with batches offered to it: stored, refused (policy ``reject``), or made room by dropping."""

    stored: int
    rejected_batches: int = 0
    rejected_readings: int = 0
    dropped: list[DroppedRange] = msgspec.field(default_factory=list)


class SpoolStats(msgspec.Struct, frozen=True, kw_only=True):
    """A spool's depth, disk use against its budget, and exact totals of what its full-policy cost."""

    depth: int
    bytes: int
    budget_bytes: int | None
    dropped_batches: int
    dropped_readings: int
    rejected_batches: int
    rejected_readings: int
    dropped_ranges: list[DroppedRange]


class Spool(Protocol):
    """A gateway's durable outbox: batches stay until the uplink's acknowledgement removes them."""

    def next_seq(self) -> int:
        """The sequence number the next batch will get."""
        ...

    def put(
        self, topic: str, batches: Sequence[tuple[int, bytes]], readings: Sequence[int] | None = None
    ) -> PutOutcome:
        """Store (seq, payload) batches atomically within the disk budget, and advance the sequence past them."""
        ...

    def put_alerts(
        self, topic: str, payloads: Sequence[bytes], state: bytes | None = None, *, state_name: str = "alerts"
    ) -> None:
        """Store alert events (or other small messages) for the cloud, together with the state that produced
        them under ``state_name``, in one transaction."""
        ...

    def put_state(self, name: str, value: bytes | None) -> None:
        """Keep (or, with None, forget) a named piece of gateway state across restarts."""
        ...

    def state(self, name: str) -> bytes | None:
        """The named state stored last, if any."""
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


class Scorer(Protocol):
    """Scores readings in arrival order (thresholds today; feature windows and a forest decision tomorrow).

    The gateway hands over each poll's readings at once, so a scorer can vectorise (a forest scores a small
    batch far faster than its rows one by one); a stateful scorer sees every reading exactly once, in order.
    """

    def score(self, reading: Reading) -> ScoredReading:
        """The reading with its score, flag and reasons."""
        ...

    def score_many(self, readings: Sequence[Reading]) -> list[ScoredReading]:
        """Score readings in order; the same results as calling ``score`` on each."""
        ...


class Transport(Protocol):
    """A QoS 1 publisher that reports each publish's fate exactly once through ``on_done``."""

    @property
    def connected(self) -> bool:
        """Whether publishes can currently reach the broker."""
        ...

    def start(self, on_connected: Callable[[], None]) -> None:
        """Connect (retrying in the background); call ``on_connected`` after every (re)connection."""
        ...

    def publish(self, topic: str, payload: bytes, on_done: Callable[[bool], None]) -> None:
        """Publish; ``on_done(True)`` once the broker acknowledged it, ``on_done(False)`` if it must be resent."""
        ...

    def stop(self) -> None:
        """Disconnect."""
        ...


class AlertNotifier(Protocol):
    """Delivers alert events on the floor (local broker, Greengrass local pub/sub, webhook); must not block long."""

    def notify(self, payloads: Sequence[bytes]) -> None:
        """Send encoded alert events."""
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

    def write(self, batches: Sequence[Batch]) -> WriteOutcome:
        """Store every batch (of structs or of columns) not stored before; one already stored is counted, not stored."""
        ...

    def record_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Count and keep what was rejected, so drops are visible next to the data."""
        ...


class Archive(Protocol):
    """The compliance archive: every accepted batch and every quarantined input, kept as written."""

    def put_batches(self, batches: Sequence[Batch]) -> None:
        """Archive accepted batches."""
        ...

    def put_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Archive rejected inputs with their reasons."""
        ...
