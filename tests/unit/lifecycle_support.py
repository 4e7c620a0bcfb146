"""Small, fast settings for the model-lifecycle tests (tiny forests, short simulated periods)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.contract.batch import ModelRef, ScoredBatch
from plantwatch.contract.reading import Reading
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import ThresholdScorer
from plantwatch.models.pipeline import Periods
from plantwatch.models.trainer import TrainConfig

SIM = SimulationConfig(lines=2, assets_per_line=2, seed=11)
TRAIN = TrainConfig(n_estimators=100, max_samples=512, window=10, stride=3, seed=3)
#: A day of training segments (5 min every hour: the whole daily cycle), then 2 h validation and 2 h test.
MODEL = ModelRef(name="original-thresholds", version="1")
PERIODS = Periods(train_days=1.0, train_segment_s=300, train_every_s=3600, validation_days=1 / 12, test_days=1 / 12)


def archive_simulated_readings(root: Path, sim: SimulationConfig, start_ms: int, end_ms: int) -> int:
    """Score the simulator's readings with the plant's thresholds and archive them as the stream processor
    does (FilesystemArchive, one batch per line per second); returns how many readings."""
    simulator = PlantSimulator(sim)
    scorer = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
    archive = FilesystemArchive(root)
    ts = np.arange(start_ms, end_ms, sim.sample_period_ms, dtype=np.int64)
    count = 0
    for line in simulator.lines:
        refs = simulator.sensors_of(line)
        values = {ref.sensor_id: np.round(simulator.values(ref.sensor_id, ts), 3) for ref in refs}
        batches = []
        for k, t in enumerate(ts.tolist()):
            readings = tuple(
                scorer.score(
                    Reading(
                        plant=sim.plant,
                        line=ref.line,
                        asset=ref.asset,
                        sensor_id=ref.sensor_id,
                        sensor_type=ref.sensor_type,
                        unit=ref.unit,
                        ts_ms=t,
                        value=float(values[ref.sensor_id][k]),
                    )
                )
                for ref in refs
            )
            batches.append(
                ScoredBatch(
                    schema_version=1, gateway_id=f"gw-{line}", seq=k, plant=sim.plant, model=MODEL, readings=readings
                )
            )
            count += len(readings)
        archive.put_batches(batches)
    return count


#: Labelled periods for models trained on the first archived hour: the same hour of the next day (daily phase).
ARCHIVE_PERIODS = Periods(train_days=1.0, validation_days=1 / 48, test_days=1 / 48)


class ShiftedPlant(PlantSimulator):
    """The simulated plant with one line's pressure operating point moved by ``shift`` from ``from_ms`` on."""

    def __init__(self, config: SimulationConfig, *, line: str, shift: float, from_ms: int) -> None:
        super().__init__(config)
        self.line, self.shift, self.from_ms = line, shift, from_ms

    def values(self, sensor_id: str, ts_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        out = super().values(sensor_id, ts_ms)
        ref = self.sensors[self._index[sensor_id]]
        if ref.line == self.line and ref.sensor_type == "pressure":
            out = out + np.where(ts_ms >= self.from_ms, self.shift, 0.0)
        return out
