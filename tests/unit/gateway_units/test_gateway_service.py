"""The gateway pipeline's own rules: a failing spool write loses no reading; offline sensors raise alerts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.reading import Reading, ScoredReading, SensorRef
from plantwatch.contract.summaries import ScoreSummaryMessage, decode_summary
from plantwatch.contract.topics import summary_topic
from plantwatch.domain.alerts import OFFLINE, decode_event
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.models import ForestModel
from plantwatch.ports import PutOutcome
from plantwatch.services.gateway import WINDOWS_STATE, Gateway, GatewayConfig

NOW = 1_764_000_000_000
REF = SensorRef(line="l", asset="a", sensor_id="s", sensor_type="temperature", unit="degC")


class Ticker:
    """One reading per poll; reports its sensor offline while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False

    def poll(self, now_ms: int) -> list[Reading]:
        if self.down:
            return []
        return [
            Reading(
                plant="p", line="l", asset="a", sensor_id="s", sensor_type="temperature", unit="degC",
                ts_ms=now_ms, value=50.0,
            )
        ]  # fmt: skip

    def offline(self) -> list[SensorRef]:
        return [REF] if self.down else []


class FlakyDisk(SqliteSpool):
    """A spool whose first batch write fails like a full or failing disk."""

    failures = 1

    def put(
        self, topic: str, batches: Sequence[tuple[int, bytes]], readings: Sequence[int] | None = None
    ) -> PutOutcome:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        return super().put(topic, batches, readings)


class Floor:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def notify(self, payloads: Sequence[bytes]) -> None:
        self.payloads.extend(payloads)


def test_a_failed_spool_write_keeps_the_readings_for_the_next_flush(tmp_path: Path) -> None:
    spool = FlakyDisk(tmp_path / "spool.sqlite")
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw", plant="p", batch_interval_ms=0),
        sources=[Ticker()],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
    )
    with pytest.raises(OSError, match="disk"):
        gateway.step(NOW)
    gateway.step(NOW + 1)
    [item] = spool.peek(10)
    batch = decode_payload(item.payload, now_ms=NOW).batch
    assert batch is not None
    assert [r.reading.ts_ms for r in batch.readings] == [NOW, NOW + 1]
    assert batch.seq == 1
    spool.close()


def test_a_sensor_that_stops_answering_raises_an_offline_alert_and_clears_when_back(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    source, floor = Ticker(), Floor()
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw", plant="p"),
        sources=[source],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
        notifiers=[floor],
    )
    gateway.step(NOW)
    source.down = True
    gateway.step(NOW + 1000)
    gateway.step(NOW + 2000)  # still down: no second alert
    source.down = False
    gateway.step(NOW + 3000)
    events = [decode_event(p) for p in floor.payloads]
    assert [(e.event, e.alert.kind, e.alert.sensor_id) for e in events] == [
        ("raised", OFFLINE, "s"),
        ("cleared", OFFLINE, "s"),
    ]
    spool.close()


class ForestLike(ThresholdScorer):
    """Threshold scoring plus a forest score of 0.4 per reading, handed out like the AnomalyDetector's."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[ForestModel, list[tuple[str, int, float]]]] = []

    def score_many(self, readings: Sequence[Reading]) -> list[ScoredReading]:
        self.kept.append((BASELINE, [(r.line, r.ts_ms, 0.4) for r in readings]))
        return super().score_many(readings)

    def take_model_scores(self) -> list[tuple[ForestModel, list[tuple[str, int, float]]]]:
        kept, self.kept = self.kept, []
        return kept


BASELINE = ForestModel.load(Path(__file__).resolve().parents[3] / "models" / "plant-1.line-1.pwf")


def summaries(spool: SqliteSpool) -> list[ScoreSummaryMessage]:
    return [decode_summary(i.payload) for i in spool.peek(1000) if i.topic == summary_topic("gw")]


def test_a_restart_continues_the_open_summary_window_once(tmp_path: Path) -> None:
    def started(spool: SqliteSpool) -> Gateway:
        config = GatewayConfig(gateway_id="gw", plant="p", batch_interval_ms=0, summary_window_ms=60_000)
        return Gateway(config=config, sources=[Ticker()], scorer=ForestLike(), model=THRESHOLD_MODEL, spool=spool)

    assert NOW % 60_000 == 0
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = started(spool)
    for s in range(30):
        gateway.step(NOW + s * 1000)
    gateway.stop()  # e.g. a model rollout restarts the component half way through the minute
    assert summaries(spool) == [] and spool.state(WINDOWS_STATE) is not None
    spool.close()

    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = started(spool)
    assert spool.state(WINDOWS_STATE) is None  # taken: a crash from here on can't continue it twice
    for s in range(30, 61):
        gateway.step(NOW + s * 1000)
    [summary] = summaries(spool)
    assert (summary.start_ms, summary.end_ms, summary.total) == (NOW, NOW + 60_000, 60)
    started(spool)  # a start after a crash (no stop): nothing kept, nothing continued twice
    assert summaries(spool) == [summary]
