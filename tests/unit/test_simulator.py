"""The simulated plant: deterministic signals, and faults that show exactly inside their known windows."""

from __future__ import annotations

import numpy as np
import pytest

from plantwatch.domain.simulator import (
    DAY_MS,
    FAULT_SENSOR,
    SIMULATED_PLANT_LIMITS,
    FaultKind,
    PlantSimulator,
    SimulationConfig,
)
from plantwatch.domain.thresholds import ThresholdScorer

ANCHOR = 1_764_000_000_000
CONFIG = SimulationConfig(anchor_ms=ANCHOR, fault_after_s=60, fault_every_s=3600, fault_duration_s=120)


@pytest.fixture(scope="module")
def sim() -> PlantSimulator:
    return PlantSimulator(CONFIG)


def test_plant_shape(sim: PlantSimulator) -> None:
    assert sim.lines == ["line-1", "line-2", "line-3"]
    assert len(sim.sensors) == 3 * 4 * 3
    assert {r.sensor_type for r in sim.sensors_of("line-2")} == {"temperature", "vibration", "pressure"}


def test_values_are_a_pure_function_of_time(sim: PlantSimulator) -> None:
    ts = np.arange(ANCHOR, ANCHOR + 600_000, 1000, dtype=np.int64)
    sensor = sim.sensors[5].sensor_id
    again = PlantSimulator(CONFIG).values(sensor, ts)
    assert np.array_equal(sim.values(sensor, ts), again)
    assert np.array_equal(sim.values(sensor, ts[100:101]), again[100:101])
    assert np.std(np.diff(again)) > 0  # noisy, not constant


def test_noise_is_standard_normal_in_distribution(sim: PlantSimulator) -> None:
    ts = np.arange(ANCHOR + 2 * DAY_MS, ANCHOR + 2 * DAY_MS + 200_000_000, 1000, dtype=np.int64)
    values = sim.values(sim.sensors[0].sensor_id, ts)
    residual = np.diff(values) / np.sqrt(2)  # differences remove the slow cycle and drift
    assert abs(float(np.mean(residual))) < 0.02
    assert 0.35 < float(np.std(residual)) < 0.45  # temperature noise sigma is 0.4


def test_each_line_gets_its_own_fault_kind_in_turn(sim: PlantSimulator) -> None:
    faults = sim.faults_between(ANCHOR, ANCHOR + 2 * 3600_000)
    first = {f.line: f for f in faults[:3]}
    assert {line: f.kind for line, f in first.items()} == {
        "line-1": FaultKind.OVERHEATING,
        "line-2": FaultKind.BEARING_WEAR,
        "line-3": FaultKind.PRESSURE_LEAK,
    }
    assert first["line-1"].start_ms == ANCHOR + 60_000
    assert all(f.end_ms - f.start_ms == 120_000 for f in faults)
    assert sim.faults_between(ANCHOR + 60_500, ANCHOR + 61_000)[0] == first["line-1"]


def test_healthy_day_stays_inside_limits_and_every_fault_leaves_them() -> None:
    """A whole simulated day: no flag outside fault windows, every fault flagged within its ramp."""
    sim = PlantSimulator(
        SimulationConfig(anchor_ms=ANCHOR, fault_after_s=600, fault_every_s=7200, fault_duration_s=300)
    )
    scorer = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
    ts = np.arange(ANCHOR, ANCHOR + DAY_MS, 5000, dtype=np.int64)
    faults = sim.faults_between(ANCHOR, ANCHOR + DAY_MS)
    assert len(faults) >= 3 * 11
    for ref in sim.sensors:
        values = sim.values(ref.sensor_id, ts)
        low, high = SIMULATED_PLANT_LIMITS[ref.sensor_type].low, SIMULATED_PLANT_LIMITS[ref.sensor_type].high
        flagged = ((values < low) if low is not None else False) | ((values > high) if high is not None else False)
        own = [f for f in faults if f.asset == ref.asset and FAULT_SENSOR[f.kind] == ref.sensor_type]
        in_fault = np.zeros_like(flagged)
        for fault in own:
            window = (ts >= fault.start_ms) & (ts < fault.end_ms)
            in_fault |= window
            first = ts[window & flagged]
            assert len(first), f"{fault} never left the limits"
            assert first[0] - fault.start_ms <= 15_000
        assert not np.any(flagged & ~in_fault), f"{ref.sensor_id} flagged outside its faults"
    assert scorer.score(sim.readings("line-1", ANCHOR)[0]).anomaly is False
