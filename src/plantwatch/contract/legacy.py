"""The original design's raw reading, accepted everywhere as legacy input.

Sensors publish ``{"sensor_id", "production_line", "type", "value", "timestamp"}`` (ISO-8601) to
``manufacturing/sensors/{sensor_id}/data``. It carries no plant, asset or unit: those come from
:class:`LegacyDefaults` (and the unit from the sensor type).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from plantwatch.contract.reading import (
    KNOWN_SENSOR_TYPES,
    Reading,
    ident_problem,
    sensor_type_problem,
    timestamp_problem,
    value_problem,
)
from plantwatch.contract.rejection import Rejection

LEGACY_TOPIC_FILTER: Final = "manufacturing/sensors/+/data"
_TOPIC = re.compile(r"^manufacturing/sensors/([^/]+)/data$")
REQUIRED_FIELDS: Final = ("sensor_id", "production_line", "type", "value", "timestamp")


class LegacyDefaults(msgspec.Struct, frozen=True, kw_only=True):
    """What a legacy reading doesn't say: its plant and asset."""

    plant: str = "default"
    asset: str = "unassigned"


def legacy_topic(sensor_id: str) -> str:
    """The topic a sensor publishes its raw readings to."""
    return f"manufacturing/sensors/{sensor_id}/data"


def looks_legacy(document: dict[str, Any]) -> bool:
    """Whether a JSON object is meant as a legacy raw reading."""
    return "sensor_id" in document and "schema_version" not in document


def parse_iso_timestamp(value: object) -> int | str:
    """Epoch milliseconds of an ISO-8601 time with a UTC offset, or the reason it is not one."""
    if not isinstance(value, str):
        return f"timestamp must be an ISO-8601 string such as 2024-01-01T12:00:00Z, got {type(value).__name__}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"timestamp {value[:40]!r} is not ISO-8601: send e.g. 2024-01-01T12:00:00.123Z"
    if parsed.tzinfo is None:
        return f"timestamp {value[:40]!r} has no UTC offset: append 'Z' for UTC"
    return int(parsed.astimezone(UTC).timestamp() * 1000 // 1)


def parse_legacy(
    document: dict[str, Any], *, now_ms: int, defaults: LegacyDefaults, topic: str | None
) -> Reading | Rejection:
    """Validate one raw reading; a :class:`Rejection` says what is wrong with it."""
    missing = [name for name in REQUIRED_FIELDS if name not in document]
    sensor_id = document.get("sensor_id")
    sid = sensor_id if isinstance(sensor_id, str) else None
    if missing:
        return Rejection(reason=f"raw reading is missing {', '.join(missing)}", sensor_id=sid)
    problem = (
        ident_problem("sensor_id", sensor_id)
        or ident_problem("production_line", document["production_line"])
        or sensor_type_problem(document["type"])
        or value_problem("value", document["value"])
    )
    if problem:
        return Rejection(reason=problem, sensor_id=sid)
    if topic is not None:
        match = _TOPIC.match(topic)
        if match and match.group(1) != sensor_id:
            return Rejection(
                reason=f"sensor_id {sensor_id!r} does not match the topic's sensor {match.group(1)!r}",
                sensor_id=sid,
            )
    ts = parse_iso_timestamp(document["timestamp"])
    if isinstance(ts, str):
        return Rejection(reason=ts, sensor_id=sid)
    problem = timestamp_problem(ts, now_ms)
    if problem:
        return Rejection(reason=problem, sensor_id=sid)
    sensor_type = document["type"]
    return Reading(
        plant=defaults.plant,
        line=document["production_line"],
        asset=defaults.asset,
        sensor_id=document["sensor_id"],
        sensor_type=sensor_type,
        unit=KNOWN_SENSOR_TYPES.get(sensor_type, "unknown"),
        ts_ms=ts,
        value=float(document["value"]),
    )
