"""Analytics queries: the questions dashboards and the API ask, independent of the store that answers them."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

Row = dict[str, Any]


class TimeRange(msgspec.Struct, frozen=True, kw_only=True):
    """A half-open time range [start_ms, end_ms) in epoch milliseconds."""

    start_ms: int
    end_ms: int


class AnalyticsQueries(Protocol):
    """What the analytics API asks of a store; each method returns plain rows."""

    def sensors(self, *, line: str | None) -> list[Row]:
        """Catalogue of sensors with their line, asset, type, unit, reading count and last time."""
        ...

    def readings(self, *, sensor_id: str, window: TimeRange, limit: int) -> list[Row]:
        """Raw readings of one sensor in a time range, oldest first."""
        ...

    def buckets(self, *, sensor_id: str, window: TimeRange, bucket_s: int, limit: int) -> list[Row]:
        """avg/min/max/count of one sensor per time bucket."""
        ...

    def anomalies(self, *, line: str | None, window: TimeRange, limit: int) -> list[Row]:
        """Anomalous readings in a time range, newest first."""
        ...

    def summary(self, *, window: TimeRange) -> list[Row]:
        """The original design's analytics: average and count per sensor, line and type."""
        ...

    def totals(self) -> Row:
        """Counts of stored readings, batches, anomalies and quarantined inputs."""
        ...
