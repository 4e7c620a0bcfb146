"""Hot model swap: a new model is taken up between batches; a refused one leaves the old model scoring."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.model_swap import ModelSwapper

NOW = 1_764_000_000_000


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


def test_swap_then_refuse(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw", plant="p", batch_interval_ms=0),
        sources=[OneReading()],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
    )
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
