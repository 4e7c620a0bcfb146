"""Hot model swap: a new model is taken up between batches; a refused one leaves the old model scoring."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.edge.bootstrap import build_gateway
from plantwatch.edge.config import GatewayFile, parse_config
from plantwatch.models import ForestModel
from plantwatch.models.artifact import write_artifact
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.model_swap import ModelSwapper

NOW = 1_764_000_000_000
BASELINE = Path(__file__).resolve().parents[3] / "models" / "plant-1.line-1.pwf"


class Constant:
    """A stand-in model: scores every reading with the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, reading: Reading) -> ScoredReading:
        return ScoredReading(reading=reading, score=self.value, anomaly=False)

    def score_many(self, readings: Sequence[Reading]) -> list[ScoredReading]:
        return [self.score(r) for r in readings]


def load(path: Path) -> tuple[Constant, ModelRef]:
    """Loads {"version", "score", "features"}; refuses a feature spec other than this gateway's."""
    doc = json.loads(path.read_text())
    if doc["features"] != ["temperature.mean"]:
        raise ValueError(f"model features {doc['features']} do not match the gateway's ['temperature.mean']")
    return Constant(doc["score"]), ModelRef(name="forest", version=doc["version"])


class OneReading:
    def poll(self, now_ms: int) -> list[Reading]:
        return [
            Reading(
                plant="p", line="l", asset="a", sensor_id="s", sensor_type="temperature", unit="degC",
                ts_ms=now_ms, value=50.0,
            )
        ]  # fmt: skip


def _thresholds_gateway(spool: SqliteSpool) -> Gateway:
    """A gateway of one reading per step, scoring with the original thresholds, sealing a batch every step."""
    return Gateway(
        config=GatewayConfig(gateway_id="gw", plant="p", batch_interval_ms=0),
        sources=[OneReading()],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
    )


def test_swap_then_refuse(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = _thresholds_gateway(spool)
    model_file = tmp_path / "model.json"
    swapper = ModelSwapper(gateway, model_file, load)
    assert swapper.check() is False  # no model file yet: thresholds keep scoring
    gateway.step(NOW)
    model_file.write_text(json.dumps({"version": "7", "score": 0.25, "features": ["temperature.mean"]}))
    assert swapper.check() is True
    assert swapper.check() is False  # unchanged file: nothing to do
    gateway.step(NOW + 1)
    model_file.write_text(json.dumps({"version": "8", "score": 0.75, "features": ["vibration.rms"]}))
    assert swapper.check() is False
    assert "do not match" in caplog.text
    gateway.step(NOW + 2)
    gateway.flush()
    batches = [decode_payload(b.payload, now_ms=NOW).batch for b in spool.peek(10)]
    assert [(b.model.version, b.readings[0].score) for b in batches if b] == [("1", 0.0), ("7", 0.25), ("7", 0.25)]
    spool.close()


def _standalone(tmp_path: Path, model_path: Path) -> GatewayFile:
    """A gateway of plant-1's simulated line-1 that keeps its batches in its spool (no uplink, no floor)."""
    return parse_config(
        {
            "gateway_id": "gw-line-1",
            "plant": "plant-1",
            "data_dir": str(tmp_path),
            "sources": [{"kind": "simulator", "line": "line-1"}],
            "uplink": {"transport": "none"},
            "alerts": {"floor": "none"},
            "model_path": str(model_path),
        }
    )


def _variant(model: ForestModel, path: Path, **info: str) -> None:
    """Write ``model`` under another name or version (same trees and feature specification)."""
    write_artifact(ForestModel(model.trees, msgspec.structs.replace(model.info, **info)), path)


def test_a_gateway_with_a_model_path_scores_with_the_forest_and_swaps_keeping_its_windows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    baseline = ForestModel.load(BASELINE)
    model_file = tmp_path / "model.pwf"
    shutil.copy2(BASELINE, model_file)
    # GIVEN a gateway configured with line-1's baseline model
    runtime = build_gateway(_standalone(tmp_path, model_file))
    gateway = runtime.gateway
    assert runtime.swapper is not None
    try:
        # THEN it scores with the forest from its first reading, and its batches name the model
        assert isinstance(gateway.scorer, AnomalyDetector)
        assert gateway.header.model == baseline.ref
        for i in range(40):
            gateway.step(NOW + i * 1000)
        first = gateway.scorer
        # WHEN a new version of the model lands in the file
        _variant(baseline, model_file, version="2")
        assert runtime.swapper.check() is True
        # THEN it scores from now on, continuing the same feature windows
        assert isinstance(gateway.scorer, AnomalyDetector)
        assert gateway.header.model == ModelRef(name="plant-1.line-1", version="2")
        assert gateway.scorer.windows is first.windows
        # WHEN another plant's model, or a damaged file, lands instead: refused, version 2 keeps scoring
        _variant(baseline, model_file, name="plant-9.line-1", version="3")
        assert runtime.swapper.check() is False
        model_file.write_bytes(b"PK\x03\x04 not a model")
        assert runtime.swapper.check() is False
        assert gateway.header.model.version == "2"
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 2
        assert "is not a model of plant 'plant-1'" in refusals[0]
        gateway.step(NOW + 41_000)
        gateway.flush()
        batches = [decode_payload(b.payload, now_ms=NOW).batch for b in runtime.spool.peek(1000)]
        assert {b.model.version for b in batches if b is not None} == {"baseline", "2"}
    finally:
        runtime.stop(drain_s=0)


def test_a_gateway_without_its_model_file_scores_with_thresholds_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = build_gateway(_standalone(tmp_path, tmp_path / "missing.pwf"))
    try:
        assert runtime.gateway.header.model == THRESHOLD_MODEL
        assert isinstance(runtime.gateway.scorer, ThresholdScorer)
        assert any("no usable model" in r.getMessage() for r in caplog.records)
    finally:
        runtime.stop(drain_s=0)


def test_a_loader_failing_unexpectedly_refuses_that_file_once_and_keeps_the_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path] = []

    def broken(path: Path) -> tuple[Constant, ModelRef]:
        calls.append(path)
        raise RuntimeError("a file no check foresaw")

    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = _thresholds_gateway(spool)
    model_file = tmp_path / "model.pwf"
    model_file.write_bytes(b"odd")
    swapper = ModelSwapper(gateway, model_file, broken)
    assert swapper.check() is False
    assert swapper.check() is False  # the same file is not loaded again
    assert len(calls) == 1
    assert gateway.header.model == THRESHOLD_MODEL
    assert "RuntimeError" in next(iter(swapper.refused.values()))
    assert "refused" in caplog.text
    spool.close()


def _with_policy(model: ForestModel, path: Path, version: str, policy: dict[str, object] | None) -> None:
    """Write ``model`` as ``version`` whose training records ``policy`` as its alert policy (None: records none)."""
    training = {k: v for k, v in model.info.training.items() if k != "alert_policy"}
    if policy is not None:
        training["alert_policy"] = policy
    write_artifact(
        ForestModel(model.trees, msgspec.structs.replace(model.info, version=version, training=training)), path
    )


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        # nothing set: the model's counts (the baseline is tuned with 3 and 5), never below the defaults 3 and 5
        ({}, [(3, 5), (4, 7), (3, 5), (3, 5)]),
        # the operator's raise_after stays whatever the model says; the unset clear_after follows
        ({"raise_after": 2}, [(2, 5), (2, 7), (2, 5), (2, 5)]),
    ],
)
def test_anomaly_alerts_debounce_at_least_as_the_scoring_model_was_tuned_with(
    tmp_path: Path, alerts: dict[str, int], expected: list[tuple[int, int]]
) -> None:
    baseline = ForestModel.load(BASELINE)
    assert baseline.debounce is not None and (baseline.debounce.raise_after, baseline.debounce.clear_after) == (3, 5)
    model_file = tmp_path / "model.pwf"
    shutil.copy2(BASELINE, model_file)
    config = _standalone(tmp_path, model_file)
    config = msgspec.structs.replace(config, alerts=msgspec.structs.replace(config.alerts, **alerts))
    # GIVEN a gateway that starts with the baseline, tuned with N = 3, M = 5
    runtime = build_gateway(config)
    assert runtime.swapper is not None
    seen = [(runtime.gateway.alerts.raise_after, runtime.gateway.alerts.clear_after)]
    try:
        # WHEN models tuned otherwise, one recording no counts, and a malformed one follow each other
        for version, policy in (
            ("2", {"threshold": 0.7, "rules": True, "raise_after": 4, "clear_after": 7}),
            ("3", None),
            ("4", {"threshold": 0.7, "raise_after": 0, "clear_after": 5}),
        ):
            _with_policy(baseline, model_file, version, policy)
            assert runtime.swapper.check() is True
            assert runtime.gateway.header.model.version == version
            seen.append((runtime.gateway.alerts.raise_after, runtime.gateway.alerts.clear_after))
        # THEN the counts are the model's where larger, the defaults for a model naming none or unusable ones, the
        # operator's where set
        assert seen == expected
    finally:
        runtime.stop(drain_s=0)
