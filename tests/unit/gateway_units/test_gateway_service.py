"""The gateway pipeline's own rules: a failing spool write loses no reading, alert event or score summary;
offline sensors raise alerts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.reading import Reading, ScoredReading, SensorRef
from plantwatch.contract.summaries import ScoreSummaryMessage, decode_summary
from plantwatch.contract.topics import alert_topic, summary_topic
from plantwatch.domain.alerts import OFFLINE, SPOOL_FULL, decode_event
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.features import FeatureSpec
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
        return [] if self.down else self.readings(now_ms)

    def readings(self, now_ms: int) -> list[Reading]:
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


def _watched(spool: SqliteSpool, source: Ticker, floor: Floor) -> Gateway:
    """A threshold-scoring gateway on one ticking sensor with a floor channel."""
    config = GatewayConfig(gateway_id="gw", plant="p")
    return Gateway(
        config=config, sources=[source], scorer=ThresholdScorer(), model=THRESHOLD_MODEL, spool=spool, notifiers=[floor]
    )


def test_a_sensor_that_stops_answering_raises_an_offline_alert_and_clears_when_back(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    source, floor = Ticker(), Floor()
    gateway = _watched(spool, source, floor)
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


def _started(spool: SqliteSpool, window_ms: int = 60_000, batch_ms: int = 0) -> Gateway:
    config = GatewayConfig(gateway_id="gw", plant="p", batch_interval_ms=batch_ms, summary_window_ms=window_ms)
    return Gateway(config=config, sources=[Ticker()], scorer=ForestLike(), model=THRESHOLD_MODEL, spool=spool)


def test_a_restart_continues_the_open_summary_window_once(tmp_path: Path) -> None:
    assert NOW % 60_000 == 0
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = _started(spool)
    for s in range(30):
        gateway.step(NOW + s * 1000)
    gateway.stop()  # e.g. a model rollout restarts the component half way through the minute
    assert summaries(spool) == [] and spool.state(WINDOWS_STATE) is not None
    spool.close()

    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = _started(spool)
    for s in range(30, 61):
        gateway.step(NOW + s * 1000)
    [summary] = summaries(spool)
    assert (summary.start_ms, summary.end_ms, summary.total) == (NOW, NOW + 60_000, 60)
    # A start after a crash right after the window closed (no stop): the windows kept with the summary are
    # continued, so the closed minute is not summarised again and the next one keeps its first reading.
    gateway = _started(spool)
    for s in range(61, 121):
        gateway.step(NOW + s * 1000)
    first, second = summaries(spool)
    assert first == summary
    assert (second.start_ms, second.total) == (NOW + 60_000, 60)


def test_a_crash_loses_at_most_a_checkpoint_interval_of_an_open_window(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN an hour's window and a gateway killed 150 s into it (no stop), THEN the next start continues the
    window with the scores up to the last checkpoint (120 s), and none twice."""
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    gateway = _started(spool, window_ms=3_600_000, batch_ms=60_000)
    assert NOW % 3_600_000 == 0
    for s in range(150):
        gateway.step(NOW + s * 1000)
    assert spool.state(WINDOWS_STATE) is not None and summaries(spool) == []
    del gateway  # killed: stop() never runs
    with caplog.at_level("INFO", logger="plantwatch.services.gateway"):
        gateway = _started(spool, window_ms=3_600_000, batch_ms=60_000)
    assert "continued open score-summary windows with 121 scores" in caplog.text  # steps 0..120
    for s in range(150, 3601):
        gateway.step(NOW + s * 1000)
    [summary] = [decode_summary(i.payload) for i in spool.peek(10_000) if i.topic == summary_topic("gw")]
    assert (summary.start_ms, summary.total) == (NOW, 121 + 3600 - 150)  # 121..149 were lost with the crash


class FlakyOutbox(SqliteSpool):
    """A spool whose next ``failures`` writes of small messages (alert events, summaries) fail like a bad disk."""

    failures = 0
    topics: list[str]

    def put_alerts(
        self, topic: str, payloads: Sequence[bytes], state: bytes | None = None, *, state_name: str = "alerts"
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        super().put_alerts(topic, payloads, state, state_name=state_name)


def test_a_failed_summary_write_summarises_the_window_on_the_next_step_once(tmp_path: Path) -> None:
    """GIVEN a minute's window whose summary write fails, THEN the next step stores its summary, with every
    score of that minute, once; the window after it is summarised as usual."""
    spool = FlakyOutbox(tmp_path / "spool.sqlite")
    gateway = _started(spool)
    for s in range(60):
        gateway.step(NOW + s * 1000)
    spool.failures = 1
    with pytest.raises(OSError, match="disk"):
        gateway.step(NOW + 60_000)  # the first score past the minute closes it; its summary write fails
    assert summaries(spool) == []
    for s in range(61, 121):
        gateway.step(NOW + s * 1000)
    first, second = summaries(spool)
    assert (first.start_ms, first.total) == (NOW, 60)
    assert (second.start_ms, second.total) == (NOW + 60_000, 60)
    assert gateway.counters.summaries == 2
    spool.close()


def test_a_failed_alert_write_reaches_the_cloud_on_the_next_step_and_the_floor_once(tmp_path: Path) -> None:
    spool = FlakyOutbox(tmp_path / "spool.sqlite")
    source, floor = Ticker(), Floor()
    gateway = _watched(spool, source, floor)
    gateway.step(NOW)
    source.down = True
    spool.failures = 1
    with pytest.raises(OSError, match="disk"):
        gateway.step(NOW + 1000)  # raised on the floor; the spool refuses it
    assert [decode_event(p).event for p in floor.payloads] == ["raised"]
    source.down = False
    gateway.step(NOW + 2000)  # cleared: spooled after the raise it follows
    cloud = [decode_event(i.payload) for i in spool.peek(100) if i.topic == alert_topic("gw")]
    assert [(e.event, e.alert.kind) for e in cloud] == [("raised", OFFLINE), ("cleared", OFFLINE)]
    assert [decode_event(p).event for p in floor.payloads] == ["raised", "cleared"]
    assert spool.alert_state() is not None and not gateway.alerts.active()
    spool.close()


def test_the_gateway_counts_asset_alerts_on_the_scoring_models_first_feature_type(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    detector = AnomalyDetector(spec=BASELINE.feature_spec or FeatureSpec(), model=BASELINE)
    gateway = _watched(spool, Ticker(), Floor())
    assert gateway.alerts.model_clock is None  # thresholds alone: no model verdicts to count per asset
    gateway.set_model(detector, BASELINE.ref)
    assert gateway.alerts.model_clock == BASELINE.feature_spec.sensor_types[0] == "temperature"
    gateway.set_model(ThresholdScorer(), THRESHOLD_MODEL)
    assert gateway.alerts.model_clock is None
    spool.close()


class TwoLines:
    """One reading of line-1 and one of line-2 per poll."""

    def poll(self, now_ms: int) -> list[Reading]:
        return [
            Reading(plant="p", line=line, asset=f"{line}-a", sensor_id=f"{line}-s", sensor_type="temperature",
                    unit="degC", ts_ms=now_ms, value=50.0)
            for line in ("line-1", "line-2")
        ]  # fmt: skip


def test_a_full_spool_alerts_on_every_line_it_loses_readings_of_and_clears_them_all(tmp_path: Path) -> None:
    """GIVEN a gateway of two lines whose spool refuses their batches, THEN each line's operators get a spool_full
    alert on their own line (a line view, a line-scoped token and the line's health all see it); when the spool
    takes batches again both clear, and one raised before alerts were per line (restored state) clears too."""
    spool = SqliteSpool(tmp_path / "spool.sqlite", budget_bytes=1, when_full="reject")
    floor = Floor()
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw", plant="p", batch_interval_ms=0, summary_window_ms=0),
        sources=[TwoLines()], scorer=ThresholdScorer(), model=THRESHOLD_MODEL, spool=spool, notifiers=[floor],
    )  # fmt: skip
    legacy = SensorRef(line="gateway", asset="gw", sensor_id="spool", sensor_type="spool", unit="bytes")
    assert gateway.alerts.condition(legacy, SPOOL_FULL, True, NOW) is not None  # as an older gateway left it
    gateway.step(NOW)
    raised = [decode_event(p).alert for p in floor.payloads if decode_event(p).event == "raised"]
    assert sorted((a.line, a.sensor_id, a.kind) for a in raised) == [
        ("line-1", "spool.line-1", SPOOL_FULL),
        ("line-2", "spool.line-2", SPOOL_FULL),
    ]
    assert len({a.alert_id for a in raised}) == 2
    spool.budget_bytes = None  # room again
    gateway.step(NOW + 1000)
    cleared = [decode_event(p).alert for p in floor.payloads if decode_event(p).event == "cleared"]
    assert sorted(a.sensor_id for a in cleared) == ["spool", "spool.line-1", "spool.line-2"]
    assert gateway.alerts.active() == []
    spool.close()


def test_a_stop_spools_the_alert_events_a_failed_write_kept_back(tmp_path: Path) -> None:
    spool = FlakyOutbox(tmp_path / "spool.sqlite")
    source = Ticker()
    gateway = _watched(spool, source, Floor())
    gateway.step(NOW)
    source.down = True
    spool.failures = 1
    with pytest.raises(OSError, match="disk"):
        gateway.step(NOW + 1000)  # the offline alert is raised on the floor; the spool refuses it
    spool.failures = 1
    with pytest.raises(OSError, match="disk"):
        gateway.flush()  # the readings are sealed; the alert write fails once more
    gateway.stop()  # nothing pending now: a rollout restarts the component before the next step
    cloud = [decode_event(i.payload) for i in spool.peek(100) if i.topic == alert_topic("gw")]
    assert [(e.event, e.alert.kind) for e in cloud] == [("raised", OFFLINE)]
    spool.close()


class Asset(Ticker):
    """One asset's three sensors, a reading each a second, quiet while ``down``."""

    def readings(self, now_ms: int) -> list[Reading]:
        return [
            Reading(plant="p", line="line-1", asset="a1", sensor_id=f"a1-{t[:4]}", sensor_type=t, unit="u",
                    ts_ms=now_ms, value=50.0)
            for t in ("temperature", "vibration", "pressure")
        ]  # fmt: skip


def test_an_outage_does_not_clear_the_asset_alert_the_model_still_raises(tmp_path: Path) -> None:
    """GIVEN a model that flags every window it judges (threshold 0), WHEN the asset's sensors go quiet for five
    minutes, THEN its asset alert holds through the readings after the outage that the model does not judge (its
    windows span the outage) and stays the one alert: no clear and raise again under a new id."""
    flagging = ForestModel(BASELINE.trees, msgspec.structs.replace(BASELINE.info, threshold=0.0))
    spec = BASELINE.feature_spec or FeatureSpec()
    source, floor = Asset(), Floor()
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw", plant="p", summary_window_ms=0),
        sources=[source], scorer=AnomalyDetector(spec=spec, model=flagging), model=flagging.ref,
        spool=SqliteSpool(tmp_path / "spool.sqlite"), notifiers=[floor],
    )  # fmt: skip
    for k in range(20):
        gateway.step(NOW + k * 1000)
    source.down = True
    gateway.step(NOW + 200_000)
    source.down = False
    for k in range(30):
        gateway.step(NOW + 320_000 + k * 1000)
    events = [decode_event(p) for p in floor.payloads if decode_event(p).alert.kind == "asset_anomaly"]
    assert [e.event for e in events] == ["raised"]
    assert spec.window - 1 > gateway.alerts.clear_after  # enough unjudged readings to have cleared it before
