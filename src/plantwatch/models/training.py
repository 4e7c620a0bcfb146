"""Training an Isolation Forest on the same features the gateway computes (needs the ``ml`` extra)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.domain.features import FeatureSpec, bulk_features
from plantwatch.domain.simulator import PlantSimulator
from plantwatch.models.envelope import fit_envelope
from plantwatch.models.forest import ForestModel
from plantwatch.models.padded import FloatArray


class TrainingSet(msgspec.Struct, frozen=True, kw_only=True):
    """Feature rows of simulated assets, each with its asset and whether a fault was active (ground truth)."""

    rows: FloatArray
    faulty: npt.NDArray[np.bool_]
    assets: list[str]


def simulator_features(
    simulator: PlantSimulator, spec: FeatureSpec, *, start_ms: int, end_ms: int, assets: list[str] | None = None
) -> TrainingSet:
    """Feature rows for every asset (or ``assets``) over [start_ms, end_ms) at the simulator's sample period."""
    ts = np.arange(start_ms, end_ms, simulator.config.sample_period_ms, dtype=np.int64)
    by_asset: dict[str, dict[str, str]] = {}
    for ref in simulator.sensors:
        by_asset.setdefault(ref.asset, {})[ref.sensor_type] = ref.sensor_id
    chosen = assets if assets is not None else list(by_asset)
    faults = simulator.faults_between(start_ms, end_ms)
    blocks: list[FloatArray] = []
    flags: list[npt.NDArray[np.bool_]] = []
    names: list[str] = []
    row_ts = ts[spec.window - 1 :]
    for asset in chosen:
        sensors = by_asset[asset]
        values = {t: np.round(simulator.values(sensors[t], ts), 3) for t in spec.sensor_types}
        blocks.append(bulk_features(spec, ts, values))
        flag = np.zeros(len(row_ts), dtype=bool)
        for fault in faults:
            if fault.asset == asset:
                flag |= (row_ts >= fault.start_ms) & (row_ts < fault.end_ms)
        flags.append(flag)
        names.extend([asset] * len(row_ts))
    rows = np.concatenate(blocks) if blocks else np.empty((0, len(spec.names)))
    faulty = np.concatenate(flags) if flags else np.empty(0, dtype=bool)
    return TrainingSet(rows=rows, faulty=faulty, assets=names)


def train_forest(
    rows: FloatArray,
    spec: FeatureSpec,
    *,
    n_estimators: int = 100,
    max_samples: int | float | str = "auto",
    contamination: float | str = "auto",
    seed: int = 0,
    name: str = "iforest",
    version: str = "1",
    training: dict[str, Any] | None = None,
    envelope_statistics: Sequence[str] = (),
    envelope_margin: float = 1.0,
    envelope_tolerance: float = 0.0,
    envelope_votes: int = 1,
) -> ForestModel:
    """Fit scikit-learn's IsolationForest on feature rows and convert it, recording how it was trained.

    With ``envelope_statistics`` (such as ``("mean",)``) the model also gets the training rows' envelope
    over those statistics (:func:`~plantwatch.models.envelope.fit_envelope` with ``envelope_margin``,
    ``envelope_tolerance`` and ``envelope_votes``).
    """
    import sklearn  # training only: the gateway never imports it
    from sklearn.ensemble import IsolationForest

    if rows.ndim != 2 or rows.shape[1] != len(spec.names):
        raise ValueError(f"rows must have {len(spec.names)} columns ({', '.join(spec.names)}), got {rows.shape}")
    estimator = IsolationForest(
        n_estimators=n_estimators, max_samples=max_samples, contamination=contamination, random_state=seed
    ).fit(rows)
    metadata = {
        "trained_at_ms": int(time.time() * 1000),
        "rows": int(rows.shape[0]),
        "n_estimators": n_estimators,
        "max_samples": str(max_samples),
        "contamination": str(contamination),
        "seed": seed,
        "scikit_learn": sklearn.__version__,
        **(training or {}),
    }
    model = ForestModel.from_sklearn(estimator, name=name, version=version, feature_spec=spec, training=metadata)
    if not envelope_statistics:
        return model
    envelope = fit_envelope(
        rows,
        spec,
        statistics=envelope_statistics,
        margin=envelope_margin,
        tolerance=envelope_tolerance,
        votes=envelope_votes,
    )
    return ForestModel(model.trees, msgspec.structs.replace(model.info, envelope=envelope))


def train_simulated_plant(
    simulator: PlantSimulator,
    spec: FeatureSpec,
    *,
    hours: float = 2.0,
    n_estimators: int = 100,
    seed: int = 0,
    name: str = "iforest",
    version: str = "1",
) -> ForestModel:
    """A forest for the simulated plant: trained on ``hours`` of its fault-free windows from its anchor time.

    Its threshold is scikit-learn's default (``contamination="auto"``); the training metadata records the
    simulation, the period and how many windows were faulty (left out).
    """
    start = simulator.config.anchor_ms
    end = start + int(hours * 3_600_000)
    data = simulator_features(simulator, spec, start_ms=start, end_ms=end)
    return train_forest(
        data.rows[~data.faulty],
        spec,
        n_estimators=n_estimators,
        seed=seed,
        name=name,
        version=version,
        training={
            "source": "plantwatch simulator",
            "simulation": msgspec.to_builtins(simulator.config),
            "start_ms": start,
            "end_ms": end,
            "faulty_windows_left_out": int(data.faulty.sum()),
        },
    )
