"""The simulated plant as a sensor source: every sample tick of one line's sensors, in real time."""

from __future__ import annotations

from plantwatch.contract.reading import Reading
from plantwatch.domain.simulator import PlantSimulator


class SimulatorSource:
    """Yields each sample tick of ``line`` once, from the first poll on (no backfill of earlier time)."""

    def __init__(self, simulator: PlantSimulator, line: str) -> None:
        self.simulator = simulator
        self.line = line
        self.period_ms = simulator.config.sample_period_ms
        self._next_tick: int | None = None

    def poll(self, now_ms: int) -> list[Reading]:
        """Readings of every tick up to ``now_ms`` not returned before."""
        if self._next_tick is None:
            self._next_tick = now_ms - now_ms % self.period_ms
        out: list[Reading] = []
        while self._next_tick <= now_ms:
            out.extend(self.simulator.readings(self.line, self._next_tick))
            self._next_tick += self.period_ms
        return out
