"""Train, tune and evaluate on the simulator: healthy training week, validation day for tuning, separate test day."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from plantwatch.domain.simulator import DAY_MS, Fault, PlantSimulator, SimulationConfig
from plantwatch.models.datasets import AssetFeatures, simulator_assets
from plantwatch.models.evaluation import AlertPolicy, Evaluation, ScoredAssets, evaluate, score_assets, tune_policy
from plantwatch.models.forest import ForestModel
from plantwatch.models.trainer import TrainConfig, train_models, with_training

#: Faults start this far in the future in the healthy twin of a simulation (about 30 years).
_NO_FAULTS_S = 1e9


class Periods(msgspec.Struct, frozen=True, kw_only=True):
    """Simulated periods (from the simulation's anchor): training segments, then validation, then test."""

    train_days: float = 7.0
    #: Train on ``train_segment_s`` of every ``train_every_s`` (covers daily and weekly cycles cheaply).
    train_segment_s: float = 900.0
    train_every_s: float = 3600.0
    validation_days: float = 1.0
    test_days: float = 1.0


class LabelledSet(msgspec.Struct, frozen=True, kw_only=True):
    """Feature windows with ground truth, and the fault episodes behind it."""

    assets: list[AssetFeatures]
    faults: list[Fault]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """Tuned models, the policy chosen on validation, and the test evaluation (with its scores for plots)."""

    models: dict[str, ForestModel]
    policy: AlertPolicy
    validation: Evaluation
    test: Evaluation
    #: The forest alone (no thresholds or limits), tuned the same way: what the model adds by itself.
    forest_only: Evaluation
    test_scores: ScoredAssets


def healthy_twin(config: SimulationConfig) -> PlantSimulator:
    """The same plant (same sensors, levels, cycles and noise) with no fault ever injected."""
    return PlantSimulator(msgspec.structs.replace(config, fault_after_s=_NO_FAULTS_S, fault_every_s=0.0))


def simulator_training_assets(config: SimulationConfig, train: TrainConfig, periods: Periods) -> list[AssetFeatures]:
    """Healthy feature rows from the training segments of the healthy twin."""
    simulator = healthy_twin(config)
    spec = train.spec
    warmup = (spec.window - 1) * config.sample_period_ms
    start = config.anchor_ms
    end = start + int(periods.train_days * DAY_MS)
    every = int(periods.train_every_s * 1000)
    segment = int(periods.train_segment_s * 1000)
    out: list[AssetFeatures] = []
    for t in range(start, end, every):
        out.extend(simulator_assets(simulator, spec, start_ms=t, end_ms=min(t + segment, end) + warmup))
    return out


def labelled_period(config: SimulationConfig, train: TrainConfig, start_ms: int, days: float) -> LabelledSet:
    """Feature windows of the simulated plant at every sample time of ``days`` from ``start_ms``, and its faults.

    The readings of the window before ``start_ms`` are included (a gateway runs continuously), so the first
    row is the window ending at ``start_ms``.
    """
    simulator = PlantSimulator(config)
    end = start_ms + int(days * DAY_MS)
    warmup = (train.window - 1) * config.sample_period_ms
    return LabelledSet(
        assets=simulator_assets(simulator, train.spec, start_ms=start_ms - warmup, end_ms=end),
        faults=simulator.faults_between(start_ms, end),
    )


def evaluation_sets(config: SimulationConfig, train: TrainConfig, periods: Periods) -> tuple[LabelledSet, LabelledSet]:
    """The validation and test periods, right after the training week."""
    val_start = config.anchor_ms + int(periods.train_days * DAY_MS)
    test_start = val_start + int(periods.validation_days * DAY_MS)
    return (
        labelled_period(config, train, val_start, periods.validation_days),
        labelled_period(config, train, test_start, periods.test_days),
    )


def tail_ms(config: SimulationConfig, train: TrainConfig) -> int:
    """How long after a fault its readings stay in the feature window."""
    return train.window * config.sample_period_ms


def tune_and_test(
    models: Mapping[str, ForestModel],
    train: TrainConfig,
    validation: LabelledSet,
    test: LabelledSet,
    *,
    tail: int,
) -> Outcome:
    """Choose the policy on validation, evaluate it on test, and write both into every model's metadata."""
    scored_val = score_assets(models, validation.assets, train)
    policy, _ = tune_policy(scored_val, validation.faults, tail_ms=tail)
    val_eval = evaluate(scored_val, validation.faults, policy, tail_ms=tail)
    scored_test = score_assets(models, test.assets, train)
    test_eval = evaluate(scored_test, test.faults, policy, tail_ms=tail)
    forest_policy, _ = tune_policy(scored_val, validation.faults, tail_ms=tail, rules=False)
    forest_eval = evaluate(scored_test, test.faults, forest_policy, tail_ms=tail)
    summary: dict[str, Any] = {
        "alert_policy": msgspec.to_builtins(policy),
        "validation": summarise(val_eval),
        "test": summarise(test_eval),
        "test_forest_only": summarise(forest_eval),
    }
    tuned = {name: with_training(m, summary, threshold=policy.threshold) for name, m in models.items()}
    return Outcome(
        models=tuned,
        policy=policy,
        validation=val_eval,
        test=test_eval,
        forest_only=forest_eval,
        test_scores=scored_test,
    )


def summarise(evaluation: Evaluation) -> dict[str, Any]:
    """The headline numbers of an evaluation (what a registry entry and a model's metadata keep)."""
    r, a = evaluation.readings, evaluation.alerts
    return {
        "period": evaluation.period,
        "precision": round(r.precision, 6),
        "recall": round(r.recall, 6),
        "roc_auc": None if r.roc_auc is None else round(r.roc_auc, 6),
        "episodes": a.episodes,
        "detected": a.detected,
        "median_delay_s": a.median_delay_s,
        "max_false_alerts_per_line_day": round(a.max_false_alerts_per_line_day, 6),
        "targets_met": evaluation.targets_met,
    }


def decision_summary(outcome: Outcome) -> dict[str, Any]:
    """What promotion judges a model by: the gateway decision's test summary, and under ``forest_only`` the forest's
    own (thresholds and limits alone can meet the targets, so the whole decision can't tell a useless forest)."""
    return {**summarise(outcome.test), "forest_only": summarise(outcome.forest_only)}


def train_on_simulator(
    config: SimulationConfig, train: TrainConfig, periods: Periods, *, version: str = "1"
) -> Outcome:
    """The whole simulator lifecycle run: train on healthy segments, tune on validation, report on test."""
    assets = simulator_training_assets(config, train, periods)
    source = {"kind": "simulator", "plant": config.plant, "seed": config.seed, "train_days": periods.train_days}
    models = train_models(assets, train, version=version, source=source)
    validation, test = evaluation_sets(config, train, periods)
    return tune_and_test(models, train, validation, test, tail=tail_ms(config, train))


def evaluate_models(
    models: Mapping[str, ForestModel], train: TrainConfig, labelled: LabelledSet, policy: AlertPolicy, *, tail: int
) -> Evaluation:
    """Evaluate given models under one policy on a labelled set (champion vs challenger on the same data)."""
    return evaluate(score_assets(models, labelled.assets, train), labelled.faults, policy, tail_ms=tail)


def lines_of(assets: Sequence[AssetFeatures]) -> list[str]:
    """Distinct lines, in order."""
    return sorted({a.line for a in assets})
