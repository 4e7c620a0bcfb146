"""The simulated plant as a sensor source: every sample tick of one line's sensors, in real time."""

from __future__ import annotations

import numpy as np

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
        if self._next_tick > now_ms:
            return []
        # every tick due at once (one vectorised call per sensor): the same readings as tick by tick
        ticks = np.arange(self._next_tick, now_ms + 1, self.period_ms, dtype=np.int64)
        self._next_tick = int(ticks[-1]) + self.period_ms
        refs = self.simulator.sensors_of(self.line)
        values = [self.simulator.values(ref.sensor_id, ticks).tolist() for ref in refs]
        plant = self.simulator.config.plant
        return [
            ref.reading(plant=plant, ts_ms=ts, value=round(column[k], 3))
            for k, ts in enumerate(ticks.tolist())
            for ref, column in zip(refs, values, strict=True)
        ]
