"""Builders of test data shared by several test modules."""

from __future__ import annotations

from plantwatch.contract import BatchHeader, ModelRef, Reading, ScoredReading

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
