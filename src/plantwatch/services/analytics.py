"""Analytics queries: the questions dashboards and the API ask, independent of the store that answers them.

Every question carries the caller's :class:`Scope`; a backend answers only from the plants (and lines) in it,
so a caller can never see, or learn of, another plant's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec

from plantwatch.contract.alerts import Alert

Row = dict[str, Any]


#: The ``model`` of a sensor row from a backend that does not store which model scored a reading (Timestream).
UNKNOWN_MODEL: Final = "unknown"


class TimeRange(msgspec.Struct, frozen=True, kw_only=True):
    """A half-open time range [start_ms, end_ms) in epoch milliseconds."""

    start_ms: int
    end_ms: int


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller may read: these plants, and only these lines of them when ``lines`` is not empty."""

    subject: str
    plants: tuple[str, ...]
    lines: tuple[str, ...] = ()

    def allows(self, plant: str, line: str | None = None) -> bool:
        """Whether the scope covers ``plant`` (and ``line``)."""
        return plant in self.plants and (line is None or not self.lines or line in self.lines)

    def narrowed(self, plant: str | None, line: str | None) -> Scope | None:
        """This scope cut down to one plant and/or line, or None when that is outside it."""
        plants = self.plants if plant is None else (plant,)
        lines = self.lines if line is None else (line,)
        if not set(plants) <= set(self.plants) or (self.lines and not set(lines) <= set(self.lines)):
            return None
        return Scope(subject=self.subject, plants=plants, lines=lines)


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """Which readings to aggregate: one sensor, or every sensor of one line."""

    sensor_id: str | None = None
    line: str | None = None


class AnalyticsQueries(Protocol):
    """What the analytics API asks of a reading store; each method returns plain rows, in scope only."""

    def sensors(self, scope: Scope) -> list[Row]:
        """Catalogue of sensors: plant, line, asset, type, unit, model, reading count, last time and value."""
        ...

    def readings(self, scope: Scope, *, series: Series, window: TimeRange, limit: int) -> list[Row]:
        """Raw readings (with their sensor's catalogue fields) of one sensor or line in a time range, oldest first."""
        ...

    def buckets(self, scope: Scope, *, series: Series, window: TimeRange, bucket_s: int, tz: str | None) -> list[Row]:
        """avg/min/max/count/anomalies per sensor and time bucket (bucket starts in ``tz`` local time if given)."""
        ...

    def anomalies(self, scope: Scope, *, window: TimeRange, limit: int) -> list[Row]:
        """Anomalous readings in a time range, newest first."""
        ...

    def summary(self, scope: Scope, *, window: TimeRange) -> list[Row]:
        """The original design's analytics: average and count per sensor, line and type."""
        ...

    def totals(self, scope: Scope) -> Row:
        """Counts of stored readings, anomalies, batches and quarantined inputs."""
        ...


class AlertStore(Protocol):
    """Alerts and their acknowledgements, with an append-only hash-chained audit log."""

    def record_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert or replace alerts by ``alert_id``; returns how many were stored."""
        ...

    def alerts(self, scope: Scope, *, state: str | None, limit: int) -> list[Row]:
        """Alerts in scope, newest raised first."""
        ...

    def acknowledge(self, scope: Scope, *, alert_id: str, actor: str, note: str, at_ms: int) -> Row | None:
        """Acknowledge an alert in scope and append that to the audit log; None if no such alert in scope."""
        ...

    def audit(self, scope: Scope, *, limit: int) -> tuple[list[Row], int | None]:
        """Audit entries of the scope's plants, oldest first, and the seq of the first broken link (None: intact)."""
        ...
