"""The training envelope: fitting, flagging, the artifact, and the gateway's model.envelope reason."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from plantwatch.domain.decision import ENVELOPE_REASON, MODEL_REASON, AnomalyDetector
from plantwatch.domain.features import FeatureSpec, bulk_features
from plantwatch.domain.simulator import PlantSimulator, SimulationConfig
from plantwatch.models import ForestModel
from plantwatch.models.envelope import Envelope, fit_envelope
from plantwatch.models.training import simulator_features, train_forest

from .ml_support import require_sklearn

START_MS = 1_790_000_000_000
SPEC = FeatureSpec(window=20)
CONFIG = SimulationConfig(lines=1, assets_per_line=2, anchor_ms=START_MS, fault_every_s=120, fault_duration_s=50)
TWO = FeatureSpec(sensor_types=("a", "b"), window=5, waveform_types=())


def _rows(n: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(TWO.names)))


def test_no_training_row_is_outside_and_one_shifted_mean_is() -> None:
    rows = _rows()
    envelope = fit_envelope(rows, TWO, statistics=("mean",))
    assert envelope.columns == (TWO.names.index("a.mean"), TWO.names.index("b.mean"))
    assert not envelope.outside(rows).any()
    shifted = rows[:3].copy()
    shifted[1, TWO.names.index("b.mean")] += 10 * envelope.scale[1] * max(envelope.threshold, 1.0)
    shifted[2, TWO.names.index("b.std")] += 1e6  # not a watched statistic
    assert envelope.outside(shifted).tolist() == [False, True, False]
    wider = fit_envelope(rows, TWO, statistics=("mean",), margin=2.0)
    assert wider.threshold == pytest.approx(2.0 * envelope.threshold)


def test_a_feature_constant_in_training_flags_any_change() -> None:
    rows = _rows()
    rows[:, TWO.names.index("a.mean")] = 3.0
    envelope = fit_envelope(rows, TWO, statistics=("mean",))
    moved = rows[:1].copy()
    moved[0, TWO.names.index("a.mean")] = 3.0 + 1e-9
    assert envelope.outside(moved).tolist() == [True]


def test_a_relative_tolerance_floors_only_the_level_statistics_scale() -> None:
    rows = _rows()
    rows[:, TWO.names.index("a.mean")] = 100.0 + 0.01 * rows[:, TWO.names.index("a.mean")]  # sigma 0.01 %
    statistics = ("latest", "mean", "std", "slope")
    plain = fit_envelope(rows, TWO, statistics=statistics)
    tolerant = fit_envelope(rows, TWO, statistics=statistics, tolerance=0.02)
    names = [TWO.names[c] for c in tolerant.columns]
    a_mean = names.index("a.mean")
    assert tolerant.scale[a_mean] == pytest.approx(2.0, rel=1e-4)  # 2 % of the level 100, not the 0.01 spread
    for i, name in enumerate(names):  # levels near 0 keep their spread; std and slope are never floored
        if name.endswith((".latest", ".mean")):
            assert tolerant.scale[i] == pytest.approx(max(plain.scale[i], 0.02 * abs(plain.center[i])))
        else:
            assert tolerant.scale[i] == plain.scale[i]
    moved = rows[:1].copy()
    moved[0, TWO.names.index("a.mean")] = 101.0  # 1 %: a hundred training sigmas, within the 2 % tolerance
    assert plain.outside(moved).tolist() == [True]
    assert tolerant.outside(moved).tolist() == [False]
    with pytest.raises(ValueError, match="fraction"):
        fit_envelope(rows, TWO, tolerance=1.5)


THREE = FeatureSpec(sensor_types=("a", "b", "c"), window=5, waveform_types=())


def test_with_two_votes_one_sensor_alone_is_not_enough_and_two_at_once_are() -> None:
    """GIVEN a 2oo3 envelope over mean and std, WHEN sensors move one, two or none at a time, THEN it votes."""
    rows = np.random.default_rng(4).normal(size=(300, len(THREE.names)))
    any_one = fit_envelope(rows, THREE, statistics=("mean", "std"))
    two = fit_envelope(rows, THREE, statistics=("mean", "std"), votes=2)
    names = [THREE.names[c] for c in two.columns]
    assert two.sensors == tuple(("a", "b", "c").index(n.split(".")[0]) for n in names) and two.votes == 2
    assert not two.outside(rows).any()  # margin 1.0: no training row is outside
    far = 100.0
    moved = np.repeat(rows[:1], 4, axis=0)
    moved[1, THREE.names.index("a.mean")] += far  # one sensor, one statistic
    moved[2, THREE.names.index("b.mean")] += far  # one sensor, both its statistics
    moved[2, THREE.names.index("b.std")] += far
    moved[3, THREE.names.index("a.mean")] += far  # two sensors, one statistic each
    moved[3, THREE.names.index("c.std")] += far
    assert any_one.outside(moved).tolist() == [False, True, True, True]
    assert two.outside(moved).tolist() == [False, False, False, True]
    # The score is the second-largest sensor deviation: row 3's smaller of a's and c's.
    deviation = np.abs(moved[3, list(two.columns)] - np.array(two.center)) / np.array(two.scale)
    per_sensor = [max(d for d, s in zip(deviation, two.sensors, strict=True) if s == k) for k in range(3)]
    assert two.score(moved[3:4])[0] == pytest.approx(sorted(per_sensor)[-2])
    # One vote scores as the envelope always has: the largest deviation over every column, bit for bit.
    assert any_one.sensors == () and any_one.votes == 1
    columns = list(any_one.columns)
    largest = (np.abs(moved[:, columns] - np.array(any_one.center)) / np.array(any_one.scale)).max(axis=1)
    assert any_one.score(moved).tobytes() == largest.tobytes()
    with pytest.raises(ValueError, match="votes must be between 1 and the 3 sensors it watches, got 4"):
        fit_envelope(rows, THREE, statistics=("mean",), votes=4)


def test_a_feature_without_a_value_casts_no_vote_whatever_the_votes() -> None:
    rows = np.random.default_rng(6).normal(size=(300, len(THREE.names)))
    far = np.repeat(rows[:1], 3, axis=0)
    far[:, THREE.names.index("b.mean")] += 100.0  # b is far out in every row
    far[0, THREE.names.index("a.mean")] = np.nan  # row 0: a has no value; b alone is out
    far[1, THREE.names.index("c.mean")] += 100.0  # row 1: b and c are out
    far[2, [THREE.names.index(f"{t}.mean") for t in "abc"]] = np.nan  # row 2: nothing has a value
    one = fit_envelope(rows, THREE, statistics=("mean",))
    two = fit_envelope(rows, THREE, statistics=("mean",), votes=2)
    assert one.outside(far).tolist() == [True, True, False]
    assert two.outside(far).tolist() == [False, True, False]
    assert np.isneginf(one.score(far[2:])[0]) and np.isneginf(two.score(far[2:])[0])


def test_a_voting_envelope_survives_the_artifact_and_a_one_vote_one_keeps_the_older_format(tmp_path: Path) -> None:
    require_sklearn()
    rows = np.random.default_rng(5).normal(size=(300, len(THREE.names)))
    voting = train_forest(rows, THREE, n_estimators=10, seed=3, envelope_statistics=("mean",), envelope_votes=2)
    voting.save(tmp_path / "voting.pwf")
    assert ForestModel.load(tmp_path / "voting.pwf").info.envelope == voting.info.envelope
    single = train_forest(rows, THREE, n_estimators=10, seed=3, envelope_statistics=("mean",))
    single.save(tmp_path / "single.pwf")
    with zipfile.ZipFile(tmp_path / "single.pwf") as zf:
        envelope = json.loads(zf.read("manifest.json"))["info"]["envelope"]
    assert sorted(envelope) == ["center", "columns", "scale", "threshold"]  # the format before votes existed


def test_row_by_row_scores_equal_the_batch_bit_for_bit() -> None:
    rows = _rows(seed=1)
    envelope = fit_envelope(rows[:200], TWO, statistics=("latest", "mean", "std", "slope"))
    batch = envelope.score(rows)
    single = np.concatenate([envelope.score(rows[i : i + 1]) for i in range(len(rows))])
    assert batch.tobytes() == single.tobytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": (), "center": (), "scale": (), "threshold": 1.0}, "non-empty"),
        ({"columns": (0,), "center": (0.0,), "scale": (0.0,), "threshold": 1.0}, "positive"),
        ({"columns": (0, 1), "center": (0.0,), "scale": (1.0,), "threshold": 1.0}, "equal length"),
        ({"columns": (0, 1), "center": (0.0, 0.0), "scale": (1.0, 1.0), "threshold": 1.0, "sensors": (0,)}, "every"),
        ({"columns": (0,), "center": (0.0,), "scale": (1.0,), "threshold": 1.0, "votes": 2}, "votes"),
    ],
)
def test_malformed_envelopes_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Envelope(**kwargs)
    with pytest.raises(ValueError, match="no feature"):
        fit_envelope(_rows(), TWO, statistics=("median",))


def test_the_artifact_keeps_the_envelope_and_stays_deterministic(tmp_path: Path) -> None:
    require_sklearn()
    rows = _rows()
    a = train_forest(rows, TWO, n_estimators=10, seed=3, envelope_statistics=("mean",), envelope_margin=1.5)
    b = train_forest(rows, TWO, n_estimators=10, seed=3, envelope_statistics=("mean",), envelope_margin=1.5)
    a.save(tmp_path / "a.pwf")
    b.save(tmp_path / "b.pwf")
    loaded = ForestModel.load(tmp_path / "a.pwf")
    assert loaded.info.envelope == a.info.envelope
    assert loaded.is_anomaly(rows * 50).tolist() == a.is_anomaly(rows * 50).tolist()
    plain = train_forest(rows, TWO, n_estimators=10, seed=3)
    plain.save(tmp_path / "plain.pwf")
    with zipfile.ZipFile(tmp_path / "plain.pwf") as zf:
        assert "envelope" not in json.loads(zf.read("manifest.json"))["info"]


def test_the_gateway_gives_model_envelope_exactly_where_bulk_rows_leave_the_envelope() -> None:
    """GIVEN a model with an envelope, WHEN a line is scored poll by poll, THEN the reasons match bulk verdicts."""
    require_sklearn()
    simulator = PlantSimulator(CONFIG)
    data = simulator_features(simulator, SPEC, start_ms=START_MS, end_ms=START_MS + 1_800_000)
    model = train_forest(data.rows[~data.faulty], SPEC, n_estimators=20, seed=1, envelope_statistics=("mean",))
    detector = AnomalyDetector(spec=SPEC, model=model)
    start = START_MS + 7_200_000
    stamps = [start + k * 1000 for k in range(400)]
    reasons: dict[str, list[tuple[str, ...]]] = {}
    values: dict[str, dict[str, list[float]]] = {}
    for stamp in stamps:
        for scored in detector.score_many(simulator.readings("line-1", stamp)):
            r = scored.reading
            values.setdefault(r.asset, {}).setdefault(r.sensor_type, []).append(r.value)
            if r.sensor_type == "vibration":
                reasons.setdefault(r.asset, []).append(scored.reasons)
    ts = np.array(stamps, dtype=np.int64)
    outside_seen = False
    for asset, series in values.items():
        rows = bulk_features(SPEC, ts, {t: np.array(v) for t, v in series.items()})
        _, forest, outside = model.verdicts(rows)
        got = reasons[asset][SPEC.window - 1 :]
        assert [MODEL_REASON in g for g in got] == forest.tolist()
        assert [ENVELOPE_REASON in g for g in got] == outside.tolist()
        outside_seen |= bool(outside.any())
    assert outside_seen  # the simulated faults push window means outside the envelope
