"""Hot reload between batches (no reading lost or scored twice), and drift on a shifted operating point."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import msgspec
import numpy as np
import pytest

from plantwatch.adapters.object_store import LocalObjectStore
from plantwatch.adapters.simulator_source import SimulatorSource
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.decode import decode_payload
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.features import FeatureSpec
from plantwatch.domain.simulator import DAY_MS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.local.platform import LocalPlatform, PlatformOptions
from plantwatch.models import ForestModel
from plantwatch.models.datasets import simulator_assets
from plantwatch.models.drift import (
    DriftMonitor,
    DriftStatus,
    ScoreSummary,
    merge_summaries,
    psi,
    summarise_scores,
)
from plantwatch.models.pipeline import train_on_simulator
from plantwatch.models.registry import ModelRegistry
from plantwatch.models.trainer import TrainConfig, with_training
from plantwatch.services.drift_watch import DriftTracker
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.model_watch import ModelWatch, RegistryModelSource
from tests.unit.lifecycle_support import PERIODS, SIM, TRAIN, ShiftedPlant
from tests.unit.ml_support import require_sklearn

NAME = "plant-1.line-1"
HOUR = 3_600_000
SPEC = TrainConfig().spec


@pytest.fixture(scope="module")
def outcome():  # type: ignore[no-untyped-def]
    require_sklearn()
    return train_on_simulator(SIM, TRAIN, PERIODS)


def _watching_v1(tmp_path: Path, v1: ForestModel) -> tuple[ModelRegistry, AnomalyDetector, ModelWatch]:
    """A registry whose champion is ``v1``, a detector scoring with it, and a watch on the registry."""
    registry = ModelRegistry(LocalObjectStore(tmp_path / "registry"))
    registry.register(v1, metrics={})
    registry.decide(NAME, "1", None)
    detector = AnomalyDetector(spec=TRAIN.spec, thresholds=ThresholdScorer(), model=registry.load(NAME, "1"))
    return registry, detector, ModelWatch(detector, RegistryModelSource(registry, NAME))


def test_a_promoted_model_is_swapped_in_between_batches(tmp_path: Path, outcome) -> None:  # type: ignore[no-untyped-def]
    registry, detector, watch = _watching_v1(tmp_path, outcome.models[NAME])
    v1 = outcome.models[NAME]
    spool = SqliteSpool(tmp_path / "spool.db")
    simulator = PlantSimulator(SIM)
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw-1", plant=SIM.plant, batch_interval_ms=5000),
        sources=[SimulatorSource(simulator, "line-1")],
        scorer=detector,  # type: ignore[arg-type]
        model=detector.model_ref,
        spool=spool,
    )
    start = 1_790_000_000_000  # November 2026
    promoted_at = None
    for k in range(0, 240):
        now = start + k * 1000 + 500  # mid-tick: every poll yields one tick
        if k == 97:  # GIVEN a challenger promoted in the registry while the gateway runs (mid-interval)
            assert v1.debounce is not None
            assert gateway.alerts.raise_after == max(3, v1.debounce.raise_after)  # at least what v1 was tuned with
            tuned = {**v1.info.training["alert_policy"], "raise_after": v1.debounce.raise_after + 5}
            v2 = with_training(v1, {"alert_policy": tuned}, version="2", threshold=0.99)
            registry.register(v2, metrics={})
            registry.decide(NAME, "2", None)
            assert watch.poll()
            assert watch.pending is not None
            promoted_at = now
        watch.apply(gateway)  # WHEN the gateway loop reaches its next step
        gateway.step(now)
    gateway.flush()
    # THEN every reading was spooled exactly once, each batch names one model, v1 strictly before v2
    readings: list[tuple[str, int]] = []
    versions: list[str] = []
    for batch in spool.peek(10_000):
        if batch.topic != gateway.topic:  # alert events share the spool; only batches are checked here
            continue
        decoded = decode_payload(batch.payload, now_ms=start + DAY_MS)
        assert decoded.batch is not None
        assert not decoded.rejections
        versions.append(decoded.batch.model.version)
        readings.extend((s.reading.sensor_id, s.reading.ts_ms) for s in decoded.batch.readings)
        stamps = [s.reading.ts_ms for s in decoded.batch.readings]
        if decoded.batch.model.version == "1":
            assert max(stamps) <= promoted_at
        else:
            assert min(stamps) > promoted_at - 1000
    sensors = len(simulator.sensors_of("line-1"))
    assert len(readings) == len(set(readings)) == 240 * sensors
    assert versions == sorted(versions)
    assert set(versions) == {"1", "2"}
    assert detector.model_ref.version == "2"
    assert gateway.alerts.raise_after == v1.debounce.raise_after + 5  # v2 debounces more: its count came with it
    assert not watch.poll()  # nothing new: no second swap


def test_a_broken_promotion_keeps_the_current_model(tmp_path: Path, outcome) -> None:  # type: ignore[no-untyped-def]
    registry, detector, watch = _watching_v1(tmp_path, outcome.models[NAME])
    running = detector.model
    # GIVEN version 2 promoted, but its artifact truncated on disk
    registry.register(with_training(outcome.models[NAME], {}, version="2"), metrics={})
    registry.decide(NAME, "2", None)
    artifact = tmp_path / "registry" / NAME / "versions" / "2" / "model.pwf"
    artifact.write_bytes(artifact.read_bytes()[:-10])
    # WHEN the watch polls, THEN it stages nothing and the gateway keeps scoring with version 1
    assert not watch.poll()
    assert watch.pending is None
    assert detector.model is running
    # AND the refusal is for that champion only: a sound version 3 promoted after it is staged
    registry.register(with_training(outcome.models[NAME], {}, version="3"), metrics={})
    registry.decide(NAME, "3", None)
    assert watch.poll()
    assert watch.pending is not None
    assert watch.pending.version == "3"


@pytest.mark.parametrize("step", ["flush", "_summarise"])
def test_a_swap_whose_sealing_write_fails_stays_staged_for_the_next_boundary(  # type: ignore[no-untyped-def]
    tmp_path: Path, outcome, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    registry, detector, watch = _watching_v1(tmp_path, outcome.models[NAME])
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw-1", plant=SIM.plant, batch_interval_ms=5000),
        sources=[SimulatorSource(PlantSimulator(SIM), "line-1")],
        scorer=detector,  # type: ignore[arg-type]
        model=detector.model_ref,
        spool=SqliteSpool(tmp_path / "spool.db"),
    )
    registry.register(with_training(outcome.models[NAME], {}, version="2"), metrics={})
    registry.decide(NAME, "2", None)
    assert watch.poll()
    # GIVEN the write that seals version 1's readings, or the one that spools its score summaries, fails once (a
    # locked spool, a disk error)
    write = getattr(gateway, step)
    failures = iter([sqlite3.OperationalError("database is locked")])

    def flaky_write() -> None:
        for error in failures:
            raise error
        write()

    monkeypatch.setattr(gateway, step, flaky_write)
    # WHEN the swap is tried, THEN it raises, and version 1 still scores and still names the batches
    with pytest.raises(sqlite3.OperationalError):
        watch.apply(gateway)
    assert (detector.model_ref.version, gateway.header.model.version) == ("1", "1")
    # AND at the next boundary version 2 is swapped in, though the registry did not change in between
    assert not watch.poll()
    ref = watch.apply(gateway)
    assert ref is not None
    assert (ref.version, detector.model_ref.version, gateway.header.model.version) == ("2", "2", "2")


def _daily_status(simulator: PlantSimulator, model: ForestModel, monitor: DriftMonitor, day: int) -> DriftStatus:
    """Hourly score summaries of line-1 (as gateways send them), merged over the day and checked."""
    start = day * DAY_MS
    assets = simulator_assets(simulator, SPEC, start_ms=start, end_ms=start + DAY_MS, lines=["line-1"])
    hourly = []
    for h in range(24):
        a, b = start + h * HOUR, start + (h + 1) * HOUR
        scores = np.concatenate([model.anomaly_score(x.rows[(x.ts >= a) & (x.ts < b)]) for x in assets])
        hourly.append(summarise_scores("line-1", a, b, scores))
    return monitor.check(merge_summaries(hourly))


def test_drift_is_raised_when_a_line_operating_point_shifts_and_not_on_the_healthy_baseline() -> None:
    # the committed baseline (trained on a week of the healthy plant), on days it was not trained on
    model = ForestModel.load(Path(__file__).resolve().parents[2] / "models" / f"{NAME}.pwf")
    monitor = DriftMonitor(model)
    healthy = msgspec.structs.replace(SimulationConfig(), fault_after_s=1e9, fault_every_s=0.0)
    baseline = _daily_status(PlantSimulator(healthy), model, monitor, day=10)
    assert not baseline.drifted, baseline.psi
    # GIVEN line-1's pressure operating point moved up by 12 bar (2 x the spread between its assets)
    shifted = _daily_status(ShiftedPlant(healthy, line="line-1", shift=12.0, from_ms=0), model, monitor, day=11)
    # THEN the day's PSI crosses the threshold, and three such days in a row ask for retraining
    assert shifted.drifted, shifted.psi
    assert shifted.psi > 4 * baseline.psi
    assert monitor.should_retrain([baseline, shifted, shifted, shifted])
    assert not monitor.should_retrain([shifted, shifted, baseline])


def test_psi_is_zero_for_the_reference_itself_and_grows_with_the_shift() -> None:
    reference = [0.0] * 8 + [0.25, 0.5, 0.25] + [0.0] * 9
    assert psi(reference, [int(400 * q) for q in reference]) == pytest.approx(0.0, abs=1e-9)
    small = [0] * 8 + [50, 200, 150] + [0] * 9
    large = [0] * 9 + [50, 200, 150] + [0] * 8
    assert 0 < psi(reference, small) < psi(reference, large)


def test_drift_tracker_triggers_retraining_once_per_drift_episode() -> None:
    model = ForestModel.load(Path(__file__).resolve().parents[2] / "models" / f"{NAME}.pwf")
    reference = model.info.training["score_histogram"]
    calls: list[str] = []
    tracker = DriftTracker({"line-1": DriftMonitor(model, min_scores=10)}, window=2, consecutive=2,
                           on_drift=lambda line, status: calls.append(line))  # fmt: skip
    healthy = [int(1000 * q) for q in reference]
    shifted = [0] * (len(reference) - 1) + [1000]  # every score in the top bin

    def feed(counts: list[int], hour: int) -> DriftStatus | None:
        return tracker.observe(
            ScoreSummary(line="line-1", start_ms=hour, end_ms=hour + 1, counts=counts, mean=0, p99=0)
        )

    assert feed(healthy, 0) is None  # not a full window yet
    first = feed(healthy, 1)
    assert first is not None
    assert not first.drifted
    for hour in range(2, 8):
        feed(shifted, hour)
    assert calls == ["line-1"]  # once, although every later check drifted too
    status = tracker.status("line-1")
    assert status is not None
    assert status.drifted
    for hour in range(8, 10):
        feed(healthy, hour)
    for hour in range(10, 14):
        feed(shifted, hour)
    assert calls == ["line-1", "line-1"]  # a new drift episode after a healthy check
    assert tracker.observe(ScoreSummary(line="line-9", start_ms=0, end_ms=1, counts=healthy, mean=0, p99=0)) is None


def test_a_champion_the_gateway_refuses_is_logged_once_not_at_every_poll(
    tmp_path: Path,
    outcome,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, detector, watch = _watching_v1(tmp_path, outcome.models[NAME])
    v1 = outcome.models[NAME]
    # GIVEN a champion with other features than the gateway's (promoted with --force)
    other = with_training(v1, {}, version="2")
    other = ForestModel(
        other.trees, msgspec.structs.replace(other.info, feature_spec=FeatureSpec(window=TRAIN.window + 5))
    )
    registry.register(other, metrics={})
    registry.promote(NAME, "2", "forced")
    # WHEN the watch polls again and again
    with caplog.at_level(logging.ERROR, logger="plantwatch.services.model_watch"):
        polls = [watch.poll() for _ in range(5)]
    # THEN it is refused, logged once, and v1 keeps scoring; a later usable champion is taken
    assert polls == [False] * 5
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    assert detector.model_ref.version == "1"
    # AND a usable champion that fails to load once (a disk or S3 hiccup) is tried again at the next poll
    registry.register(with_training(v1, {}, version="3"), metrics={})
    registry.promote(NAME, "3", "fixed")
    load = watch.source.load
    failures = iter([OSError("connection reset")])

    def flaky(version: str, sha256: str) -> ForestModel:
        for error in failures:
            raise error
        return load(version, sha256)

    watch.source.load = flaky  # type: ignore[method-assign]
    assert not watch.poll()
    assert watch.poll()


def test_a_local_line_without_a_baseline_model_picks_up_its_registry_champion(tmp_path: Path) -> None:
    # GIVEN a local platform with no baseline models, and a champion for line-2 in its registry
    registry = ModelRegistry(LocalObjectStore(tmp_path / "data" / "registry"))
    baseline = ForestModel.load(Path(__file__).resolve().parents[2] / "models" / "plant-1.line-2.pwf")
    registry.register(with_training(baseline, {}, version="1"), metrics={})
    registry.decide("plant-1.line-2", "1", None)
    options = PlatformOptions(data_dir=tmp_path / "data", models_dir=tmp_path / "no-models", port=1, mqtt_port=1)
    platform = LocalPlatform(options, out=lambda line: None)
    try:
        # WHEN the platform polls the registry and steps its gateways
        platform._poll_models()
        platform._gateways_step()
        # THEN line-2's gateway scores with the champion, the others with thresholds and limits until one is promoted
        refs = {g.config.gateway_id: g.header.model for g in platform.gateways}
        assert refs["gw-line-2"] == ModelRef(name="plant-1.line-2", version="1")
        assert refs["gw-line-1"] == refs["gw-line-3"] == THRESHOLD_MODEL
        assert sorted(platform.watches) == ["gw-line-1", "gw-line-2", "gw-line-3"]
    finally:
        platform.archive.close()
        platform.store.close()
        platform.stream.close()
