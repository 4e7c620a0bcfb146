"""Drift end to end on the gateway's real path: simulator -> forest -> score summaries in the SQLite spool ->
stream handler -> DuckDB -> drift per line. Raised when a line's operating point shifts, not on the healthy
baseline, however many gateways report the line; retraining is asked for once per drift episode, and a
re-delivered summary does not ask again."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from plantwatch.adapters.duckdb_drift import DuckDBDrift
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.adapters.simulator_source import SimulatorSource
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.cloud.stream_handler import StreamHandler, kinesis_event
from plantwatch.contract.summaries import decode_summary, encode_summary
from plantwatch.contract.topics import is_summary_topic, summary_topic
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.simulator import DAY_MS, SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import ThresholdScorer
from plantwatch.models import ForestModel
from plantwatch.ports import StreamRecord
from plantwatch.services.analytics import Scope
from plantwatch.services.drift_reports import DriftConfig, DriftIngest, RetrainRequest, drift_report
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.stream_processing import StreamProcessor
from tests.unit.lifecycle_support import ShiftedPlant

MODEL = Path(__file__).resolve().parents[2] / "models" / "plant-1.line-1.pwf"
HOUR = 3_600_000
#: the gateway steps once a simulated minute: every reading is scored, the forest verdict once a minute per asset
STEP_MS = 60_000
HEALTHY = msgspec.structs.replace(SimulationConfig(), fault_after_s=1e9, fault_every_s=0.0)
SCOPE = Scope(subject="t", plants=("plant-1",))


class Clock:
    def __init__(self) -> None:
        self.ms = 0

    def now_ms(self) -> int:
        return self.ms


def run_gateway(tmp_path: Path, simulator: PlantSimulator, start_ms: int, hours: int) -> list[StreamRecord]:
    """Run one line's gateway over ``hours`` of simulated time; the spool's summary messages as stream records."""
    model = ForestModel.load(MODEL)
    assert model.feature_spec is not None
    detector = AnomalyDetector(
        spec=model.feature_spec, thresholds=ThresholdScorer(limits=SIMULATED_PLANT_LIMITS), model=model
    )
    spool = SqliteSpool(tmp_path / "gw.spool.sqlite")
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw-line-1", plant="plant-1", batch_interval_ms=STEP_MS),
        sources=[SimulatorSource(simulator, "line-1")],
        scorer=detector,
        model=detector.model_ref,
        spool=spool,
    )
    for t in range(start_ms, start_ms + hours * HOUR + STEP_MS, STEP_MS):
        gateway.step(t)
    waiting = spool.peek(100_000)
    spool.close()
    summaries = [m for m in waiting if is_summary_topic(m.topic)]
    assert gateway.counters.summaries == len(summaries) == hours
    assert {m.topic for m in summaries} == {summary_topic("gw-line-1")}
    return [
        StreamRecord(record_id=str(i + 1), data=m.payload, arrival_ms=start_ms, topic=m.topic)
        for i, m in enumerate(summaries)
    ]


def platform(tmp_path: Path) -> tuple[StreamHandler, DriftIngest, DuckDBDrift, list[RetrainRequest]]:
    """The local platform's cloud half: the stream handler with drift ingest over DuckDB."""
    store = DuckDBStore(tmp_path / "db.duckdb")
    archive = FilesystemArchive(tmp_path / "archive")
    clock = Clock()
    drift = DuckDBDrift(store)
    requests: list[RetrainRequest] = []
    ingest = DriftIngest(
        store=drift, sink=store, archive=archive, clock=clock, config=DriftConfig(), on_drift=requests.append
    )
    handler = StreamHandler(StreamProcessor(sink=store, archive=archive, clock=clock, summaries=ingest))
    return handler, ingest, drift, requests


def test_a_healthy_line_reports_a_stable_day(tmp_path: Path) -> None:
    # GIVEN the healthy plant, a day the baseline model was not trained on
    records = run_gateway(tmp_path, PlantSimulator(HEALTHY), 10 * DAY_MS, hours=24)
    first = decode_summary(records[0].data)
    assert first.model.name == "plant-1.line-1"
    assert first.reference == ForestModel.load(MODEL).info.training["score_histogram"]
    handler, ingest, drift, requests = platform(tmp_path)
    # WHEN the summaries arrive through the stream handler
    assert handler.handle(kinesis_event(records))["batchItemFailures"] == []
    # THEN the line has a complete, stable daily check and nobody asked for retraining
    [report] = drift_report(drift, SCOPE, DriftConfig())
    assert report.complete
    assert report.windows == 24
    assert report.scores == 24 * 60 * 4 - 4  # a forest score per asset per step, once its window is full
    assert not report.drifted, report.psi
    assert report.psi < DriftConfig().threshold
    assert requests == []
    assert ingest.stored == 24


def test_a_shifted_operating_point_drifts_and_asks_for_retraining_once(tmp_path: Path) -> None:
    # GIVEN line-1's pressure operating point moved up by 12 bar from the start of day 10
    shifted = ShiftedPlant(HEALTHY, line="line-1", shift=12.0, from_ms=10 * DAY_MS)
    records = run_gateway(tmp_path, shifted, 10 * DAY_MS, hours=27)
    handler, ingest, drift, requests = platform(tmp_path)
    # WHEN the first day arrives: a complete check, drifted, but one check is not yet a reason to retrain
    handler.handle(kinesis_event(records[:24]))
    [day] = drift_report(drift, SCOPE, DriftConfig())
    assert day.complete
    assert day.drifted, day.psi
    assert requests == []
    # AND three hourly checks in a row have drifted
    handler.handle(kinesis_event(records[24:]))
    assert [r.line for r in requests] == ["line-1"]
    assert requests[0].model.name == "plant-1.line-1"
    assert requests[0].summary_key == decode_summary(records[25].data).key
    [report] = drift_report(drift, SCOPE, DriftConfig())
    assert report.drifted
    assert report.retrain_requested_at_ms is not None
    # THEN re-delivering the summaries (Kinesis is at least once) stores nothing new and asks no second time
    handler.handle(kinesis_event(records))
    assert len(requests) == 1
    assert ingest.stored == 2 * 27
    assert len(drift.recent_summaries("plant-1", "line-1", 100)) == 27


def test_a_partial_window_is_served_and_labelled_before_a_full_day(tmp_path: Path) -> None:
    records = run_gateway(tmp_path, PlantSimulator(HEALTHY), 10 * DAY_MS, hours=2)
    handler, _, drift, _ = platform(tmp_path)
    handler.handle(kinesis_event(records))
    [report] = drift_report(drift, SCOPE, DriftConfig())
    assert not report.complete
    assert report.windows == 2
    assert report.scores > 0


def as_gateway(record: StreamRecord, gateway_id: str) -> StreamRecord:
    """The same summary as sent by another gateway of the line (same hour, same scores)."""
    moved = msgspec.structs.replace(decode_summary(record.data), gateway_id=gateway_id)
    return msgspec.structs.replace(record, data=encode_summary(moved), topic=summary_topic(gateway_id))


def test_two_gateways_of_a_healthy_line_ask_for_nothing_over_two_days(tmp_path: Path) -> None:
    # GIVEN a line whose thing group holds two gateways, each reporting the same healthy hours for two days
    records = run_gateway(tmp_path, PlantSimulator(HEALTHY), 10 * DAY_MS, hours=48)
    handler, ingest, drift, requests = platform(tmp_path)
    alone, _, alone_drift, _ = platform(tmp_path / "one-gateway")
    for hour, record in enumerate(records):
        # WHEN each hour arrives from both gateways
        handler.handle(kinesis_event([record, as_gateway(record, "gw-line-2")]))
        alone.handle(kinesis_event([record]))
        # THEN each check covers the last 24 hours, judged as the same hours from one gateway are
        [report] = drift_report(drift, SCOPE, DriftConfig())
        [single] = drift_report(alone_drift, SCOPE, DriftConfig())
        assert report.end_ms - report.start_ms == min(hour + 1, 24) * HOUR
        assert (report.windows, report.complete) == (min(hour + 1, 24), hour >= 23)
        assert report.scores == 2 * single.scores
        assert (report.psi, report.drifted) == (single.psi, single.drifted)
        assert not report.drifted, (hour, report.psi)
    # AND nobody asked for retraining
    assert requests == []
    assert ingest.stored == 96


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"schema": "plantwatch.score-summary.v0"}', b'{"schema": "plantwatch.score-summary.v1"}'],
)
def test_garbage_on_the_summaries_topic_is_quarantined_not_stored(tmp_path: Path, payload: bytes) -> None:
    handler, ingest, drift, _ = platform(tmp_path)
    record = StreamRecord(record_id="1", data=payload, arrival_ms=0, topic=summary_topic("gw-line-1"))
    assert handler.handle(kinesis_event([record]))["batchItemFailures"] == []
    assert ingest.quarantined == 1
    assert drift.summary_lines(SCOPE) == []
