"""Request parameters shared by the routes, validated once at the boundary (422 with a clear message)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import HTTPException, Query

from plantwatch.contract.reading import IDENT_PATTERN
from plantwatch.services.analytics import Scope, TimeRange

MAX_LIMIT = 10_000
_BUCKET = re.compile(r"^(\d{1,5})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TZ_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$"

Ident = Annotated[str, Query(pattern=IDENT_PATTERN, max_length=64)]
OptionalIdent = Annotated[str | None, Query(pattern=IDENT_PATTERN, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
BucketSpec = Annotated[
    str | None, Query(pattern=r"^\d{1,5}[smhd]$", description="Aggregate per bucket: 1s to 1d, e.g. 1m")
]
Tz = Annotated[
    str | None,
    Query(max_length=64, pattern=TZ_PATTERN, description="IANA zone for local-time buckets, e.g. Europe/Berlin"),
]


def unprocessable(param: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors (the documented HTTPValidationError)."""
    return HTTPException(422, detail=[{"loc": ["query", param], "msg": message, "type": "value_error"}])


def ms(value: datetime) -> int:
    """Epoch ms of a datetime (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def dt(ts_ms: int) -> datetime:
    """A UTC datetime from epoch ms."""
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


def parse_bucket(text: str) -> int:
    """Bucket seconds, or 422."""
    try:
        return bucket_seconds(text)
    except ValueError as exc:
        raise unprocessable("bucket", str(exc)) from exc


def check_tz(tz: str | None) -> str | None:
    """A known IANA zone name, or 422."""
    if tz is None:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise unprocessable("tz", f"tz {tz!r} is not a known IANA time zone such as Europe/Berlin") from exc
    return tz


def window(start: datetime | None, end: datetime | None, now: datetime, default: timedelta) -> TimeRange:
    """The requested time range (default: ``default`` up to now), or 422."""
    end = end or now
    try:
        start = start or end - default
        result = TimeRange(start_ms=ms(start), end_ms=ms(end))
    except (OverflowError, ValueError, OSError) as exc:
        raise unprocessable("start", f"time out of range: {exc}") from exc
    if result.start_ms >= result.end_ms:
        raise unprocessable("end", "start must be before end")
    return result


def narrow(scope: Scope, plant: str | None, line: str | None) -> Scope:
    """The caller's scope cut to ``plant``/``line``; 404 (the same as for a plant that doesn't exist) outside it."""
    narrowed = scope.narrowed(plant, line)
    if narrowed is None:
        what = f"plant {plant!r}" if plant is not None and plant not in scope.plants else f"line {line!r}"
        raise HTTPException(status_code=404, detail=f"no {what}")
    return narrowed
