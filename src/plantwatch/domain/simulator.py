"""A simulated plant: lines of assets with temperature, vibration and pressure sensors, and scheduled faults.

Every value is a pure function of (seed, sensor, time): daily cycle, slow drift, noise, plus the effect of
any fault active at that time. So any period can be generated again, in real time for the local platform
or in bulk for training and evaluation, and the fault schedule is the ground truth for detection checks.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.contract.reading import KNOWN_SENSOR_TYPES, Reading, SensorRef
from plantwatch.domain.thresholds import Band

DAY_MS: Final = 86_400_000
WEEK_MS: Final = 7 * DAY_MS
SENSOR_TYPES: Final = ("temperature", "vibration", "pressure")


class FaultKind(StrEnum):
    """The fault kinds the simulator injects."""

    OVERHEATING = "overheating"
    BEARING_WEAR = "bearing_wear"
    PRESSURE_LEAK = "pressure_leak"


#: Which sensor type each fault shows up on first.
FAULT_SENSOR: Final[dict[FaultKind, str]] = {
    FaultKind.OVERHEATING: "temperature",
    FaultKind.BEARING_WEAR: "vibration",
    FaultKind.PRESSURE_LEAK: "pressure",
}

#: Operating limits of the simulated plant, as its engineers would configure them on the gateways.
SIMULATED_PLANT_LIMITS: Final[dict[str, Band]] = {
    "temperature": Band(low=35.0, high=75.0),
    "vibration": Band(high=60.0),
    "pressure": Band(low=100.0, high=180.0),
}


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """One injected fault episode on one asset, from ``start_ms`` (inclusive) to ``end_ms`` (exclusive)."""

    line: str
    asset: str
    kind: FaultKind
    start_ms: int
    end_ms: int

    @property
    def sensor_type(self) -> str:
        """The sensor type on which the fault shows."""
        return FAULT_SENSOR[self.kind]


class SimulationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Shape of the simulated plant and its fault schedule (times in seconds, relative to ``anchor_ms``)."""

    plant: str = "plant-1"
    lines: int = 3
    assets_per_line: int = 4
    seed: int = 7
    anchor_ms: int = 0
    sample_period_ms: int = 1000
    fault_after_s: float = 20.0
    fault_every_s: float = 300.0
    fault_duration_s: float = 60.0
    fault_stagger_s: float = 10.0
    fault_ramp_s: float = 15.0


_BASE: Final[dict[str, tuple[float, float, float, float]]] = {
    # type: (base level, spread between assets, daily amplitude, noise sigma)
    "temperature": (55.0, 4.0, 4.0, 0.4),
    "vibration": (24.0, 3.0, 2.0, 1.2),
    "pressure": (140.0, 6.0, 5.0, 1.5),
}
#: Peak change a fault causes on its sensor type once fully developed.
_FAULT_EFFECT: Final[dict[FaultKind, float]] = {
    FaultKind.OVERHEATING: 40.0,
    FaultKind.BEARING_WEAR: 110.0,
    FaultKind.PRESSURE_LEAK: -90.0,
}
_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _uniform(key: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    return ((_splitmix(key) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _gaussian(seed: int, sensor: int, ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Counter-based standard normal noise: the same (seed, sensor, tick) always gives the same value."""
    base = np.uint64((seed * 1_000_003 + sensor * 7919) & 0xFFFFFFFFFFFFFFFF)
    t = ticks.astype(np.uint64) * np.uint64(2)
    u1 = _uniform(t ^ base)
    u2 = _uniform((t + np.uint64(1)) ^ base)
    noise: npt.NDArray[np.float64] = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
    return noise


class PlantSimulator:
    """Deterministic signals for every sensor of a simulated plant, with a known fault schedule."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.sensors: list[SensorRef] = []
        for li in range(1, config.lines + 1):
            for ai in range(1, config.assets_per_line + 1):
                asset = f"line-{li}-asset-{ai}"
                for sensor_type in SENSOR_TYPES:
                    self.sensors.append(
                        SensorRef(
                            line=f"line-{li}",
                            asset=asset,
                            sensor_id=f"{asset}-{sensor_type[:4]}",
                            sensor_type=sensor_type,
                            unit=KNOWN_SENSOR_TYPES[sensor_type],
                        )
                    )
        self._index = {ref.sensor_id: i for i, ref in enumerate(self.sensors)}
        rng = np.random.default_rng(config.seed)
        self._offset = rng.uniform(-1.0, 1.0, len(self.sensors))
        self._phase = rng.uniform(0.0, 2 * math.pi, len(self.sensors))

    @property
    def lines(self) -> list[str]:
        """Line ids, in order."""
        return [f"line-{i}" for i in range(1, self.config.lines + 1)]

    def sensors_of(self, line: str) -> list[SensorRef]:
        """The sensors on one line."""
        return [ref for ref in self.sensors if ref.line == line]

    def faults_between(self, start_ms: int, end_ms: int) -> list[Fault]:
        """Fault episodes that overlap [start_ms, end_ms), ordered by start."""
        cfg = self.config
        every = int(cfg.fault_every_s * 1000)
        duration = int(cfg.fault_duration_s * 1000)
        first = cfg.anchor_ms + int(cfg.fault_after_s * 1000)
        kinds = list(FaultKind)
        out: list[Fault] = []
        for li, line in enumerate(self.lines):
            offset = first + int(li * cfg.fault_stagger_s * 1000)
            k0 = max(0, (start_ms - duration - offset) // every) if every > 0 else 0
            k = k0
            while True:
                fault_start = offset + k * every
                if fault_start >= end_ms:
                    break
                if fault_start + duration > start_ms:
                    asset = f"{line}-asset-{(k + li) % cfg.assets_per_line + 1}"
                    kind = kinds[(li + k) % len(kinds)]
                    out.append(
                        Fault(
                            line=line,
                            asset=asset,
                            kind=kind,
                            start_ms=fault_start,
                            end_ms=fault_start + duration,
                        )
                    )
                if every <= 0:
                    break
                k += 1
        return sorted(out, key=lambda f: (f.start_ms, f.line))

    def values(self, sensor_id: str, ts_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The sensor's values at the given times (epoch ms)."""
        i = self._index[sensor_id]
        ref = self.sensors[i]
        cfg = self.config
        base, spread, daily, sigma = _BASE[ref.sensor_type]
        t = ts_ms.astype(np.float64)
        level = base + spread * self._offset[i]
        cycle = daily * np.sin(2 * math.pi * t / DAY_MS + self._phase[i])
        drift = 0.3 * spread * np.sin(2 * math.pi * t / WEEK_MS + 2 * self._phase[i])
        noise = sigma * _gaussian(cfg.seed, i, ts_ms // cfg.sample_period_ms)
        out: npt.NDArray[np.float64] = level + cycle + drift + noise
        if len(ts_ms):
            for fault in self.faults_between(int(ts_ms.min()), int(ts_ms.max()) + 1):
                if fault.asset != ref.asset:
                    continue
                out += self._fault_effect(fault, ref.sensor_type, t)
        if ref.sensor_type == "vibration":
            out = np.abs(out)
        return out

    def _fault_effect(self, fault: Fault, sensor_type: str, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        active = (t >= fault.start_ms) & (t < fault.end_ms)
        progress = np.clip((t - fault.start_ms) / (self.config.fault_ramp_s * 1000), 0.0, 1.0)
        peak = _FAULT_EFFECT[fault.kind]
        if sensor_type == fault.sensor_type:
            return np.where(active, peak * progress, 0.0)
        if fault.kind is FaultKind.BEARING_WEAR and sensor_type == "temperature":
            return np.where(active, 6.0 * progress, 0.0)  # friction warms the bearing housing
        return np.zeros_like(t)

    def readings(self, line: str, ts_ms: int) -> list[Reading]:
        """One reading of every sensor on ``line`` at ``ts_ms``."""
        stamp = np.array([ts_ms], dtype=np.int64)
        return [
            ref.reading(
                plant=self.config.plant, ts_ms=ts_ms, value=round(float(self.values(ref.sensor_id, stamp)[0]), 3)
            )
            for ref in self.sensors_of(line)
        ]
