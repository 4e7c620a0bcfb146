"""A two-plant dataset for the analytics API tests: stores, tokens and alerts built the same way for every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.contract import Reading, ScoredBatch, ScoredReading
from plantwatch.contract.alerts import Alert, alert_id
from plantwatch.contract.batch import ModelRef
from tests.helpers import NOW_MS

NOW = datetime.fromtimestamp(NOW_MS / 1000, tz=UTC)
KEY = b"test-signing-key-0123456789abcdef"
STEP_MS = 10_000
SPAN_MS = 3 * 3600 * 1000
TYPES = {"temperature": "degC", "vibration": "mm/s", "pressure": "kPa"}
#: plant -> lines; sensor "shared-1" exists in both plants (same id, different data).
PLANTS = {"plant-a": ("line-1", "line-2"), "plant-b": ("line-1",)}


def sensors() -> list[Reading]:
    """One template reading per sensor of the dataset."""
    out = []
    for plant, lines in PLANTS.items():
        for line in lines:
            for asset in ("press-1", "press-2"):
                for sensor_type, unit in TYPES.items():
                    sensor_id = f"{plant}.{line}.{asset}.{sensor_type}"
                    out.append(
                        Reading(
                            plant=plant,
                            line=line,
                            asset=asset,
                            sensor_id=sensor_id,
                            sensor_type=sensor_type,
                            unit=unit,
                            ts_ms=0,
                            value=0.0,
                        )
                    )
        out.append(
            Reading(
                plant=plant,
                line=lines[0],
                asset="press-1",
                sensor_id="shared-1",
                sensor_type="pressure",
                unit="kPa",
                ts_ms=0,
                value=0.0,
            )
        )
    return out


def batches(end_ms: int = NOW_MS, span_ms: int = SPAN_MS) -> list[ScoredBatch]:
    """Readings every 10 s over ``span_ms`` before ``end_ms``; every 40th of a sensor is anomalous."""
    result = []
    for n, template in enumerate(sensors()):
        base = 100.0 if template.plant == "plant-a" else 500.0
        readings = []
        for i, ts in enumerate(range(end_ms - span_ms, end_ms, STEP_MS)):
            flagged = (i + n) % 40 == 0
            value = base + n + (i % 17) * 0.5 + (50.0 if flagged else 0.0)
            readings.append(
                ScoredReading(
                    reading=Reading(**{**_fields(template), "ts_ms": ts, "value": value}),
                    score=0.95 if flagged else 0.1,
                    anomaly=flagged,
                    reasons=("threshold.high",) if flagged else (),
                )
            )
        for seq, start in enumerate(range(0, len(readings), 500)):
            result.append(
                ScoredBatch(
                    schema_version=1,
                    gateway_id=f"gw-{template.plant}-{template.line}",
                    seq=n * 1000 + seq,
                    plant=template.plant,
                    model=ModelRef(name="original-thresholds", version="1" if template.line == "line-1" else "2"),
                    readings=tuple(readings[start : start + 500]),
                )
            )
    return result


def _fields(r: Reading) -> dict[str, object]:
    return {f: getattr(r, f) for f in r.__struct_fields__}


def alert_ref(plant: str, i: int) -> str:
    """The id of :func:`alerts`' ``i``-th alert of ``plant``, made as a gateway makes it (colons and all)."""
    return alert_id(
        f"gw-{plant}-line-1", f"{plant}.line-1.press-1.temperature", "threshold", NOW_MS - (i + 1) * 600_000
    )


def alerts() -> list[Alert]:
    """One open and one cleared alert per plant."""
    return [
        Alert(
            alert_id=alert_ref(plant, i),
            plant=plant,
            line="line-1",
            asset="press-1",
            sensor_id=f"{plant}.line-1.press-1.temperature",
            kind="threshold",
            state="open" if i == 0 else "cleared",
            raised_at_ms=NOW_MS - (i + 1) * 600_000,
            cleared_at_ms=None if i == 0 else NOW_MS - 300_000,
            reasons=("threshold.high",),
            score=0.9,
            gateway_id=f"gw-{plant}-line-1",
        )
        for plant in PLANTS
        for i in range(2)
    ]


def filled_store(path: Path) -> DuckDBStore:
    """A DuckDB store holding the dataset and its alerts."""
    store = DuckDBStore(path)
    store.write(batches())
    store.record_alerts(alerts())
    return store
