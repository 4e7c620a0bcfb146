"""Training and evaluation on the simulator: determinism, debounced alerts, targets, metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import numpy as np
import pytest

from plantwatch.contract import ScoredReading
from plantwatch.domain.alerts import AlertEngine
from plantwatch.domain.simulator import PlantSimulator
from plantwatch.models import ForestModel
from plantwatch.models.evaluation import AlertPolicy, alert_runs, evaluate, roc_auc, score_assets
from plantwatch.models.pipeline import (
    Periods,
    evaluation_sets,
    simulator_training_assets,
    tail_ms,
    train_on_simulator,
)
from plantwatch.models.trainer import TrainConfig, group_assets, train_models
from tests.helpers import reading
from tests.unit.lifecycle_support import PERIODS, SIM, TRAIN
from tests.unit.ml_support import require_sklearn


@pytest.fixture(scope="module")
def outcome():  # type: ignore[no-untyped-def]
    require_sklearn()
    return train_on_simulator(SIM, TRAIN, PERIODS)


def test_same_data_and_seed_give_byte_identical_artifacts(tmp_path: Path) -> None:
    require_sklearn()
    assets = simulator_training_assets(SIM, TRAIN, PERIODS)
    first = train_models(assets, TRAIN, version="1", source={"kind": "test"})
    again = train_models(simulator_training_assets(SIM, TRAIN, PERIODS), TRAIN, version="1", source={"kind": "test"})
    other_seed = train_models(assets, msgspec.structs.replace(TRAIN, seed=4), version="1", source={"kind": "test"})
    for name in first:
        a, b, c = tmp_path / f"{name}.a", tmp_path / f"{name}.b", tmp_path / f"{name}.c"
        first[name].save(a)
        again[name].save(b)
        other_seed[name].save(c)
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_one_model_per_line_or_per_asset_class() -> None:
    assets = simulator_training_assets(SIM, TRAIN, PERIODS)
    assert sorted(group_assets(assets, TRAIN)) == ["plant-1.line-1", "plant-1.line-2"]
    by_class = msgspec.structs.replace(
        TRAIN, scope="asset_class", asset_classes={"line-1-asset-1": "pump", "line-2-asset-1": "pump"}
    )
    groups = group_assets(assets, by_class)
    assert sorted(groups) == ["plant-1.default", "plant-1.pump"]
    assert {a.asset for a in groups["plant-1.pump"]} == {"line-1-asset-1", "line-2-asset-1"}


def test_training_records_window_rows_and_reference_histogram(outcome) -> None:  # type: ignore[no-untyped-def]
    model = outcome.models["plant-1.line-1"]
    training = model.info.training
    assert training["window"]["start_ms"] < training["window"]["end_ms"]
    assert 0 < training["healthy_rows_used"] <= training["feature_rows"]
    assert sum(training["score_histogram"]) == pytest.approx(1.0)
    assert model.info.threshold == outcome.policy.threshold
    assert training["alert_policy"]["raise_after"] == outcome.policy.raise_after


def test_simulator_targets_hold_on_the_test_period(outcome) -> None:  # type: ignore[no-untyped-def]
    alerts = outcome.test.alerts
    assert alerts.episodes >= 20
    assert outcome.test.targets_met == {
        "every_episode_detected": True,
        "median_delay_under_60s": True,
        "false_alerts_at_most_1_per_line_day": True,
    }
    # Test and validation are different periods; the policy was chosen on validation only.
    assert outcome.test.period["start_ms"] >= outcome.validation.period["end_ms"] - 1


def test_the_forest_alone_meets_the_targets_without_thresholds_or_limits(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.forest_only.policy.rules is False
    assert outcome.forest_only.readings.roc_auc is not None
    assert outcome.forest_only.readings.roc_auc > 0.85
    assert all(outcome.forest_only.targets_met.values()), outcome.forest_only.alerts


def test_debounce_raises_after_n_and_clears_after_m() -> None:
    flags = np.array([1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1], dtype=bool)
    # raised at the 3rd consecutive anomalous window (5); gaps under 5 keep it; the 5th normal window (12) clears
    assert alert_runs(flags, 3, 5) == [(5, 12), (15, None)]
    assert alert_runs(flags, 1, 1) == [(0, 2), (3, 6), (7, 8), (13, None)]
    assert alert_runs(np.zeros(10, dtype=bool), 1, 1) == []


def test_roc_auc_matches_scikit_learn() -> None:
    require_sklearn()
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    labels = rng.random(500) < 0.3
    scores = np.round(rng.normal(size=500) + labels, 1)  # ties on purpose
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_a_lower_threshold_raises_false_alerts_on_healthy_time(outcome) -> None:  # type: ignore[no-untyped-def]
    validation, _ = evaluation_sets(SIM, TRAIN, PERIODS)
    scored = score_assets(outcome.models, validation.assets, TRAIN)
    loose = evaluate(scored, validation.faults, AlertPolicy(threshold=0.3, rules=False), tail_ms=tail_ms(SIM, TRAIN))
    assert loose.alerts.max_false_alerts_per_line_day > 1.0
    assert not loose.targets_met["false_alerts_at_most_1_per_line_day"]


def test_the_committed_baseline_scores_the_simulated_plant() -> None:
    root = Path(__file__).resolve().parents[2] / "models"
    paths = sorted(root.glob("plant-1.line-*.pwf"))
    assert len(paths) == 3
    sim = PlantSimulator(msgspec.structs.replace(SIM, lines=3, assets_per_line=4, seed=7))
    spec = TrainConfig().spec
    for path in paths:
        model = ForestModel.load(path)
        # registry versions count 1, 2, ...: batches and drift references tell the baseline from a first champion
        assert model.ref.version == "baseline"
        assert model.feature_spec == spec
        assert all(model.info.training["test"]["targets_met"].values())
        assert all(model.info.training["test_forest_only"]["targets_met"].values())
        line = path.stem.split(".")[1]
        ids = {r.sensor_type: r.sensor_id for r in sim.sensors_of(line) if r.asset.endswith("asset-1")}
        ts = np.arange(0, 120_000, 1000, dtype=np.int64)
        from plantwatch.domain.features import bulk_features

        rows = bulk_features(spec, ts, {t: np.round(sim.values(i, ts), 3) for t, i in ids.items()})
        assert model.anomaly_score(rows).shape == (len(ts) - spec.window + 1,)


def test_an_envelope_in_the_config_reaches_the_model_and_its_evaluation() -> None:
    require_sklearn()
    assets = simulator_training_assets(SIM, TRAIN, PERIODS)
    plain = train_models(assets, TRAIN, version="1", source={"kind": "test"})
    # A margin far under 1 puts part of the healthy training rows themselves outside the envelope.
    tight = msgspec.structs.replace(TRAIN, envelope_statistics=("mean",), envelope_margin=0.5)
    enveloped = train_models(assets, tight, version="1", source={"kind": "test"})
    name = "plant-1.line-1"
    assert plain[name].info.envelope is None
    envelope = enveloped[name].info.envelope
    assert envelope is not None and len(envelope.columns) == len(TRAIN.sensor_types)
    # Same trees: the envelope adds a flag, it does not change the forest.
    assert np.array_equal(plain[name].anomaly_score(assets[0].rows), enveloped[name].anomaly_score(assets[0].rows))
    never = AlertPolicy(threshold=2.0, rules=False, raise_after=1, clear_after=1)  # the forest never flags
    _, test = evaluation_sets(SIM, TRAIN, PERIODS)
    tail = tail_ms(SIM, TRAIN)
    quiet = evaluate(score_assets(plain, test.assets, TRAIN), test.faults, never, tail_ms=tail)
    loud = evaluate(score_assets(enveloped, test.assets, tight), test.faults, never, tail_ms=tail)
    assert quiet.alerts.detected == 0 and quiet.alerts.false_alerts == 0
    assert loud.alerts.detected + loud.alerts.false_alerts > 0
    assert loud.readings.recall > quiet.readings.recall


def test_an_envelope_trained_on_less_than_most_of_a_day_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    require_sklearn()
    enveloped = msgspec.structs.replace(TRAIN, envelope_statistics=("mean",))
    an_hour = Periods(train_days=1 / 24, train_segment_s=900, train_every_s=900, validation_days=0, test_days=0)
    with caplog.at_level(logging.WARNING, logger="plantwatch.models.trainer"):
        train_models(simulator_training_assets(SIM, TRAIN, an_hour), TRAIN, version="1", source={"kind": "test"})
        assert not caplog.records  # no envelope, nothing to warn about
        train_models(simulator_training_assets(SIM, TRAIN, PERIODS), enveloped, version="1", source={"kind": "test"})
        assert not caplog.records  # a day of hourly segments spans the daily cycle
        train_models(simulator_training_assets(SIM, TRAIN, an_hour), enveloped, version="1", source={"kind": "test"})
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("training envelope fitted on 1.0 h" in m for m in warned)


def test_plantwatch_train_envelope_arguments_reach_the_trained_envelope() -> None:
    """GIVEN ``plantwatch train --envelope mean,std --envelope-votes 2 ...``, THEN the config and model carry them."""
    require_sklearn()
    from plantwatch.cli import build_parser
    from plantwatch.cli_train import train_config

    argv = ["train", "--envelope", "mean,std", "--envelope-margin", "1.5", "--envelope-tolerance", "0.02"]
    config = train_config(build_parser().parse_args([*argv, "--envelope-votes", "2"]))
    assert (config.envelope_statistics, config.envelope_margin) == (("mean", "std"), 1.5)
    assert (config.envelope_tolerance, config.envelope_votes) == (0.02, 2)
    assert train_config(build_parser().parse_args(["train"])) == TrainConfig()
    config = msgspec.structs.replace(config, sensor_types=TRAIN.sensor_types, window=TRAIN.window)
    assets = simulator_training_assets(SIM, config, PERIODS)
    model = train_models(assets, config, version="1", source={"kind": "test"})["plant-1.line-1"]
    envelope = model.info.envelope
    assert envelope is not None and envelope.votes == 2
    assert len(set(envelope.sensors)) == len(TRAIN.sensor_types)  # every sensor type votes


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"envelope_statistics": ("mean",), "envelope_votes": 0}, "between 1 and the 3 sensors it watches, got 0"),
        ({"envelope_statistics": ("mean",), "envelope_votes": 4}, "between 1 and the 3 sensors it watches, got 4"),
        (  # only vibration has rms: one sensor can't cast two votes
            {"envelope_statistics": ("rms",), "waveform_types": ("vibration",), "envelope_votes": 2},
            "between 1 and the 1 sensors it watches, got 2",
        ),
        ({"envelope_statistics": ("median",)}, r"no feature of .* has a statistic among \[.median.\]"),
        ({"envelope_votes": 2}, "need an envelope"),
        ({"envelope_tolerance": 0.02}, "need an envelope"),
        ({"envelope_statistics": ("mean",), "envelope_tolerance": 1.0}, r"\[0, 1\)"),
        ({"envelope_statistics": ("mean",), "envelope_margin": 0.0}, "positive"),
        ({"envelope_statistics": ("mean",), "envelope_margin": float("nan")}, "positive"),
    ],
)
def test_envelope_settings_that_cannot_work_are_refused_before_any_training(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**change)
    TrainConfig(envelope_margin=0.0)  # without an envelope its margin is unused, as it always was


def test_plantwatch_train_names_a_setting_that_cannot_work_and_trains_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from plantwatch.cli import main

    assert main(["train", "--envelope-votes", "2", "--out", str(tmp_path)]) == 2
    assert "envelope_votes and envelope_tolerance need an envelope" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_alert_runs_raises_and_clears_where_the_gateways_alert_engine_does() -> None:
    rng = np.random.default_rng(5)
    for _ in range(500):  # random flag runs, and N and M, against the engine itself, one reading at a time
        flags = rng.random(int(rng.integers(1, 80))) < rng.uniform(0.1, 0.9)
        raise_after, clear_after = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        engine = AlertEngine(gateway_id="gw-1", plant="plant-1", raise_after=raise_after, clear_after=clear_after)
        runs: list[tuple[int, int | None]] = []
        for k, flag in enumerate(flags.tolist()):
            scored = ScoredReading(reading=reading(0, ts_ms=1_000 * k), score=0.0, anomaly=flag, reasons=())
            for event in engine.observe(scored):
                if event.event == "raised":
                    runs.append((k, None))
                elif event.event == "cleared":
                    runs[-1] = (runs[-1][0], k)
        assert alert_runs(flags, raise_after, clear_after) == runs, (
            flags.astype(int).tolist(),
            raise_after,
            clear_after,
        )


def test_a_model_name_no_batch_could_carry_is_refused_before_training() -> None:
    from plantwatch.contract.batch import BatchHeader, ModelRef, encode_batches
    from plantwatch.contract.decode import decode_payload
    from plantwatch.models.trainer import model_name

    plant, line = "northfield-beverage-plant-02", "high-speed-bottling-line-07-filler-east"
    with pytest.raises(ValueError, match="68 characters, over the 64 a batch may carry"):
        model_name(plant, line)
    scored = ScoredReading(reading=reading(0, ts_ms=1_000), score=0.0, anomaly=False, reasons=())

    def decoded(name: str) -> tuple[bool, str]:
        header = BatchHeader(gateway_id="gw", plant="plant-1", model=ModelRef(name=name, version="1"))
        [batch] = encode_batches(header, [scored], first_seq=1)
        result = decode_payload(batch.payload, now_ms=1_000)
        return result.batch is not None, str(result)

    assert decoded(model_name("p" * 31, "l" * 32))[0]  # the longest name training gives: the cloud takes it
    kept, why = decoded("p" * 32 + "." + "l" * 32)  # one longer: every batch refused
    assert not kept and "model name and version must be 1-64 characters" in why
