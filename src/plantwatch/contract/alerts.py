"""Alerts: what a gateway raises when a sensor stays anomalous, as stored and served by the analytics API."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

AlertState = Literal["open", "cleared"]
ALERT_STATES: Final = ("open", "cleared")


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
