"""Readings and the identifiers they carry: the unit of data every part of plantwatch speaks."""

from __future__ import annotations

import math
import re
from typing import Final

import msgspec

#: Identifiers (plant, line, asset, sensor, gateway): printable, bounded, safe in topics, paths and SQL.
IDENT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Sensor types are lower-case words; the three below are known, others are accepted (extensible).
SENSOR_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
UNIT_PATTERN: Final = r"^[^\x00-\x1f]{1,16}$"
REASON_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$"
MAX_REASONS: Final = 8
MAX_REASON_LENGTH: Final = 48

#: Default unit of each known sensor type (the legacy raw reading carries no unit).
KNOWN_SENSOR_TYPES: Final[dict[str, str]] = {
    "temperature": "degC",
    "vibration": "mm/s",
    "pressure": "kPa",
}

#: Readings stamped more than this far ahead of the receiver's clock are rejected.
MAX_FUTURE_MS: Final = 15 * 60 * 1000
#: Readings stamped before 2000-01-01 come from a device whose clock was never set.
MIN_TIMESTAMP_MS: Final = 946_684_800_000

_IDENT = re.compile(IDENT_PATTERN)
_SENSOR_TYPE = re.compile(SENSOR_TYPE_PATTERN)
_UNIT = re.compile(UNIT_PATTERN)
_REASON = re.compile(REASON_PATTERN)


class SensorRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a sensor sits and what it measures; the dictionary entry of a scored batch."""

    line: str
    asset: str
    sensor_id: str
    sensor_type: str
    unit: str

    def reading(self, *, plant: str, ts_ms: int, value: float) -> Reading:
        """A reading of this sensor in ``plant`` at ``ts_ms``."""
        return Reading(
            plant=plant,
            line=self.line,
            asset=self.asset,
            sensor_id=self.sensor_id,
            sensor_type=self.sensor_type,
            unit=self.unit,
            ts_ms=ts_ms,
            value=value,
        )


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """One measurement: which sensor, when (epoch milliseconds, UTC), and what value."""

    plant: str
    line: str
    asset: str
    sensor_id: str
    sensor_type: str
    unit: str
    ts_ms: int
    value: float

    @property
    def sensor(self) -> SensorRef:
        """The sensor this reading came from."""
        return SensorRef(
            line=self.line,
            asset=self.asset,
            sensor_id=self.sensor_id,
            sensor_type=self.sensor_type,
            unit=self.unit,
        )


class ScoredReading(msgspec.Struct, frozen=True, kw_only=True):
    """A reading with its anomaly score (higher is more anomalous), flag, and the reasons that flagged it."""

    reading: Reading
    score: float
    anomaly: bool
    reasons: tuple[str, ...] = ()


def ident_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not a valid identifier for field ``name``, or None if it is."""
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__}"
    if not _IDENT.match(value):
        return (
            f"{name} {value[:80]!r} is not a valid identifier: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return None


def sensor_type_problem(value: object) -> str | None:
    """Why ``value`` is not a valid sensor type, or None if it is."""
    if not isinstance(value, str):
        return f"sensor type must be a string, got {type(value).__name__}"
    if not _SENSOR_TYPE.match(value):
        return f"sensor type {value[:40]!r} is not valid: use a lower-case word such as 'temperature'"
    return None


def unit_problem(value: object) -> str | None:
    """Why ``value`` is not a valid unit, or None if it is."""
    if not isinstance(value, str) or not _UNIT.match(value):
        return f"unit {str(value)[:40]!r} is not valid: use 1-16 printable characters such as 'degC'"
    return None


def value_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not a finite number, or None if it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} must be a number, got {type(value).__name__}"
    if not math.isfinite(value):
        return f"{name} is {value}, not a finite number: check the sensor or its scaling"
    return None


def timestamp_problem(ts_ms: object, now_ms: int) -> str | None:
    """Why ``ts_ms`` is not an acceptable event time at receiver time ``now_ms``, or None if it is."""
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int):
        return f"timestamp must be integer epoch milliseconds, got {type(ts_ms).__name__}"
    if ts_ms < MIN_TIMESTAMP_MS:
        return f"timestamp {ts_ms} is before 2000-01-01: the device clock is not set"
    if ts_ms > now_ms + MAX_FUTURE_MS:
        ahead_s = (ts_ms - now_ms) / 1000
        return f"timestamp is {ahead_s:.0f} s in the future (limit 900 s): check the device clock (NTP)"
    return None


def reasons_problem(reasons: object) -> str | None:
    """Why ``reasons`` is not a valid list of reason codes, or None if it is."""
    if not isinstance(reasons, list | tuple):
        return f"reasons must be a list, got {type(reasons).__name__}"
    if len(reasons) > MAX_REASONS:
        return f"at most {MAX_REASONS} reasons per reading, got {len(reasons)}"
    for reason in reasons:
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH or not _REASON.match(reason):
            return f"reason {str(reason)[:60]!r} is not a reason code such as 'threshold.high'"
    return None
