"""A hand-over of readings from a source's background thread (or callbacks) to the gateway's poll."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from plantwatch.contract.reading import Reading


class ReadingQueue:
    """Readings put by one thread and drained by another (deque appends and pops are thread-safe)."""

    def __init__(self) -> None:
        self._readings: deque[Reading] = deque()

    def put(self, reading: Reading) -> None:
        """Hand over one reading."""
        self._readings.append(reading)

    def extend(self, readings: Iterable[Reading]) -> None:
        """Hand over readings in order."""
        self._readings.extend(readings)

    def drain(self) -> list[Reading]:
        """Every reading handed over since the last drain, oldest first."""
        out: list[Reading] = []
        while self._readings:
            out.append(self._readings.popleft())
        return out
