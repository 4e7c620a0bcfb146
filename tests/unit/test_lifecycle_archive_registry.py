"""Training from the archive (real Parquet written by the archive adapter), and the registry's promotion rules."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plantwatch.adapters.archive_reader import read_archive
from plantwatch.adapters.object_store import LocalObjectStore
from plantwatch.cli import main
from plantwatch.domain.simulator import PlantSimulator
from plantwatch.models.datasets import reading_assets, simulator_assets
from plantwatch.models.evaluation import AlertPolicy, evaluate, score_assets
from plantwatch.models.pipeline import (
    evaluation_sets,
    simulator_training_assets,
    summarise,
    tail_ms,
    train_on_simulator,
)
from plantwatch.models.registry import ModelRegistry, RegistryEntry, compare
from plantwatch.models.trainer import with_training
from plantwatch.services.retraining import GroupResult, retrain, simulator_evaluator
from tests.unit.lifecycle_support import ARCHIVE_PERIODS, PERIODS, SIM, TRAIN, archive_simulated_readings
from tests.unit.ml_support import require_sklearn

HOUR = 3_600_000


def train_args(root: Path, *extra: str, end: str | None = "1970-01-01T01:00:00") -> list[str]:
    """``plantwatch train --from-archive ROOT/archive`` against SIM's plant (2 lines of 2 assets) and the archive
    periods; ``extra`` arguments come last, so they override these."""
    return [
        "train", "--from-archive", str(root / "archive"), "--lines", "2", "--assets-per-line", "2",
        "--sim-seed", "11", "--waveform-types", "", "--train-days", str(ARCHIVE_PERIODS.train_days),
        "--validation-days", str(ARCHIVE_PERIODS.validation_days), "--test-days", str(ARCHIVE_PERIODS.test_days),
        *([] if end is None else ["--end", end]), *extra,
    ]  # fmt: skip


def test_archived_readings_give_the_same_features_as_the_simulator(tmp_path: Path) -> None:
    start = 5 * HOUR
    written = archive_simulated_readings(tmp_path / "archive", SIM, start, start + 600_000)
    store = LocalObjectStore(tmp_path / "archive")
    columns = read_archive(store, start_ms=start, end_ms=start + 600_000, plant=SIM.plant)
    assert len(columns) == written
    from_archive = {a.asset: a for a in reading_assets(columns, TRAIN.spec)}
    simulated = simulator_assets(PlantSimulator(SIM), TRAIN.spec, start_ms=start, end_ms=start + 600_000)
    assert sorted(from_archive) == sorted(a.asset for a in simulated)
    for expected in simulated:
        got = from_archive[expected.asset]
        np.testing.assert_array_equal(got.ts, expected.ts)
        np.testing.assert_array_equal(got.rows, expected.rows)
    # the window filter applies to reading times, not only to date partitions
    part = read_archive(store, start_ms=start, end_ms=start + 60_000, plant=SIM.plant)
    assert len(part) == 60 * len(PlantSimulator(SIM).sensors)
    assert len(read_archive(store, start_ms=start, end_ms=start + 600_000, plant="another-plant")) == 0


class ListingSpy(LocalObjectStore):
    """A local store that records the prefixes it is asked to list."""

    listed: list[str]

    def list(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().list(prefix)


def test_reading_a_window_lists_only_its_days_of_the_plant_or_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = 24 * HOUR
    for start in (0, 3 * day):  # GIVEN two archived minutes three days apart (gateways numbered from 0 in each)
        archive_simulated_readings(tmp_path / f"at-{start}", SIM, start, start + 60_000)
        shutil.copytree(tmp_path / f"at-{start}" / "batches", tmp_path / "archive" / "batches", dirs_exist_ok=True)
    store = ListingSpy(tmp_path / "archive")
    store.listed = []
    # WHEN a window of the first two days is read, THEN only those days' folders of the plant are listed
    columns = read_archive(store, start_ms=0, end_ms=2 * day, plant=SIM.plant)
    assert store.listed == ["batches/date=1970-01-01/plant=plant-1/", "batches/date=1970-01-02/plant=plant-1/"]
    assert int(columns.ts.max()) < day
    store.listed = []
    read_archive(store, start_ms=3 * day, end_ms=3 * day + HOUR, plant=SIM.plant, lines=["line-2"])
    assert store.listed == ["batches/date=1970-01-04/plant=plant-1/line=line-2/"]
    # AND the local store walks only the folder a prefix names, not the whole archive
    walked: list[str] = []
    walk = os.walk
    monkeypatch.setattr("plantwatch.adapters.object_store.os.walk", lambda top: walked.append(str(top)) or walk(top))
    read_archive(store, start_ms=0, end_ms=HOUR, plant=SIM.plant)
    assert walked == [str(tmp_path / "archive" / "batches" / "date=1970-01-01" / "plant=plant-1")]
    # AND "everything until now" lists the archive once, and still reads only the window's days
    store.listed = []
    late = read_archive(store, start_ms=2 * day, end_ms=400 * day, plant=SIM.plant)
    assert store.listed == ["batches/"]
    assert int(late.ts.min()) >= 3 * day
    assert len(late) == len(columns)


def test_an_unreadable_archive_object_is_left_out_named_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_sklearn()
    archive_simulated_readings(tmp_path / "archive", SIM, 0, HOUR)
    store = LocalObjectStore(tmp_path / "archive")
    whole = read_archive(store, start_ms=0, end_ms=HOUR, plant=SIM.plant)
    # GIVEN line-2's object truncated (one object per line here)
    [damaged] = [k for k in store.list("batches/") if "line=line-2/" in k]
    path = tmp_path / "archive" / damaged
    path.write_bytes(path.read_bytes()[:3000])
    # WHEN the archive is read, THEN line-1's readings are all there, and the object is named with its reason
    unreadable: list[tuple[str, str]] = []
    columns = read_archive(store, start_ms=0, end_ms=HOUR, plant=SIM.plant, unreadable=unreadable)
    assert len(columns) == len(whole) // 2
    assert {a[1] for a in columns.assets} == {"line-1"}
    assert [(key, reason.split(":")[0]) for key, reason in unreadable] == [(damaged, "ArrowInvalid")]
    # AND plantwatch train says so, records it in the model's source, and exits 2 though line-1 was trained
    assert main(train_args(tmp_path)) == 2
    assert f"archive object {damaged} is unreadable and was left out: ArrowInvalid" in capsys.readouterr().err
    model = ModelRegistry(LocalObjectStore(tmp_path / "registry")).load("plant-1.line-1", "1")
    assert model.info.training["source"]["unreadable_objects"] == 1


GOOD_ROW = {
    "plant": ["plant-1"], "line": ["line-1"], "asset": ["line-1-asset-1"], "sensor_type": ["temperature"],
    "ts": [1_000], "value": [1.0], "anomaly": [False],
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"value": ["n/a"]}, "ArrowInvalid: Failed to parse string: 'n/a' as a scalar of type double"),
        ({"asset": pa.array([None], pa.string())}, "null asset in 1 row(s)"),
        ({"ts": pa.array([None], pa.int64()), "value": pa.array([None], pa.float64())}, "null ts, value in 1 row(s)"),
        ({"sensor_type": None}, "ArrowInvalid: No match for FieldRef.Name(sensor_type)"),
    ],
)
def test_an_altered_archive_object_is_left_out_and_named_whatever_it_holds(
    tmp_path: Path, change: dict[str, object], reason: str
) -> None:
    # GIVEN a minute of the archive and, beside it, an object of other types or with nulls where readings have values
    archive_simulated_readings(tmp_path / "archive", SIM, 0, 60_000)
    store = LocalObjectStore(tmp_path / "archive")
    whole = len(read_archive(store, start_ms=0, end_ms=60_000, plant=SIM.plant))
    columns = {k: v for k, v in {**GOOD_ROW, **change}.items() if v is not None}
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), buffer)
    key = "batches/date=1970-01-01/plant=plant-1/line=line-1/part-altered.parquet"
    store.put(key, buffer.getvalue().to_pybytes())
    # WHEN the window is read, THEN every other reading is there and the object is named with what is wrong
    unreadable: list[tuple[str, str]] = []
    assert len(read_archive(store, start_ms=0, end_ms=60_000, plant=SIM.plant, unreadable=unreadable)) == whole
    [(named, why)] = unreadable
    assert (named, why[: len(reason)]) == (key, reason)


def test_train_from_archive_registers_and_promotes_a_first_champion(tmp_path: Path) -> None:
    require_sklearn()
    archive_simulated_readings(tmp_path / "archive", SIM, 0, HOUR)
    args = train_args(
        tmp_path, "--trees", str(TRAIN.n_estimators), "--max-samples", str(TRAIN.max_samples), "--window",
        str(TRAIN.window),
    )  # fmt: skip
    assert main(args) == 0
    registry = ModelRegistry(LocalObjectStore(tmp_path / "registry"))
    champion = registry.champion("plant-1.line-1")
    assert champion is not None
    assert champion.version == "1"
    assert champion.status == "champion"
    assert champion.parent is None
    assert champion.rows["feature_rows"] > 0
    assert champion.training_window["end_ms"] < HOUR
    assert champion.feature_spec_hash == TRAIN.spec.hash
    model = registry.load("plant-1.line-1", "1")
    assert model.info.training["source"]["kind"] == "archive"
    # a second run registers version 2 with version 1 as its parent; trained on the same data, it is not worse
    assert main(args) == 0
    second = registry.entry("plant-1.line-1", "2")
    assert second.parent == "1"
    assert (second.status, second.decision) == ("champion", "not worse than the champion on the same evaluation set")


def registry_entry(root: Path, version: str) -> RegistryEntry:
    return ModelRegistry(LocalObjectStore(root / "registry")).entry("plant-1.line-1", version)


def test_a_forest_trained_on_seconds_of_archive_never_becomes_the_champion(tmp_path: Path) -> None:
    require_sklearn()
    archive_simulated_readings(tmp_path / "archive", SIM, 0, HOUR)

    def train(start: str, *extra: str) -> RegistryEntry:
        assert main(train_args(tmp_path, "--start", start, "--trees", "100", "--max-samples", "512", *extra)) == 0
        registry = ModelRegistry(LocalObjectStore(tmp_path / "registry"))
        return registry.entry("plant-1.line-1", registry.versions("plant-1.line-1")[-1])

    # GIVEN no champion: the last 12 s (a couple of windows) make a forest the thresholds carry to the targets
    first = train("1970-01-01T00:59:48")
    assert first.status == "rejected"
    assert first.decision.startswith("no champion yet, and it misses targets:")
    assert "(forest alone)" in first.decision
    # WHEN an hour's forest became the champion and the next run has only the last 12 s (a couple of windows)
    assert train("1970-01-01T00:00:00").status == "champion"
    late = train("1970-01-01T00:59:48")
    # THEN it is rejected (slower, or a forest that can't separate faults: compare's tests take each reason)
    assert late.rows["healthy_rows_used"] < 10
    assert late.status == "rejected"
    assert (
        late.metrics["forest_only"]["roc_auc"] < 0.9 < registry_entry(tmp_path, "2").metrics["forest_only"]["roc_auc"]
    )
    # AND a challenger on other features (another window) is not compared on the champion's rows, nor promoted
    other = train("1970-01-01T00:00:00", "--window", "5")
    assert other.status == "rejected"
    assert other.decision.startswith("trained on other features than champion v2")
    champion = ModelRegistry(LocalObjectStore(tmp_path / "registry")).champion("plant-1.line-1")
    assert champion is not None
    assert champion.version == "2"


def test_train_from_archive_until_now_gives_the_same_artifact_at_any_wall_clock_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sklearn()
    archive_simulated_readings(tmp_path / "archive", SIM, 0, HOUR)
    shas = []
    for run, now_s in enumerate((1_800_000_000.0, 1_800_086_400.0)):  # GIVEN two runs a day apart, without --end
        monkeypatch.setattr("time.time", lambda now_s=now_s: now_s)
        args = train_args(
            tmp_path, "--registry", str(tmp_path / f"registry-{run}"), "--trees", "20", "--max-samples", "256", end=None
        )
        main(args)  # (whether these small forests are promoted does not matter here)
        entry = ModelRegistry(LocalObjectStore(tmp_path / f"registry-{run}")).entry("plant-1.line-1", "1")
        assert entry.training_window["end_ms"] < HOUR
        shas.append(entry.sha256)
    # THEN the artifacts are byte-identical: the window's end is the newest reading read, not the clock
    assert shas[0] == shas[1]


def test_train_from_archive_trains_the_lines_it_can_judge_and_fails_on_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_sklearn()
    # GIVEN an archive of two lines, and a simulated (labelled) plant of one
    archive_simulated_readings(tmp_path / "archive", SIM, 0, HOUR)
    # WHEN it trains, THEN line-1 gets a model, line-2 nothing, and the exit status says not all went well
    assert main(train_args(tmp_path, "--lines", "1")) == 2
    registry = ModelRegistry(LocalObjectStore(tmp_path / "registry"))
    assert registry.versions("plant-1.line-1") == ["1"]
    assert registry.versions("plant-1.line-2") == []
    assert "plant-1.line-2: not trained: the labelled evaluation set holds no fault episodes" in capsys.readouterr().err


def test_promotion_refuses_a_worse_challenger_and_keeps_it_as_rejected(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, TRAIN, PERIODS)
    registry = ModelRegistry(LocalObjectStore(tmp_path / "registry"))
    _, test = evaluation_sets(SIM, TRAIN, PERIODS)
    name = "plant-1.line-1"
    line_test = [a for a in test.assets if a.line == "line-1"]

    def metrics(model, policy: AlertPolicy):  # type: ignore[no-untyped-def]
        scored = score_assets({name: model}, line_test, TRAIN)
        return summarise(evaluate(scored, test.faults, policy, tail_ms=tail_ms(SIM, TRAIN)))

    champion = outcome.models[name]
    champion_metrics = metrics(champion, outcome.policy)
    registry.register(champion, metrics=champion_metrics, report={"note": "champion"})
    assert registry.decide(name, "1", None).promote
    # GIVEN a challenger whose threshold sits inside the healthy score range (it alerts on healthy time)
    loose = AlertPolicy(threshold=0.35, rules=True)
    challenger = with_training(champion, {}, version="2", threshold=loose.threshold)
    challenger_metrics = metrics(challenger, loose)
    registry.register(challenger, metrics=challenger_metrics, report={"note": "challenger"})
    # WHEN it is compared with the champion on the same evaluation set
    decision = registry.decide(name, "2", champion_metrics)
    # THEN it is refused, kept as rejected with its report, and the champion stays
    assert not decision.promote
    assert "false alerts" in decision.reason
    rejected = registry.entry(name, "2")
    assert rejected.status == "rejected"
    assert rejected.parent == "1"
    assert registry.report(name, "2") == {"note": "challenger"}
    champion_entry = registry.champion(name)
    assert champion_entry is not None
    assert champion_entry.version == "1"
    # a challenger as good as the champion is promoted, and the old champion is retired
    same = with_training(champion, {}, version="3")
    registry.register(same, metrics=champion_metrics)
    assert registry.decide(name, "3", champion_metrics).promote
    assert registry.entry(name, "1").status == "retired"
    assert registry.versions(name) == ["1", "2", "3"]


def test_compare_orders_recall_then_false_alerts_then_delay() -> None:
    base = {"episodes": 10, "detected": 10, "max_false_alerts_per_line_day": 0.0, "median_delay_s": 7.0}
    assert compare(base, None).promote
    first = compare({**base, "targets_met": {"every_episode_detected": True, "false_alerts_at_most_1": False}}, None)
    assert not first.promote
    assert "false_alerts_at_most_1" in first.reason
    assert not compare({**base, "detected": 9}, base).promote
    assert not compare({**base, "median_delay_s": 30.0}, base).promote
    assert compare({**base, "max_false_alerts_per_line_day": 0.9}, base).promote  # still within the target
    assert not compare({**base, "max_false_alerts_per_line_day": 2.0}, base).promote


def test_compare_judges_the_forest_alone_where_both_summaries_carry_it() -> None:
    forest = {"episodes": 10, "detected": 10, "max_false_alerts_per_line_day": 0.0, "median_delay_s": 9.0}
    whole = {"episodes": 10, "detected": 10, "max_false_alerts_per_line_day": 0.0, "median_delay_s": 7.0}
    champion = {**whole, "roc_auc": 0.96, "forest_only": {**forest, "roc_auc": 0.96}}
    assert compare(champion, champion).promote
    # the thresholds catch every episode either way: the forest's own recall, delay and AUC decide
    blind = compare({**champion, "forest_only": {**forest, "detected": 0, "roc_auc": 0.5}}, champion)
    assert (blind.promote, blind.reason) == (False, "its forest alone detects fewer episodes (0.000 < 1.000)")
    slow = compare({**champion, "forest_only": {**forest, "median_delay_s": 20.0, "roc_auc": 0.96}}, champion)
    assert slow.reason == "its forest alone detects more slowly (20.0 s > 9.0 s median)"
    vague = compare({**champion, "forest_only": {**forest, "roc_auc": 0.94}}, champion)
    assert vague.reason.startswith("its forest alone separates faulty from healthy readings worse (ROC AUC 0.940")
    assert compare({**champion, "forest_only": {**forest, "roc_auc": 0.955}}, champion).promote  # within 0.01
    # a first champion must meet the targets with its forest alone too
    met = {"every_episode_detected": True, "median_delay_under_60s": True}
    lone = compare({**whole, "targets_met": met, "forest_only": {**forest, "targets_met": {**met, "x": False}}}, None)
    assert (lone.promote, lone.reason) == (False, "no champion yet, and it misses targets: x (forest alone)")


def test_registry_refuses_to_overwrite_a_version(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    registry = ModelRegistry(LocalObjectStore(tmp_path))
    model = outcome.models["plant-1.line-2"]
    registry.register(model, metrics={})
    with pytest.raises(ValueError, match="already registered"):
        registry.register(model, metrics={})


def test_an_operator_rolls_back_by_promoting_and_pinning_an_earlier_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    root = tmp_path / "registry"
    registry = ModelRegistry(LocalObjectStore(root))
    name = "plant-1.line-1"
    first = outcome.models[name]
    registry.register(first, metrics={})
    registry.promote(name, "1", "first")
    registry.register(with_training(first, {}, version="2", threshold=0.4), metrics={})
    registry.promote(name, "2", "better on the evaluation set")
    worse = {"episodes": 1, "detected": 0, "max_false_alerts_per_line_day": 0.0}
    registry.register(with_training(first, {}, version="3", threshold=0.3), metrics=worse)
    registry.decide(name, "3", {**worse, "detected": 1}, against="2")
    assert registry.entry(name, "3").status == "rejected"

    def cli(*args: str) -> int:
        return main(["registry", args[0], "--registry", str(root), *args[1:]])

    # WHEN an operator promotes version 1 again (version 2 misbehaves on the floor)
    assert cli("promote", name, "1", "--reason", "v2 alarms at start-up") == 0
    # THEN version 1 is the champion, pinned (local gateways swap to it, retraining deploys it), 2 is retired
    champion = registry.champion(name)
    assert champion is not None and (champion.version, champion.status) == ("1", "champion")
    assert champion.decision == "promoted by an operator: v2 alarms at start-up"
    assert registry.pinned(name)
    assert registry.entry(name, "2").status == "retired"
    assert "pinned" in capsys.readouterr().out
    assert cli("show", name) == 0
    shown = [line.split("\t")[:2] for line in capsys.readouterr().out.splitlines()]
    assert shown == [[f"{name} v1", "champion (pinned)"], [f"{name} v2", "retired"], [f"{name} v3", "rejected"]]
    # (an entry an interrupted promotion left saying champion is shown as what champion.json makes it: retired)
    stale = registry.entry(name, "2")
    (root / name / "versions" / "2" / "entry.json").write_bytes(
        msgspec.json.encode(msgspec.structs.replace(stale, status="champion"))
    )
    assert cli("show", name) == 0
    assert capsys.readouterr().out.splitlines()[1].split("\t")[:2] == [f"{name} v2", "retired"]
    (root / name / "versions" / "2" / "entry.json").write_bytes(msgspec.json.encode(stale))
    # AND no challenger replaces a pinned champion, however good, until the operator unpins it
    registry.register(with_training(first, {}, version="4"), metrics={})
    decision = registry.decide(name, "4", None, against="1")
    assert (decision.promote, decision.reason) == (False, "champion v1 is pinned")
    assert cli("unpin", name) == 0
    assert not registry.pinned(name)
    # AND a rejected version, a missing one, one without its artifact, or a missing registry are refused
    assert cli("promote", name, "3", "--reason", "x") == 2
    assert "v3 is rejected" in capsys.readouterr().err
    assert cli("promote", name, "7", "--reason", "typo") == 2
    (root / name / "versions" / "2" / "model.pwf").unlink()
    assert cli("promote", name, "2", "--reason", "x") == 2
    assert "has no artifact" in capsys.readouterr().err
    assert main(["registry", "promote", "--registry", str(tmp_path / "nowhere"), name, "1", "--reason", "x"]) == 2
    assert "no registry at" in capsys.readouterr().err
    assert registry.champion(name) == champion


def test_a_challenger_is_not_promoted_when_the_champion_changed_while_it_was_evaluated(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    registry = ModelRegistry(LocalObjectStore(tmp_path))
    name = "plant-1.line-2"
    model = outcome.models[name]
    even = {"episodes": 1, "detected": 1, "max_false_alerts_per_line_day": 0.0}
    for version in ("1", "2", "3"):
        registry.register(with_training(model, {}, version=version), metrics=even)
    registry.promote(name, "1", "first")
    registry.promote(name, "2", "second")  # e.g. an unpinned rollback-forward while version 3 was evaluated
    decision = registry.decide(
        name, "3", {"episodes": 0, "detected": 0, "max_false_alerts_per_line_day": 0}, against="1"
    )
    assert (decision.promote, decision.reason) == (False, "the champion changed while this version was evaluated")
    champion = registry.champion(name)
    assert champion is not None and champion.version == "2"


class CountingStore(LocalObjectStore):
    """A local store that counts writes."""

    writes: list[str]

    def put(self, key: str, data: bytes) -> None:
        self.writes.append(key)
        super().put(key, data)


def test_where_a_version_was_published_is_kept_and_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    store = CountingStore(tmp_path)
    store.writes = []
    registry = ModelRegistry(store)
    name = "plant-1.line-2"
    registry.register(outcome.models[name], metrics={})
    assert registry.published(name, "1") is None
    where = {"component": "com.plantwatch.Model", "componentVersion": "1.0.3"}
    key = f"{name}/versions/1/published.json"
    registry.note_published(name, "1", where)
    registry.note_published(name, "1", dict(where))  # the same: not written again
    assert store.writes.count(key) == 1
    assert registry.published(name, "1") == where
    registry.note_published(name, "1", {**where, "componentVersion": "1.0.7"})
    assert store.writes.count(key) == 2
    assert registry.published(name, "1") == {**where, "componentVersion": "1.0.7"}


class SpyPublisher:
    """Records what retraining publishes; answers as the Greengrass publisher does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def publish(self, entry: RegistryEntry, artifact: bytes, lines: Sequence[str], *, known: str | None = None) -> dict:  # type: ignore[type-arg]
        self.calls.append((entry.name, entry.version, known))
        return {"component": "com.plantwatch.Model", "componentVersion": f"1.0.{len(self.calls)}", "waiting": []}


def test_retraining_publishes_the_champion_with_the_version_it_was_published_as(tmp_path: Path) -> None:
    require_sklearn()
    # The project's forest size: a first champion must meet the targets with its forest alone, as the baseline does
    train = msgspec.structs.replace(TRAIN, n_estimators=200, max_samples=1024)
    assets = [a for a in simulator_training_assets(SIM, train, PERIODS) if a.line == "line-1"]
    evaluator = simulator_evaluator(SIM, train, PERIODS)
    registry = ModelRegistry(LocalObjectStore(tmp_path))
    spy = SpyPublisher()
    name = "plant-1.line-1"

    def run() -> list[GroupResult]:
        return retrain(assets, train=train, registry=registry, evaluator=evaluator, source={}, publisher=spy)

    # GIVEN a first run: its champion is published and where it went is kept
    [first] = run()
    assert first.promoted
    assert spy.calls == [(name, "1", None)]
    assert registry.published(name, "1") == {"component": "com.plantwatch.Model", "componentVersion": "1.0.1"}
    # WHEN the champion is pinned and the next run's challenger is therefore not promoted
    registry.promote(name, "1", "operator", pin=True)
    [second] = run()
    # THEN the champion is published again, with the version it was published as (no duplicate is made)
    assert not second.promoted
    assert spy.calls[-1] == (name, "1", "1.0.1")


class PinningStore(LocalObjectStore):
    """A local store in which an operator pins version 1 while a challenger's artifact is being verified."""

    registry: ModelRegistry
    armed = False  # once the versions are registered (registering reads the artifact key too: it claims it)

    def get(self, key: str) -> bytes | None:
        data = super().get(key)
        if self.armed and key.endswith("versions/3/model.pwf") and not self.registry.pinned("plant-1.line-2"):
            self.registry.promote("plant-1.line-2", "1", "operator", pin=True)
        return data


def test_an_operators_pin_during_a_promotion_wins_and_leaves_one_champion(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    store = PinningStore(tmp_path)
    registry = store.registry = ModelRegistry(store)
    name = "plant-1.line-2"
    even = {"episodes": 1, "detected": 1, "max_false_alerts_per_line_day": 0.0}
    for version in ("1", "2", "3"):
        registry.register(with_training(outcome.models[name], {}, version=version), metrics=even)
    registry.promote(name, "2", "second")
    store.armed = True
    # WHEN version 3 is decided against champion 2, and the operator pins version 1 while 3 is being verified
    decision = registry.decide(name, "3", even, against="2")
    # THEN the pin stands: 3 is rejected, 1 is the pinned champion, and only one entry says champion
    assert (decision.promote, decision.reason) == (False, "champion v1 is pinned")
    champion = registry.champion(name)
    assert champion is not None and champion.version == "1" and registry.pinned(name)
    assert [registry.entry(name, v).status for v in ("1", "2", "3")] == ["champion", "retired", "rejected"]


def test_a_pinned_champion_holds_even_against_a_caller_that_names_no_champion(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    registry = ModelRegistry(LocalObjectStore(tmp_path))
    name = "plant-1.line-1"
    for version in ("1", "2"):
        registry.register(with_training(outcome.models[name], {}, version=version), metrics={})
    registry.promote(name, "1", "operator", pin=True)
    # WHEN a caller decides without saying which champion its metrics are of, and a promotion is not a pin
    decision = registry.decide(name, "2", None)
    # THEN the pin stands; only another pin replaces it
    assert (decision.promote, decision.reason) == (False, "champion v1 is pinned")
    with pytest.raises(ValueError, match="pinned"):
        registry.promote(name, "2", "unpinned promotion")
    assert registry.promote(name, "2", "operator again", pin=True).version == "2"


def _three_versions(store: LocalObjectStore, metrics: dict[str, float] | None = None) -> ModelRegistry:
    """A registry over ``store`` with versions 1-3 of plant-1.line-2 registered (small forests), none promoted."""
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    registry = ModelRegistry(store)
    for version in ("1", "2", "3"):
        registry.register(with_training(outcome.models["plant-1.line-2"], {}, version=version), metrics=metrics or {})
    return registry


class RacingStore(LocalObjectStore):
    """A local store in which another process promotes ``rival`` after a promotion read ``champion.json`` and
    before it writes it back: the moment a check-then-write loses to another writer."""

    rival: tuple[ModelRegistry, str] | None

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        if self.rival is not None and key.endswith("champion.json"):
            registry, version = self.rival
            self.rival = None
            registry.promote("plant-1.line-2", version, "the other promotion")
        return super().put_if(key, data, tag)


def test_of_two_promotions_at_the_same_moment_one_wins_and_the_other_is_refused(tmp_path: Path) -> None:
    require_sklearn()
    store = RacingStore(tmp_path)
    store.rival = None
    name = "plant-1.line-2"
    even = {"episodes": 1, "detected": 1, "max_false_alerts_per_line_day": 0.0}
    registry = _three_versions(store, even)
    registry.promote(name, "1", "first")
    # WHEN version 3 passed every check against champion 1, and another writer promotes 2 before 3 is written
    store.rival = (ModelRegistry(LocalObjectStore(tmp_path)), "2")
    decision = registry.decide(name, "3", even, against="1")
    # THEN the write that came second is refused: 2 is the champion, 3 is rejected, one entry says champion
    assert (decision.promote, decision.reason) == (
        False,
        "another promotion or pin changed the champion at the same moment",
    )
    champion = registry.champion(name)
    assert champion is not None and champion.version == "2"
    assert [registry.entry(name, v).status for v in ("1", "2", "3")] == ["retired", "champion", "rejected"]
    # an unpin that read the champion before a pin landed is refused too, and leaves the pin
    store.rival = (ModelRegistry(LocalObjectStore(tmp_path)), "1")
    with pytest.raises(ValueError, match="at the same moment"):
        registry.unpin(name)
    assert registry.champion(name).version == "1"  # type: ignore[union-attr]
    assert not registry.pinned(name)  # the rival's promotion was not a pin; the unpin did not land


class PausingStore(LocalObjectStore):
    """A local store whose conditional write stops, lock held, right after it read the key, until released."""

    entered: threading.Event
    release: threading.Event

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        found = super().get_tagged(key)
        self.entered.set()
        self.release.wait(timeout=60)
        return found


def test_the_local_stores_conditional_write_holds_a_second_writer_until_the_first_is_done(tmp_path: Path) -> None:
    key = "plant-1.line-1/champion.json"
    plain = LocalObjectStore(tmp_path)
    plain.put(key, b'{"version":"1"}')
    tagged = plain.get_tagged(key)
    assert tagged is not None
    first = PausingStore(tmp_path)
    first.entered, first.release = threading.Event(), threading.Event()
    results: dict[str, bool] = {}
    a = threading.Thread(target=lambda: results.update(a=first.put_if(key, b'{"version":"2"}', tagged[1])))
    b = threading.Thread(target=lambda: results.update(b=plain.put_if(key, b'{"version":"3"}', tagged[1])))
    # WHEN the first writer has read the key under the lock, and a second writer with the same tag starts
    a.start()
    assert first.entered.wait(timeout=60)
    b.start()
    b.join(timeout=0.5)
    # THEN the second waits for the lock (without it, it would read the same tag and write at once)
    assert b.is_alive() and "b" not in results
    first.release.set()
    a.join(timeout=60)
    b.join(timeout=60)
    # and, let in after the first wrote, finds the tag changed and writes nothing
    assert results == {"a": True, "b": False}
    assert plain.get(key) == b'{"version":"2"}'
    assert not plain.put_if("plant-1.line-1/new.json", b"x", "some-tag")  # absent: no tag matches
    assert plain.put_if("plant-1.line-1/new.json", b"x", None)
    assert not plain.put_if("plant-1.line-1/new.json", b"y", None)  # present: None refuses
    assert plain.list("plant-1.line-1/") == [key, "plant-1.line-1/new.json"]  # lock files are no keys


class OvertakingStore(LocalObjectStore):
    """A local store in which an operator pins ``rival`` right after a promotion's write of champion.json landed,
    before that promotion writes its entries."""

    rival: tuple[ModelRegistry, str] | None

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        landed = super().put_if(key, data, tag)
        if landed and self.rival is not None and key.endswith("champion.json"):
            registry, version = self.rival
            self.rival = None
            registry.promote("plant-1.line-2", version, "operator", pin=True)
        return landed


def test_a_promotion_overtaken_right_after_its_write_leaves_the_statuses_as_champion_json_says(
    tmp_path: Path,
) -> None:
    require_sklearn()
    store = OvertakingStore(tmp_path)
    store.rival = None
    name = "plant-1.line-2"
    registry = _three_versions(store)
    registry.promote(name, "1", "first")
    # WHEN 2 is promoted over 1, and an operator pins 3 between 2's write of champion.json and its entries
    store.rival = (ModelRegistry(LocalObjectStore(tmp_path)), "3")
    registry.promote(name, "2", "challenger", over="1")
    # THEN 3 is the pinned champion, and it alone says so: 2's promotion did not retire it
    champion = registry.champion(name)
    assert champion is not None and champion.version == "3" and registry.pinned(name)
    assert [registry.entry(name, v).status for v in ("1", "2", "3")] == ["retired", "retired", "champion"]


class RetriedStore(LocalObjectStore):
    """A local store whose first conditional write of champion.json either lands and is then answered as refused
    (an SDK retry of a request that landed, refused because its tag is stale by then), or is refused without
    landing while nothing changed (S3's 409 for a concurrent conditional request)."""

    landed_then_refused: bool
    calls: int

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        if key.endswith("champion.json"):
            self.calls += 1
            if self.calls == 1:
                if self.landed_then_refused:
                    super().put_if(key, data, tag)
                return False
        return super().put_if(key, data, tag)


@pytest.mark.parametrize("landed_then_refused", [True, False])
def test_a_promotion_whose_write_is_refused_without_anyone_else_writing_goes_through(
    tmp_path: Path, landed_then_refused: bool
) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    store = RetriedStore(tmp_path)
    store.landed_then_refused, store.calls = landed_then_refused, 0
    registry = ModelRegistry(store)
    name = "plant-1.line-2"
    registry.register(with_training(outcome.models[name], {}, version="1"), metrics={})
    # WHEN the promotion's conditional write is answered as refused, though nobody else wrote champion.json
    registry.promote(name, "1", "first")
    # THEN it is not taken for another promotion: 1 is the champion, written once or tried once more
    champion = registry.champion(name)
    assert champion is not None and champion.version == "1"
    assert store.calls == (1 if landed_then_refused else 2)


def test_of_two_runs_that_took_the_same_version_the_second_registration_is_refused(tmp_path: Path) -> None:
    require_sklearn()
    outcome = train_on_simulator(SIM, msgspec.structs.replace(TRAIN, n_estimators=5), PERIODS)
    store = LocalObjectStore(tmp_path)
    name = "plant-1.line-2"
    # GIVEN another run has claimed version 1 (its artifact written, its entry not yet)
    store.put(f"{name}/versions/1/model.pwf", b"the other run's model")
    # WHEN this run registers its model as version 1 too
    with pytest.raises(ValueError, match="already registered"):
        ModelRegistry(store).register(with_training(outcome.models[name], {}, version="1"), metrics={})
    # THEN the other run's model stands, and nothing of this run was written
    assert store.get(f"{name}/versions/1/model.pwf") == b"the other run's model"
    assert store.list(f"{name}/") == [f"{name}/versions/1/model.pwf"]


class PinDuringSettleStore(LocalObjectStore):
    """A local store in which an operator pins version 1 right after a promotion's settling read version 1's
    entry (which still says champion) and then champion.json (which names the new champion)."""

    armed = False
    last = ""

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        found = super().get_tagged(key)
        if self.armed and key.endswith("champion.json") and self.last.endswith("versions/1/entry.json"):
            self.armed = False
            ModelRegistry(LocalObjectStore(self.root)).promote("plant-1.line-2", "1", "operator", pin=True)
        self.last = key
        return found


def test_a_pin_that_lands_while_a_promotion_settles_the_statuses_is_not_retired(tmp_path: Path) -> None:
    require_sklearn()
    store = PinDuringSettleStore(tmp_path)
    registry = _three_versions(store)
    name = "plant-1.line-2"
    registry.promote(name, "1", "first")
    # WHEN 2 is promoted over 1, and the operator pins 1 again just as 2's promotion decided to retire 1
    store.armed = True
    registry.promote(name, "2", "challenger", over="1")
    assert not store.armed, "the pin was made"
    # THEN the pin stands in the entries too: 1 is the champion, with the operator's reason, and 2 is retired
    champion = registry.champion(name)
    assert champion is not None and (champion.version, champion.decision) == ("1", "operator")
    assert registry.pinned(name)
    assert [registry.entry(name, v).status for v in ("1", "2", "3")] == ["champion", "retired", "candidate"]


def test_a_promotion_interrupted_between_its_writes_is_repaired_and_can_be_pinned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_sklearn()
    root = tmp_path / "registry"
    registry = _three_versions(LocalObjectStore(root))
    name = "plant-1.line-2"
    registry.promote(name, "1", "first")
    # GIVEN a promotion of 2 that wrote champion.json and stopped before 2's entry said so (1's still does)
    registry.store.put(
        f"{name}/champion.json", msgspec.json.encode({"version": "2", "sha256": registry.entry(name, "2").sha256})
    )
    assert [registry.entry(name, v).status for v in ("1", "2")] == ["champion", "candidate"]
    # WHEN the operator pins the champion (2), whose entry still says candidate
    assert main(["registry", "promote", "--registry", str(root), name, "2", "--reason", "keep it"]) == 0
    # THEN it is pinned, and the entries say what champion.json says
    assert registry.pinned(name)
    assert [registry.entry(name, v).status for v in ("1", "2", "3")] == ["retired", "champion", "candidate"]
    capsys.readouterr()


class LandedThenRefusedStore(LocalObjectStore):
    """A local store whose conditional writes of artifacts land and are then answered as refused (an SDK retry
    of a request that landed)."""

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        landed = super().put_if(key, data, tag)
        return landed and not key.endswith("model.pwf")


def test_a_registration_whose_claim_landed_but_was_answered_as_refused_goes_on(tmp_path: Path) -> None:
    require_sklearn()
    registry = _three_versions(LandedThenRefusedStore(tmp_path))
    assert [registry.entry("plant-1.line-2", v).status for v in ("1", "2", "3")] == ["candidate"] * 3


def test_a_group_whose_model_name_no_batch_could_carry_is_reported_and_the_plants_other_lines_still_train(
    tmp_path: Path,
) -> None:
    require_sklearn()
    assets = simulator_training_assets(SIM, TRAIN, PERIODS)
    long_line = "l" * 60  # plant-1.<60> is 68 characters
    renamed = [
        a if a.line == "line-1" else msgspec.structs.replace(a, line=long_line)
        for a in assets
        if a.line in ("line-1", "line-2")
    ]
    results = retrain(
        renamed,
        train=TRAIN,
        registry=ModelRegistry(LocalObjectStore(tmp_path)),
        evaluator=simulator_evaluator(SIM, TRAIN, PERIODS),
        source={},
    )
    by_name = {r.name: r for r in results}
    refused = by_name[f"plant-1.{long_line}"]
    assert not refused.trained and not refused.promoted and refused.lines == [long_line]
    assert "68 characters, over the 64 a batch may carry" in refused.reason
    assert by_name["plant-1.line-1"].trained  # the plant's other line is not held back by it
