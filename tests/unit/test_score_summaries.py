"""Score summaries: the gateway's event-time windows, the wire contract and its JSON schema, the replayed
retraining rule, and the stream handler's routing of the summaries topic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.cloud.stream_handler import StreamHandler, kinesis_event
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import ScoreSummaryMessage, decode_summary, encode_summary
from plantwatch.contract.topics import summary_topic
from plantwatch.models import ForestModel
from plantwatch.models.trainer import with_training
from plantwatch.ports import StreamRecord
from plantwatch.services.drift_reports import DriftConfig, line_drift, retrain_due
from plantwatch.services.score_windows import ScoreWindows
from plantwatch.services.stream_processing import StreamProcessor
from tests.unit.test_schemas import validator

#: The committed baseline, numbered as a registry numbers its first version (it ships as "baseline")
MODEL = with_training(
    ForestModel.load(Path(__file__).resolve().parents[2] / "models" / "plant-1.line-1.pwf"), {}, version="1"
)
REFERENCE = [float(q) for q in MODEL.info.training["score_histogram"]]
MINUTE = 60_000


def message(start: int, counts: list[int], *, version: str = "1", **changes: Any) -> ScoreSummaryMessage:
    summary = ScoreSummaryMessage(
        gateway_id="gw-1",
        plant="plant-1",
        line="line-1",
        model=ModelRef(name="m", version=version),
        start_ms=start,
        end_ms=start + MINUTE,
        counts=counts,
        mean=0.4,
        p99=0.5,
        reference=REFERENCE,
    )
    return msgspec.structs.replace(summary, **changes)


HEALTHY = [int(1000 * q) for q in REFERENCE]
SHIFTED = [0] * 19 + [1000]


def test_windows_close_on_event_time_and_split_by_line_and_model() -> None:
    windows = ScoreWindows(gateway_id="gw-1", plant="plant-1", window_ms=MINUTE)
    other = with_training(MODEL, {}, version="2")
    windows.add(MODEL, [("line-1", 1_000, 0.40), ("line-2", 2_000, 0.45)])
    windows.add(other, [("line-1", 59_000, 0.42)])
    assert windows.closed() == []  # nothing is known past the first minute yet
    windows.add(other, [("line-1", 60_000, 0.41)])
    closed = windows.closed()
    assert [(s.line, s.model.version, s.start_ms, s.end_ms, s.total) for s in closed] == [
        ("line-1", "1", 0, MINUTE, 1),
        ("line-1", "2", 0, MINUTE, 1),
        ("line-2", "1", 0, MINUTE, 1),
    ]
    assert all(s.reference == REFERENCE for s in closed)
    assert windows.closed() == closed  # until they are stored, the same summaries
    windows.release(closed)
    assert windows.closed() == []  # each window once


def test_a_model_without_a_training_histogram_sends_no_summaries() -> None:
    bare = ForestModel(MODEL.trees, msgspec.structs.replace(MODEL.info, training={}))
    windows = ScoreWindows(gateway_id="gw-1", plant="plant-1", window_ms=MINUTE)
    windows.add(bare, [("line-1", 1_000, 0.4), ("line-1", 120_000, 0.4)])
    assert windows.closed() == []


def test_encoded_summary_matches_its_schema_and_decodes_back() -> None:
    summary = message(0, HEALTHY)
    payload = encode_summary(summary)
    validator("score-summary.v1.json").validate(json.loads(payload))
    assert decode_summary(payload) == summary


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"line": "a b"}, "line"),
        ({"end_ms": 0}, "window"),
        ({"counts": [1] * 19}, "19 counts"),
        ({"counts": [0] * 20}, "not all zero"),
        ({"reference": [0.5] * 20}, "summing to 1"),
        ({"model": ModelRef(name="", version="1")}, "model name"),
    ],
)
def test_schema_and_decoder_reject_the_same_mistakes(change: dict[str, Any], reason: str) -> None:
    document = msgspec.to_builtins(msgspec.structs.replace(message(0, HEALTHY), **change))
    with pytest.raises(ValueError, match=reason):
        decode_summary(json.dumps(document).encode())
    if reason not in ("summing to 1", "not all zero"):  # sums are beyond JSON Schema; the decoder checks them
        assert not validator("score-summary.v1.json").is_valid(document)


def test_retraining_is_due_exactly_when_the_run_of_drifted_checks_reaches_consecutive() -> None:
    config = DriftConfig(window=2, consecutive=2, min_scores=10)
    history = [message(i * MINUTE, HEALTHY) for i in range(3)] + [message(i * MINUTE, SHIFTED) for i in range(3, 8)]
    due = [
        i
        for i in range(1, len(history) + 1)
        if retrain_due(history[:i][-(config.window + config.consecutive) :], config)
    ]
    assert due == [5]  # the checks ending at windows 3 and 4 drift (half shifted is enough): asked once, at 4
    # a new model starts its drift afresh: its first window alone is a partial check, not a reason to retrain
    swapped = [*history, message(8 * MINUTE, SHIFTED, version="2")]
    assert retrain_due(swapped[-4:], config) is None
    partial = line_drift(swapped, config)
    assert partial is not None
    assert (partial.model.version, partial.windows, partial.complete) == ("2", 1, False)


class FailingStore:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stored = self.quarantined = 0

    def handle(self, topic: str, payload: bytes) -> None:
        self.calls.append(topic)
        raise OSError("table unavailable")


def test_a_summary_that_is_not_stored_is_delivered_again_from_there_on(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")

    class Clock:
        def now_ms(self) -> int:
            return 0

    failing = FailingStore()
    processor = StreamProcessor(sink=store, archive=FilesystemArchive(tmp_path / "a"), clock=Clock(), summaries=failing)
    handler = StreamHandler(processor)
    records = [
        StreamRecord(record_id="1", data=b"junk", arrival_ms=0, topic="plantwatch/gateways/gw-1/batches"),
        StreamRecord(
            record_id="2", data=encode_summary(message(0, HEALTHY)), arrival_ms=0, topic=summary_topic("gw-1")
        ),
        StreamRecord(record_id="3", data=b"junk", arrival_ms=0, topic="plantwatch/gateways/gw-1/batches"),
    ]
    response = handler.handle(kinesis_event(records))
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["2", "3"]
    assert failing.calls == [summary_topic("gw-1")]


def test_open_windows_continue_after_a_snapshot_as_if_never_stopped() -> None:
    other = with_training(MODEL, {}, version="2")
    first = [("line-1", 1_000, 0.40), ("line-1", 2_000, 0.61), ("line-2", 3_000, 0.45)]
    then = [("line-1", 30_000, 0.52), ("line-1", 61_000, 0.41)]
    straight = ScoreWindows(gateway_id="gw-1", plant="plant-1", window_ms=MINUTE)
    stopped = ScoreWindows(gateway_id="gw-1", plant="plant-1", window_ms=MINUTE)
    for windows in (straight, stopped):
        windows.add(MODEL, first)
        windows.add(other, [("line-1", 4_000, 0.7)])
    restarted = ScoreWindows(gateway_id="gw-1", plant="plant-1", window_ms=MINUTE)
    assert restarted.restore(stopped.snapshot()) == 4
    for windows in (straight, restarted):
        windows.add(MODEL, then)
    expected = straight.closed()
    assert [(s.line, s.model.version, s.total) for s in expected] == [
        ("line-1", "1", 3),
        ("line-1", "2", 1),
        ("line-2", "1", 1),
    ]
    assert restarted.closed() == expected
    with pytest.raises(RuntimeError, match="before adding"):
        restarted.restore(stopped.snapshot())
    # a snapshot cut into other windows is not continued: its scores would land in the wrong summaries
    hourly = ScoreWindows(gateway_id="gw-1", plant="plant-1")
    assert hourly.restore(stopped.snapshot()) == 0
    hourly.add(MODEL, [("line-1", 3_600_000, 0.4)])
    assert hourly.closed() == []
