"""Runs a blocking sensor source (Modbus polling) on its own thread, so a slow device never stalls the gateway."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from plantwatch.adapters.reading_queue import ReadingQueue
from plantwatch.contract.reading import Reading, SensorRef

log = logging.getLogger(__name__)


class ThreadedSource:
    """Polls ``inner`` every ``interval_s`` on a background thread; the gateway's poll only drains the queue."""

    def __init__(self, inner: Any, *, interval_s: float = 0.05, name: str = "source") -> None:
        self.inner = inner
        self.interval_s = interval_s
        self._queue = ReadingQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start polling in the background."""
        self._thread.start()

    def poll(self, now_ms: int) -> list[Reading]:
        """Readings the background thread collected since the last poll."""
        return self._queue.drain()

    def offline(self) -> list[SensorRef]:
        """The inner source's offline sensors."""
        probe = getattr(self.inner, "offline", None)
        return list(probe()) if probe is not None else []

    def sensors(self) -> list[SensorRef]:
        """The inner source's sensors."""
        known = getattr(self.inner, "sensors", None)
        return list(known()) if known is not None else []

    def read_once(self, timeout_s: float) -> list[Reading]:
        """A direct read of the inner source (the commissioning check needs no thread)."""
        return list(self.inner.poll(time.time_ns() // 1_000_000))

    def close(self) -> None:
        """Stop the thread, then close the inner source."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            closer()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._queue.extend(self.inner.poll(time.time_ns() // 1_000_000))
            except Exception:  # a source bug must not kill the thread: log and keep polling
                log.exception("polling %s failed", type(self.inner).__name__)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
