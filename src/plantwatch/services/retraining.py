"""Retraining: train a challenger per model group, evaluate it and the champion on the same labelled set,
register it, promote it only if it is not worse, and publish the champion (promoted or kept) to the gateways."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from plantwatch.contract.reading import IDENT_PATTERN
from plantwatch.domain.simulator import SimulationConfig
from plantwatch.models.datasets import AssetFeatures
from plantwatch.models.forest import ForestModel
from plantwatch.models.pipeline import (
    LabelledSet,
    Outcome,
    Periods,
    decision_summary,
    evaluation_sets,
    tail_ms,
    tune_and_test,
)
from plantwatch.models.registry import ModelRegistry, RegistryEntry
from plantwatch.models.report import outcome_report
from plantwatch.models.trainer import TrainConfig, group_assets, model_name_problem, train_group
from plantwatch.services.drift_reports import DRIFT_EVENT_SOURCE

log = logging.getLogger(__name__)


class ModelPublisher(Protocol):
    """Where a champion goes (a Greengrass component version and a deployment per line, or nothing)."""

    def publish(
        self, entry: RegistryEntry, artifact: bytes, lines: Sequence[str], *, known: str | None = None
    ) -> dict[str, Any]:
        """Make ``entry`` (the champion) reach the gateways of ``lines``, doing nothing where they run it already;
        returns what was created, with the lines still ``waiting`` for it. ``known``: the version it was published
        as before (its ``componentVersion``), if any."""
        ...


class GroupResult(msgspec.Struct, frozen=True, kw_only=True):
    """What retraining did for one model group."""

    name: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    #: what the publisher did to make the lines run the champion (this version if promoted, else the champion)
    published: dict[str, Any] | None = None
    #: False when nothing was trained: the labelled set holds no fault episode of the group's assets to judge it by
    trained: bool = True
    #: the lines of the group's assets
    lines: list[str] = msgspec.field(default_factory=list)


class Evaluator(msgspec.Struct, frozen=True, kw_only=True):
    """The labelled evaluation set (validation for tuning, test for the decision) every model is judged on."""

    validation: LabelledSet
    test: LabelledSet
    tail_ms: int

    def for_assets(self, names: set[str]) -> Evaluator:
        """The part of the set that concerns these assets."""

        def part(s: LabelledSet) -> LabelledSet:
            return LabelledSet(
                assets=[a for a in s.assets if a.asset in names], faults=[f for f in s.faults if f.asset in names]
            )

        return Evaluator(validation=part(self.validation), test=part(self.test), tail_ms=self.tail_ms)

    def for_plant(self, plant: str) -> Evaluator:
        """The same labelled set as ``plant``'s: a model is named by its plant, and each labelled asset is scored
        with the model of its plant, so the simulated stand-in must carry the name of the plant being retrained."""

        def named(s: LabelledSet) -> LabelledSet:
            return LabelledSet(assets=[msgspec.structs.replace(a, plant=plant) for a in s.assets], faults=s.faults)

        return Evaluator(validation=named(self.validation), test=named(self.test), tail_ms=self.tail_ms)

    def labelled(self) -> bool:
        """Whether both periods hold assets and fault episodes of them (else nothing can be tuned or judged)."""
        return all(s.assets and s.faults for s in (self.validation, self.test))

    def run(self, name: str, model: ForestModel, train: TrainConfig) -> Outcome:
        """Tune on validation and evaluate on test."""
        return tune_and_test({name: model}, train, self.validation, self.test, tail=self.tail_ms)


def simulator_evaluator(config: SimulationConfig, train: TrainConfig, periods: Periods) -> Evaluator:
    """The simulated plant's labelled validation and test periods."""
    validation, test = evaluation_sets(config, train, periods)
    return Evaluator(validation=validation, test=test, tail_ms=tail_ms(config, train))


def drift_line(event: Mapping[str, Any]) -> str | None:
    """The one line a drift event asks to retrain, or None for a scheduled run (every line).

    Raises ValueError for a drift event without a valid line (it must not quietly retrain everything).
    """
    if event.get("source") != DRIFT_EVENT_SOURCE:
        return None
    line = event.get("line")
    if not isinstance(line, str) or not re.match(IDENT_PATTERN, line):
        raise ValueError(f"drift event without a valid line: {str(line)[:70]!r}")
    return line


class RetrainTarget(msgspec.Struct, frozen=True, kw_only=True):
    """What one event asks to retrain: a plant, and one line of it or (None) every line."""

    plant: str
    line: str | None = None


def _ident(event: Mapping[str, Any], field: str, what: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not re.fullmatch(IDENT_PATTERN, value):
        raise ValueError(f"{what} without a valid {field}: {str(value)[:70]!r}")
    return value


def event_target(event: Mapping[str, Any]) -> RetrainTarget | None:
    """The plant (and line) an event names, or None for a scheduled run (every configured plant).

    A drift event (``source`` plantwatch.drift, :func:`~plantwatch.services.drift_reports.retrain_event`) names
    the drifted plant and line; any other event may name a ``plant`` (and a ``line``), e.g. a run replayed from
    the failure queue. Raises ValueError for a drift event without a valid plant and line, or an invalid name:
    such an event must not quietly retrain something else.
    """
    if event.get("source") == DRIFT_EVENT_SOURCE:
        return RetrainTarget(plant=_ident(event, "plant", "drift event"), line=_ident(event, "line", "drift event"))
    if event.get("plant") is None:
        if event.get("line") is not None:
            raise ValueError("an event that names a line must name its plant")
        return None
    line = _ident(event, "line", "event") if event.get("line") is not None else None
    return RetrainTarget(plant=_ident(event, "plant", "event"), line=line)


def of_line(assets: Sequence[AssetFeatures], line: str | None) -> list[AssetFeatures]:
    """The assets of ``line`` (all of them when None)."""
    return [a for a in assets if line is None or a.line == line]


def retrain(
    assets: Sequence[AssetFeatures],
    *,
    train: TrainConfig,
    registry: ModelRegistry,
    evaluator: Evaluator,
    source: Mapping[str, Any],
    publisher: ModelPublisher | None = None,
) -> list[GroupResult]:
    """Train, evaluate and register one challenger per model group, and publish the group's champion: the
    challenger if promoted, else the champion as it was. Publishing is idempotent, so a champion whose publish
    failed (or waited for its line's gateway) reaches its lines on the next run even when the challenger loses."""
    results = []
    for name, group in group_assets(assets, train).items():
        lines = sorted({a.line for a in group})
        ev = evaluator.for_assets({a.asset for a in group})
        # a group whose name no batch could carry is reported, and the plant's other groups still train
        problem = model_name_problem(name)
        if problem is not None or not ev.labelled():  # a model nobody can judge must not be registered either
            reason = (
                f"not trained: {problem}"
                if problem is not None
                else (
                    "not trained: the labelled evaluation set holds no fault episodes of its assets "
                    f"({', '.join(sorted({a.asset for a in group}))}), so no model of them can be judged"
                )
            )
            log.error("%s %s", name, reason, extra={"model": name})
            results.append(
                GroupResult(
                    name=name,
                    version="",
                    promoted=False,
                    reason=reason,
                    metrics={},
                    champion_metrics=None,
                    trained=False,
                    lines=lines,
                )
            )
            continue
        version = registry.next_version(name)
        challenger = train_group(name, group, train, version=version, source=source)
        outcome = ev.run(name, challenger, train)
        model = outcome.models[name]
        metrics = decision_summary(outcome)
        champion_entry = registry.champion(name)
        champion_metrics = None
        # A champion on other features would be judged on the challenger's feature rows, not its own: the registry
        # refuses that challenger for the features alone (RegistryEntry.feature_spec_hash), so don't score it.
        if champion_entry is not None and champion_entry.feature_spec_hash == train.spec.hash:
            champion = registry.load(name, champion_entry.version)
            champion_metrics = decision_summary(ev.run(name, champion, train))
        entry = registry.register(model, metrics=metrics, report=outcome_report(outcome))
        against = champion_entry.version if champion_entry is not None else None
        decision = registry.decide(name, entry.version, champion_metrics, against=against)
        published = None
        serving = registry.champion(name)  # the challenger if promoted
        if publisher is not None and serving is not None:
            before = registry.published(name, serving.version) or {}
            artifact = registry.artifact_bytes(name, serving.version)
            published = publisher.publish(serving, artifact, lines, known=before.get("componentVersion"))
            if published.get("componentVersion"):
                where = {k: published[k] for k in ("component", "componentVersion")}
                registry.note_published(name, serving.version, where)
        log.info("retrained", extra={"model": name, "version": version, "promoted": decision.promote})
        results.append(
            GroupResult(
                name=name,
                version=version,
                promoted=decision.promote,
                reason=decision.reason,
                metrics=metrics,
                champion_metrics=champion_metrics,
                published=published,
                lines=lines,
            )
        )
    return results
