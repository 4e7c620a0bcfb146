"""Helpers for the stream processor, sinks and archive tests: clocks, batches, handlers, the Lambda app."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from tests.conftest import missing

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.cloud.stream_handler import StreamHandler
from plantwatch.contract.batch import BatchHeader, encode_batches
from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.ports import Sink, StreamRecord
from plantwatch.services.stream_processing import StreamProcessor

EVENTS = Path(__file__).parent.parent / "events"
#: 2026-01-01T12:00:00Z: the time of the canned events' readings
T0 = 1_767_268_800_000
APP = Path(__file__).parents[2] / "cloud" / "lambdas" / "stream_processor" / "app.py"
BATCH_TOPIC = "plantwatch/gateways/{}/batches"


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now_ms: int = T0 + 3_600_000) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        """The set time."""
        return self.now


def require(ok: bool, what: str) -> None:
    """Fail under CI when a real dependency is missing, skip elsewhere."""
    if not ok:
        missing(what)


def scored_readings(
    line: str, n: int, start_ms: int, *, plant: str = "plant-1", sensors: int = 6
) -> list[ScoredReading]:
    """``n`` deterministic readings of ``sensors`` sensors on ``line``, one per sensor per second, scored."""
    scorer = ThresholdScorer()
    out = []
    for i in range(n):
        value = 40.0 + (i % 11) * 4.5  # some beyond 80 degC: anomalies
        reading = Reading(
            plant=plant,
            line=line,
            asset=f"{line}-asset-{i % sensors // 2}",
            sensor_id=f"{line}-temp-{i % sensors}",
            sensor_type="temperature",
            unit="degC",
            ts_ms=start_ms + (i // sensors) * 1000,
            value=value,
        )
        out.append(scorer.score(reading))
    return out


def batch_records(
    gateway: str, line: str, *, batches: int, per_batch: int, start_ms: int = T0, first_seq: int = 1
) -> list[StreamRecord]:
    """Stream records each carrying one encoded scored batch of ``per_batch`` readings."""
    readings = scored_readings(line, batches * per_batch, start_ms)
    encoded = encode_batches(
        BatchHeader(gateway_id=gateway, plant="plant-1", model=THRESHOLD_MODEL),
        readings,
        first_seq=first_seq,
        max_readings=per_batch,
    )
    return [
        StreamRecord(
            record_id=f"{first_seq + i:020d}", data=e.payload, arrival_ms=start_ms, topic=BATCH_TOPIC.format(gateway)
        )
        for i, e in enumerate(encoded)
    ]


def local_handler(tmp: Path, clock: FixedClock, sink: Sink | None = None) -> tuple[StreamHandler, DuckDBStore]:
    """A handler over a DuckDB sink (unless ``sink`` is given) and a filesystem archive under ``tmp``."""
    store = DuckDBStore(tmp / "store.duckdb")
    processor = StreamProcessor(
        sink=sink or store, archive=FilesystemArchive(tmp / "archive", clock=clock), clock=clock
    )
    return StreamHandler(processor), store


def load_app(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    archive_url: str | None = None,
    sink: str = "duckdb",
    environment: dict[str, str] | None = None,
) -> ModuleType:
    """Import app.py as Lambda would, with a DuckDB sink and a local archive unless ``archive_url`` says, and
    ``environment`` set on top."""
    monkeypatch.setenv("PLANTWATCH_SINK", sink)
    monkeypatch.setenv("PLANTWATCH_DUCKDB_PATH", str(tmp_path / "lambda.duckdb"))
    monkeypatch.setenv("PLANTWATCH_ARCHIVE_URL", archive_url or str(tmp_path / "archive"))
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stream-processor")  # Terraform sets both
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Plantwatch")
    for name, value in (environment or {}).items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("stream_processor_app", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "stream_processor_app", module)
    spec.loader.exec_module(module)
    return module


def context() -> SimpleNamespace:
    """The attributes of a Lambda context that powertools reads."""
    return SimpleNamespace(
        function_name="plantwatch-stream-processor",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:plantwatch-stream-processor",
        aws_request_id="c6af9ac6-7b61-11e6-9a41-93e812345678",
    )
