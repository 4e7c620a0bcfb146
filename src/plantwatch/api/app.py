"""The FastAPI application: health, sensors, readings, anomalies and the original ``GET /analytics``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query

from plantwatch import __version__
from plantwatch.api.models import AnalyticsRow, Anomaly, Bucket, Health, RawReading, ReadingsPage, Sensor
from plantwatch.contract.reading import IDENT_PATTERN
from plantwatch.services.analytics import AnalyticsQueries, TimeRange

MAX_LIMIT = 10_000
_BUCKET = re.compile(r"^(\d{1,5})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Ident = Annotated[str, Query(pattern=IDENT_PATTERN, max_length=64)]
OptionalIdent = Annotated[str | None, Query(pattern=IDENT_PATTERN, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _dt(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def bucket_seconds(text: str) -> int:
    """Seconds in a bucket spec such as '30s', '1m', '1h' or '1d' (1 s to 1 d)."""
    match = _BUCKET.match(text)
    if not match:
        raise ValueError(f"bucket {text!r} is not like 30s, 5m, 1h or 1d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 1 <= seconds <= 86400:
        raise ValueError(f"bucket {text!r} must be between 1s and 1d")
    return seconds


def _window(start: datetime | None, end: datetime | None, now: datetime, default: timedelta) -> TimeRange:
    end = end or now
    start = start or end - default
    window = TimeRange(start_ms=_ms(start), end_ms=_ms(end))
    if window.start_ms >= window.end_ms:
        raise HTTPException(status_code=422, detail="start must be before end")
    return window


def create_app(
    queries: AnalyticsQueries,
    *,
    status: Callable[[], dict[str, Any]] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """Build the API over ``queries``; ``status`` adds live component figures to the health answer."""
    app = FastAPI(title="plantwatch", version=__version__, description="Production-line readings and anomalies.")

    @app.get("/v1/health", tags=["platform"])
    def health() -> Health:
        """Liveness, stored totals, and live component figures."""
        totals = queries.totals()
        return Health(status="ok", components=status() if status else {}, **totals)

    @app.get("/v1/sensors", tags=["catalogue"])
    def sensors(line: OptionalIdent = None) -> list[Sensor]:
        """Sensors that have stored readings, optionally of one line."""
        return [
            Sensor(**{**row, "last_ts": _dt(row["last_ts_ms"]) if row["last_ts_ms"] is not None else None})
            for row in queries.sensors(line=line)
        ]

    @app.get("/v1/readings", tags=["readings"])
    def readings(
        sensor_id: Ident,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket: Annotated[str | None, Query(description="Aggregate per bucket: 1s to 1d, e.g. 1m")] = None,
        limit: Limit = 1000,
    ) -> ReadingsPage:
        """Readings of one sensor in a time range (default: the last hour), raw or bucketed."""
        window = _window(start, end, now(), timedelta(hours=1))
        page = ReadingsPage(
            sensor_id=sensor_id, start=_dt(window.start_ms), end=_dt(window.end_ms), bucket_seconds=None
        )
        if bucket is None:
            rows = queries.readings(sensor_id=sensor_id, window=window, limit=limit)
            page.readings = [RawReading(ts=_dt(r.pop("ts_ms")), **r) for r in rows]
            return page
        try:
            seconds = bucket_seconds(bucket)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        page.bucket_seconds = seconds
        rows = queries.buckets(sensor_id=sensor_id, window=window, bucket_s=seconds, limit=limit)
        page.buckets = [Bucket(ts=_dt(r.pop("ts_ms")), **r) for r in rows]
        return page

    @app.get("/v1/anomalies", tags=["readings"])
    def anomalies(
        line: OptionalIdent = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Limit = 1000,
    ) -> list[Anomaly]:
        """Anomalous readings, newest first, optionally of one line (default: the last hour)."""
        window = _window(start, end, now(), timedelta(hours=1))
        return [Anomaly(ts=_dt(r.pop("ts_ms")), **r) for r in queries.anomalies(line=line, window=window, limit=limit)]

    @app.get("/analytics", tags=["original"])
    def analytics() -> list[AnalyticsRow]:
        """The original design's endpoint: average value and count per sensor, line and type, last hour."""
        window = _window(None, None, now(), timedelta(hours=1))
        return [
            AnalyticsRow(**{k: v for k, v in r.items() if k != "last_ts_ms"}) for r in queries.summary(window=window)
        ]

    return app
