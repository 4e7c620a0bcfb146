"""Cost of the full anomaly decision (features + forest + thresholds) against thresholds alone, same run.

Run: ``python benchmarks/decision.py``. Not a target of its own: it tells the gateway pipeline what the
decision costs per poll. 12 sensors (4 assets) at 1 Hz; polls of 12 readings (one tick) and of 1200.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.features import FeatureSpec
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import ThresholdScorer
from plantwatch.models.training import train_simulated_plant

START_MS = 1_790_000_000_000


def _rate(score_many: Callable[[Sequence[Reading]], list[ScoredReading]], polls: list[list[Reading]]) -> float:
    count = sum(len(p) for p in polls)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for poll in polls:
            score_many(poll)
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    """Train a forest on the simulator, then time both scorers over the same polls."""
    simulator = PlantSimulator(SimulationConfig(lines=1, assets_per_line=4, anchor_ms=START_MS))
    spec = FeatureSpec(window=60)
    model = train_simulated_plant(simulator, spec, hours=1.0, seed=1)
    readings: list[Reading] = []
    for k in range(3600):
        readings += simulator.readings("line-1", START_MS + 3_600_000 + k * 1000)
    print(f"{'poll size':>10} | {'thresholds only':>16} | {'full decision':>14} | {'cost ratio':>10}")
    for size in (12, 1200):
        polls = [readings[i : i + size] for i in range(0, len(readings), size)]
        thresholds = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
        baseline = _rate(thresholds.score_many, polls)
        detector = AnomalyDetector(spec=spec, thresholds=thresholds, model=model)
        full = _rate(detector.score_many, polls)
        print(f"{size:>10} | {baseline:>12,.0f} r/s | {full:>10,.0f} r/s | {baseline / full:>9.1f}x")


if __name__ == "__main__":
    main()
