"""The anomaly decision: thresholds, configured limits and the forest, each flag with its reasons."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from plantwatch.contract.reading import Reading
from plantwatch.domain.decision import (
    MODEL_REASON,
    SCORE_DECIMALS,
    AnomalyDetector,
    ModelMismatchError,
    check_model,
    load_model_for,
    trained_for_line,
)
from plantwatch.domain.features import FeatureSpec, bulk_features
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.models import ForestModel, ModelIntegrityError
from plantwatch.models.training import simulator_features, train_forest, train_simulated_plant

from .ml_support import require_sklearn

START_MS = 1_790_000_000_000
SPEC = FeatureSpec(window=20)
CONFIG = SimulationConfig(lines=1, assets_per_line=3, anchor_ms=START_MS, fault_every_s=120, fault_duration_s=50)


@pytest.fixture(scope="module")
def model() -> ForestModel:
    require_sklearn()
    simulator = PlantSimulator(CONFIG)
    data = simulator_features(simulator, SPEC, start_ms=START_MS, end_ms=START_MS + 3_600_000)
    return train_forest(data.rows[~data.faulty], SPEC, n_estimators=50, seed=1, version="3")


def _reading(sensor_type: str, value: float) -> Reading:
    return Reading(
        plant="plant-1",
        line="line-1",
        asset="line-1-asset-1",
        sensor_id=f"line-1-asset-1-{sensor_type[:4]}",
        sensor_type=sensor_type,
        unit="u",
        ts_ms=START_MS,
        value=value,
    )


def test_without_a_model_the_decision_is_the_threshold_scorer() -> None:
    scorer = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
    detector = AnomalyDetector(spec=SPEC, thresholds=scorer)
    readings = PlantSimulator(CONFIG).readings("line-1", START_MS + 40_000)
    expected = [msgspec.structs.replace(s, score=round(s.score, SCORE_DECIMALS)) for s in scorer.score_many(readings)]
    assert detector.score_many(readings) == expected
    assert detector.model_ref == THRESHOLD_MODEL


@pytest.mark.parametrize(
    ("sensor_type", "value", "reasons"),
    [
        ("temperature", 90.0, ("threshold.high", "limit.high")),
        ("temperature", 30.0, ("limit.low",)),
        ("temperature", 5.0, ("threshold.low", "limit.low")),
        ("pressure", 190.0, ("limit.high",)),
        ("vibration", 50.0, ()),
    ],
)
def test_threshold_and_limit_reasons(sensor_type: str, value: float, reasons: tuple[str, ...]) -> None:
    detector = AnomalyDetector(spec=SPEC, thresholds=ThresholdScorer(limits=SIMULATED_PLANT_LIMITS))
    scored = detector.score(_reading(sensor_type, value))
    assert scored.reasons == reasons
    assert scored.anomaly == bool(reasons)


def test_model_reason_is_given_exactly_when_the_assets_window_scores_above_the_threshold(model: ForestModel) -> None:
    """GIVEN a line through fault episodes, WHEN each poll is scored, THEN model.iforest follows the forest."""
    simulator = PlantSimulator(CONFIG)
    detector = AnomalyDetector(spec=SPEC, thresholds=ThresholdScorer(limits=SIMULATED_PLANT_LIMITS), model=model)
    start = START_MS + 7_200_000  # a period the model did not train on
    stamps = [start + k * 1000 for k in range(600)]
    flagged: dict[str, list[bool]] = {}
    values: dict[str, dict[str, list[float]]] = {}
    for stamp in stamps:
        for scored in detector.score_many(simulator.readings("line-1", stamp)):
            r = scored.reading
            values.setdefault(r.asset, {}).setdefault(r.sensor_type, []).append(r.value)
            flagged.setdefault(r.sensor_id, []).append(MODEL_REASON in scored.reasons)
            assert scored.anomaly == bool(scored.reasons)
            assert 0.0 <= scored.score <= 1.0
            assert scored.score == round(scored.score, SCORE_DECIMALS)
    faults = simulator.faults_between(start, stamps[-1] + 1)
    ts = np.array(stamps, dtype=np.int64)
    in_fault_flags, normal_flags = [], []
    for asset, series in values.items():
        rows = bulk_features(SPEC, ts, {t: np.array(v) for t, v in series.items()})
        expected = model.anomaly_score(rows) > model.info.threshold
        for sensor_type in SPEC.sensor_types:
            got = flagged[f"{asset}-{sensor_type[:4]}"]
            assert not any(got[: SPEC.window - 1])  # no verdict before the windows are full
            assert got[SPEC.window - 1 :] == expected.tolist()
        during = np.zeros(len(ts), dtype=bool)
        for fault in faults:
            if fault.asset == asset:
                during |= (ts >= fault.start_ms + 20_000) & (ts < fault.end_ms)  # once the fault has developed
        in_fault_flags += np.asarray(flagged[f"{asset}-vibr"])[during].tolist()
        normal_flags += np.asarray(flagged[f"{asset}-vibr"])[~during].tolist()
    assert in_fault_flags
    assert np.mean(in_fault_flags) > 0.8
    assert np.mean(normal_flags) < 0.2
    assert detector.model_ref.version == "3"


def test_a_model_for_other_features_is_refused_and_the_old_one_kept(model: ForestModel, tmp_path: Path) -> None:
    detector = AnomalyDetector(spec=SPEC, model=model)
    other_spec = FeatureSpec(window=30)
    other = ForestModel(model.trees, model.info.__class__(**{**_fields(model), "feature_spec": other_spec}))
    with pytest.raises(ModelMismatchError, match="retrain the model or change the gateway's feature configuration"):
        detector.swap_model(other)
    assert detector.model is model
    with pytest.raises(ModelMismatchError):
        AnomalyDetector(spec=other_spec, model=model)
    path = tmp_path / "m.pwf"
    model.save(path)
    assert load_model_for(path, SPEC).info == model.info
    with pytest.raises(ModelMismatchError, match="window 20"):
        load_model_for(path, other_spec)
    unspecified = ForestModel(model.trees, model.info.__class__(**{**_fields(model), "feature_spec": None}))
    with pytest.raises(ModelMismatchError, match="no feature specification"):
        check_model(unspecified, SPEC)


def test_swapping_in_a_matching_model_changes_what_batches_record(model: ForestModel) -> None:
    detector = AnomalyDetector(spec=SPEC)
    detector.swap_model(model)
    assert detector.model is model
    assert detector.model_ref == model.ref


def test_loading_a_bad_artifact_keeps_the_current_model(model: ForestModel, tmp_path: Path) -> None:
    """GIVEN a gateway scoring with a model, WHEN a corrupt or foreign artifact arrives, THEN it keeps scoring."""
    detector = AnomalyDetector(spec=SPEC, model=model)
    good, corrupt = tmp_path / "good.pwf", tmp_path / "corrupt.pwf"
    digest = model.save(good)
    corrupt.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ModelIntegrityError):
        detector.load_model(corrupt)
    with pytest.raises(ModelIntegrityError, match="expects"):
        detector.load_model(good, sha256="f" * 64)
    assert detector.model is model
    loaded = detector.load_model(good, sha256=digest)
    assert detector.model is loaded
    assert loaded.info == model.info


def _fields(model: ForestModel) -> dict:
    return {name: getattr(model.info, name) for name in model.info.__struct_fields__}


def test_a_simulated_plant_model_round_trips_and_fits_the_gateway(tmp_path: Path) -> None:
    require_sklearn()
    simulator = PlantSimulator(CONFIG)
    model = train_simulated_plant(simulator, SPEC, hours=0.25, n_estimators=10, seed=2, version="9")
    path = tmp_path / "sim.pwf"
    model.save(path)
    loaded = load_model_for(path, SPEC)
    assert loaded.info.training["source"] == "plantwatch simulator"
    assert loaded.info.training["end_ms"] - loaded.info.training["start_ms"] == 900_000
    assert loaded.info.training["rows"] > 0
    assert loaded.info.version == "9"


@pytest.mark.parametrize("value", [-1e9, 9.999, 10.0, 34.999, 35.0, 55.0, 75.0, 75.001, 80.0, 80.5, float("nan")])
def test_the_in_band_fast_path_agrees_with_the_band_arithmetic(value: float) -> None:
    scorer = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
    scored = scorer.score(_reading("temperature", value))
    bands = [scorer.thresholds["temperature"], scorer.limits["temperature"]]
    assert scored.anomaly == any(band.excess(value) > 0 for band in bands)
    assert scored.anomaly == (not all(band.contains(value) for band in bands) and not math.isnan(value))


def test_a_line_model_scoring_another_line_is_named_once_and_scores_as_before(
    model: ForestModel, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN line-1's model on a gateway that also reads line-2, THEN a warning names line-2 once per model
    version, and every verdict (and drift score) is what the same forest without a recorded line gives."""
    two_lines = msgspec.structs.replace(CONFIG, lines=2)
    training = {**model.info.training, "scope": "line"}
    scoped = ForestModel(model.trees, msgspec.structs.replace(model.info, name="acme.north.line-1", training=training))
    assert trained_for_line(scoped, "line-1") and not trained_for_line(scoped, "line-2")
    assert trained_for_line(model, "line-2")  # no recorded scope: any line
    per_class = msgspec.structs.replace(model.info, training={**training, "scope": "asset_class"})
    classes = ForestModel(model.trees, per_class)
    assert trained_for_line(classes, "line-2")
    any_line, line_1 = AnomalyDetector(spec=SPEC, model=model), AnomalyDetector(spec=SPEC, model=scoped)
    for detector in (any_line, line_1):
        detector.take_model_scores()  # start keeping drift scores
    simulator = PlantSimulator(two_lines)
    start = START_MS + 7_200_000
    with caplog.at_level(logging.WARNING, logger="plantwatch.domain.decision"):
        for k in range(200):
            poll = simulator.readings("line-1", start + k * 1000) + simulator.readings("line-2", start + k * 1000)
            assert line_1.score_many(poll) == any_line.score_many(poll)
    drift = [[entry for _, kept in d.take_model_scores() for entry in kept] for d in (any_line, line_1)]
    assert drift[0] == drift[1] and {line for line, _, _ in drift[1]} == {"line-1", "line-2"}
    warned = [r.getMessage() for r in caplog.records if "trained for another line" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith("model acme.north.line-1 3 was trained for another line and scores line-2's")
