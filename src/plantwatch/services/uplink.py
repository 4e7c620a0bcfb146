"""Store-and-forward uplink: drains a spool in order through a transport, under IoT Core's per-connection caps."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Final

from plantwatch.ports import Spool, Transport

log = logging.getLogger(__name__)

#: IoT Core allows 512 KiB/s and 100 publishes/s per connection, and at most 100 unacknowledged QoS 1 publishes.
IOT_CORE_BYTES_PER_S: Final = 512 * 1024
IOT_CORE_PUBLISHES_PER_S: Final = 100
IOT_CORE_MAX_INFLIGHT: Final = 100


class TokenBucket:
    """A rate limit of ``rate`` units per second with a burst of one second's worth."""

    def __init__(self, rate: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._monotonic = monotonic
        self._tokens = rate
        self._at = monotonic()

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` units may be taken (0 if now)."""
        now = self._monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        need = min(amount, self.rate) - self._tokens  # a unit larger than the burst waits for a full bucket
        return max(0.0, need / self.rate)

    def take(self, amount: float) -> None:
        """Take ``amount`` units (the balance may go negative for units larger than the burst)."""
        self._tokens -= amount


class Uplink:
    """Publishes spooled batches oldest first with QoS 1; a batch leaves the spool only when acknowledged."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        *,
        name: str = "uplink",
        inflight: int = 20,
        max_bytes_per_s: float = IOT_CORE_BYTES_PER_S,
        max_publishes_per_s: float = IOT_CORE_PUBLISHES_PER_S,
        ack_timeout_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= inflight <= IOT_CORE_MAX_INFLIGHT:
            raise ValueError(f"inflight must be 1..{IOT_CORE_MAX_INFLIGHT}")
        self.spool = spool
        self.transport = transport
        self.inflight_limit = inflight
        self.bytes_bucket = TokenBucket(max_bytes_per_s, monotonic=monotonic)
        self.publish_bucket = TokenBucket(max_publishes_per_s, monotonic=monotonic)
        self._cond = threading.Condition()
        self.ack_timeout_s = ack_timeout_s
        self._monotonic = monotonic
        self._inflight: dict[int, float] = {}  # spool id -> when it was handed to the transport
        self._acked: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.published = 0
        self.failed = 0
        self._failures_seen = 0

    @property
    def connected(self) -> bool:
        """Whether the transport currently reaches the broker."""
        return self.transport.connected

    def start(self) -> None:
        """Connect and start draining."""
        self.transport.start(self.nudge)
        self._thread.start()

    def nudge(self) -> None:
        """Wake the drain loop: new batches are in the spool, or the transport reconnected."""
        with self._cond:
            self._cond.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is empty or ``timeout_s`` passes; returns whether it emptied."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._cond:
                if not self._acked and not self._inflight and self.spool.depth() == 0:
                    return True
                self._cond.wait(0.05)
        return self.spool.depth() == 0

    def stop(self) -> None:
        """Stop publishing and disconnect; unacknowledged batches stay in the spool."""
        self._stop.set()
        self.nudge()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.transport.stop()
        self._remove_acked()

    def _done(self, spool_id: int, ok: bool) -> None:
        with self._cond:
            self._inflight.pop(spool_id, None)
            if ok:
                self._acked.append(spool_id)
                self.published += 1
            else:
                self.failed += 1
            self._cond.notify_all()

    def _remove_acked(self) -> None:
        with self._cond:
            acked, self._acked = self._acked, []
        if acked:
            self.spool.remove(acked)
            with self._cond:
                self._cond.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._remove_acked()
                if not self._publish_some():
                    with self._cond:
                        if not self._acked:
                            self._cond.wait(0.2)
            except Exception:  # the drain loop must survive a failing spool or transport; batches stay spooled
                log.exception("uplink drain step failed; retrying")
                self._stop.wait(1.0)

    def _online(self) -> bool:
        return self.transport.connected

    def _publish_some(self) -> bool:
        """Publish the next waiting batches in order; returns whether anything was published."""
        if not self._online():
            return False
        if self.failed != self._failures_seen:  # a refused publish is retried, but not in a tight loop
            self._failures_seen = self.failed
            self._stop.wait(1.0)
        with self._cond:
            expired = [i for i, at in self._inflight.items() if self._monotonic() - at > self.ack_timeout_s]
            for spool_id in expired:  # never answered: hand it over again (a late ack is still honoured)
                del self._inflight[spool_id]
            room = self.inflight_limit - len(self._inflight)
            busy = set(self._inflight) | set(self._acked)
        if room <= 0:
            return False
        waiting = [b for b in self.spool.peek(self.inflight_limit + len(busy)) if b.spool_id not in busy][:room]
        if not waiting:
            return False
        # only the oldest unacknowledged batches are ever in flight, so the backlog drains in order
        for batch in waiting:
            while (delay := max(self.bytes_bucket.wait_time(len(batch.payload)), self.publish_bucket.wait_time(1))) > 0:
                if self._stop.wait(delay):
                    return True
            if not self._online():
                return True
            self.bytes_bucket.take(len(batch.payload))
            self.publish_bucket.take(1)
            with self._cond:
                self._inflight[batch.spool_id] = self._monotonic()
            self.transport.publish(batch.topic, batch.payload, partial(self._done, batch.spool_id))
        return True
