"""Builders of test data shared by several test modules."""

from __future__ import annotations

import json
from typing import Any

from plantwatch.contract import BatchHeader, ModelRef, Reading, ScoredReading
from plantwatch.contract.summaries import ScoreSummaryMessage

NOW_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
HEADER = BatchHeader(gateway_id="gw-line-1", plant="plant-1", model=ModelRef(name="original-thresholds", version="1"))


def reading(i: int = 0, *, value: float = 50.0, ts_ms: int | None = None, sensor_type: str = "temperature") -> Reading:
    """A valid reading of sensor ``s{i % 7}``."""
    return Reading(
        plant="plant-1",
        line="line-1",
        asset=f"asset-{i % 3}",
        sensor_id=f"s{i % 7}",
        sensor_type=sensor_type,
        unit="degC",
        ts_ms=NOW_MS - 60_000 + i if ts_ms is None else ts_ms,
        value=value,
    )


def scored(i: int = 0, **kwargs: object) -> ScoredReading:
    """A valid, unflagged scored reading."""
    return ScoredReading(reading=reading(i, **kwargs), score=0.0, anomaly=False, reasons=())  # type: ignore[arg-type]


def alert_event(
    alert_id: str, status: str, *, plant: str = "plant-a", raised_ms: int = NOW_MS - 60_000, updated_ms: int = NOW_MS
) -> bytes:
    """A gateway's alert event (``status``: active, acknowledged or cleared) as published on its alert topic."""
    from plantwatch.domain.alerts import Alert, AlertEvent, AlertStatus, encode_event

    wire = Alert(
        alert_id=alert_id, gateway_id="gw-1", plant=plant, line="line-1", asset="press-1", sensor_id="s-1",
        sensor_type="temperature", kind="anomaly", status=AlertStatus(status), raised_ms=raised_ms,
        updated_ms=updated_ms, score=0.8, reasons=("forest",),
    )  # fmt: skip
    return encode_event(AlertEvent(event={"active": "raised"}.get(status, status), alert=wire))


def drift_event(plant: str, line: str, *, window_end_ms: int = 1_764_003_600_000) -> dict[str, Any]:
    """The event the stream processor invokes the retrain function with when ``plant``'s ``line`` drifted, as the
    Lambda runtime hands it over (through JSON)."""
    from plantwatch.services.drift_reports import RetrainRequest, retrain_event

    request = RetrainRequest(
        plant=plant,
        line=line,
        model=ModelRef(name=f"{plant}.{line}", version="4"),
        psi=0.9,
        summary_key="k",
        window_end_ms=window_end_ms,
        requested_at_ms=window_end_ms + 100_000,
    )
    decoded: dict[str, Any] = json.loads(json.dumps(retrain_event(request)))
    return decoded


def _baseline_reference() -> list[float]:
    from plantwatch.models import ForestModel  # only the modules that use these pay for loading the model
    from tests.conftest import REPO

    model = ForestModel.load(REPO / "models" / "plant-1.line-1.pwf")
    return [float(q) for q in model.info.training["score_histogram"]]


#: The committed baseline's training score histogram (a drift summary's ``reference``), and score counts of a
#: window that follows it and of one whose scores all fell in the top bin.
BASELINE_REFERENCE = _baseline_reference()
HEALTHY_COUNTS = [int(1000 * q) for q in BASELINE_REFERENCE]
SHIFTED_COUNTS = [0] * 19 + [1000]


def score_summary(
    counts: list[int], *, start_ms: int, end_ms: int, model: ModelRef, gateway_id: str = "gw-1", **fields: Any
) -> ScoreSummaryMessage:
    """A gateway's score summary of line-1 of plant-1 (``fields`` override any other field), against the
    committed baseline's reference histogram."""
    defaults: dict[str, Any] = {"plant": "plant-1", "line": "line-1", "mean": 0.4, "p99": 0.5}
    return ScoreSummaryMessage(
        gateway_id=gateway_id,
        model=model,
        start_ms=start_ms,
        end_ms=end_ms,
        counts=counts,
        reference=BASELINE_REFERENCE,
        **{**defaults, **fields},
    )
