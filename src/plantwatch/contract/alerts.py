"""Alerts: what a gateway raises when a sensor stays anomalous, as stored and served by the analytics API."""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

AlertState = Literal["open", "cleared"]
ALERT_STATES: Final = ("open", "cleared")
#: What an alert id may be: a gateway's ids join its gateway id, sensor id, kind and raise time with ``:``
#: (:func:`alert_id`), up to 64 + 64 + 16 + 20 characters and three colons. The API addresses alerts by it.
ALERT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
ALERT_ID_MAX: Final = 200
_ALERT_ID = re.compile(ALERT_ID_PATTERN)


def alert_id(gateway_id: str, sensor_id: str, kind: str, raised_ms: int) -> str:
    """The id a gateway gives the alert it raises: unique per gateway, sensor, kind and raise time."""
    return f"{gateway_id}:{sensor_id}:{kind}:{raised_ms}"


def alert_id_problem(value: str) -> str | None:
    """Why ``value`` can't be an alert id (the API could not address it), or None."""
    if _ALERT_ID.match(value):
        return None
    return f"alert_id {value[:80]!r} is not 1-{ALERT_ID_MAX} characters of letters, digits, '.', '_', '-', ':'"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert of one sensor; a later record with the same ``alert_id`` replaces the earlier one."""

    alert_id: str
    plant: str
    line: str
    asset: str
    sensor_id: str
    kind: str
    state: AlertState
    raised_at_ms: int
    cleared_at_ms: int | None = None
    reasons: tuple[str, ...] = ()
    score: float = 0.0
    gateway_id: str = ""
    #: who acknowledged it on the floor (``floor:<by>``) and when; an acknowledgement through the API is
    #: recorded by the alert store itself, with its audit entry
    acknowledged_by: str | None = None
    acknowledged_at_ms: int | None = None
