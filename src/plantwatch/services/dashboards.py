"""Dashboard answers composed from the query backends: bucketed series (UTC or a plant's local time) and the
live overview of each line with its health score."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from plantwatch.services.analytics import AlertStore, AnalyticsQueries, Row, Scope, Series, TimeRange

#: Most buckets one series answer may hold (per sensor), and most fine rows read to build local-time buckets.
MAX_BUCKETS = 10_000
MAX_FINE_ROWS = 200_000
#: Window over which the health score looks at the anomaly share.
HEALTH_WINDOW_MS = 15 * 60 * 1000
_EPOCH = datetime(1970, 1, 1)


class BucketError(ValueError):
    """A bucketing request that cannot be answered as asked; the message says what to change."""


def _offset_ms(ts_ms: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(ts_ms / 1000, zone).utcoffset()
    return int(offset.total_seconds() * 1000) if offset else 0


def local_bucket_start(ts_ms: int, bucket_s: int, zone: ZoneInfo) -> int:
    """UTC epoch ms at which the local-time bucket holding ``ts_ms`` starts (DST-aware, repeated hours apart)."""
    local = datetime.fromtimestamp(ts_ms / 1000, zone)
    local_ms = int((local.replace(tzinfo=None) - _EPOCH) / timedelta(milliseconds=1))
    into = local_ms % (bucket_s * 1000)
    same_offset = ts_ms - into  # right unless the offset changed between the bucket start and ts
    if _offset_ms(same_offset, zone) == _offset_ms(ts_ms, zone):
        return same_offset
    start = _EPOCH + timedelta(milliseconds=local_ms - into)
    return int(start.replace(tzinfo=zone, fold=0).timestamp() * 1000)


def _whole_hour_offsets(zone: ZoneInfo, window: TimeRange) -> bool:
    probes = range(window.start_ms, window.end_ms + 1, 12 * 3600 * 1000)
    return all(_offset_ms(t, zone) % 3_600_000 == 0 for t in [*probes, window.end_ms])


def _finish(rows: list[Row]) -> list[Row]:
    return [
        {
            "plant": r["plant"],
            "line": r["line"],
            "sensor_id": r["sensor_id"],
            "ts_ms": r["ts_ms"],
            "avg": r["total"] / r["n"],
            "min": r["min"],
            "max": r["max"],
            "count": r["n"],
            "anomalies": r["anomalies"],
        }
        for r in rows
    ]


def bucketed(
    queries: AnalyticsQueries, scope: Scope, *, series: Series, window: TimeRange, bucket_s: int, tz: str | None
) -> list[Row]:
    """avg/min/max/count/anomalies per sensor for every bucket that overlaps ``window``, whole buckets only."""
    if (window.end_ms - window.start_ms) // (bucket_s * 1000) > MAX_BUCKETS:
        raise BucketError(f"more than {MAX_BUCKETS} buckets per sensor: use a bigger bucket or a shorter time range")
    zone = ZoneInfo(tz) if tz else None
    if zone is None or (bucket_s < 60 and 60 % bucket_s == 0):
        b = bucket_s * 1000
        aligned = TimeRange(start_ms=window.start_ms // b * b, end_ms=-(-window.end_ms // b) * b)
        return _finish(queries.buckets(scope, series=series, window=aligned, bucket_s=bucket_s, tz=None))
    if bucket_s % 60:
        raise BucketError("a tz bucket must be whole minutes (or divide a minute): e.g. 1m, 15m, 1h, 1d")
    grain = 3600 if bucket_s % 3600 == 0 and _whole_hour_offsets(zone, window) else 60
    g = grain * 1000
    start = local_bucket_start(window.start_ms, bucket_s, zone)
    fetch = TimeRange(start_ms=start // g * g, end_ms=-(-(window.end_ms + bucket_s * 1000 + 7_200_000) // g) * g)
    if (fetch.end_ms - fetch.start_ms) // g > MAX_FINE_ROWS:
        raise BucketError("time range too long for local-time buckets of this size: shorten it or use UTC")
    fine = queries.buckets(scope, series=series, window=fetch, bucket_s=grain, tz=None)
    merged: dict[tuple[str, str, str, int], Row] = {}
    for row in fine:
        key = (row["plant"], row["line"], row["sensor_id"], local_bucket_start(row["ts_ms"], bucket_s, zone))
        if key[3] >= window.end_ms:
            continue
        acc = merged.get(key)
        if acc is None:
            merged[key] = {**row, "ts_ms": key[3]}
        else:
            acc["n"] += row["n"]
            acc["total"] += row["total"]
            acc["anomalies"] += row["anomalies"]
            acc["min"] = min(acc["min"], row["min"])
            acc["max"] = max(acc["max"], row["max"])
    return _finish([merged[k] for k in sorted(merged)])


def split_model(model: str) -> tuple[str, str]:
    """'name@version' as (name, version)."""
    name, _, version = model.partition("@")
    return name, version


def overview(queries: AnalyticsQueries, alerts: AlertStore | None, scope: Scope, *, now_ms: int) -> list[Row]:
    """Per line: latest value per sensor, open alerts, models in use and a health score (100 = all well).

    health = 100 x (1 - share of anomalous readings over the last 15 minutes) - 10 per open unacknowledged alert,
    kept within 0..100.
    """
    lines: dict[tuple[str, str], Row] = {}
    for s in queries.sensors(scope):
        line = lines.setdefault(
            (s["plant"], s["line"]),
            {"plant": s["plant"], "line": s["line"], "sensors": [], "models": set(), "n": 0, "bad": 0, "alerts": []},
        )
        line["sensors"].append(s)
        line["models"].add(s["model"])
    recent = TimeRange(start_ms=now_ms - HEALTH_WINDOW_MS, end_ms=now_ms)
    for r in queries.buckets(scope, series=Series(), window=recent, bucket_s=60, tz=None):
        if (r["plant"], r["line"]) in lines:
            lines[(r["plant"], r["line"])]["n"] += r["n"]
            lines[(r["plant"], r["line"])]["bad"] += r["anomalies"]
    open_alerts: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for a in alerts.alerts(scope, state="open", limit=10_000) if alerts else []:
        open_alerts[(a["plant"], a["line"])].append(a)
    out = []
    for key, line in sorted(lines.items()):
        share = line["bad"] / line["n"] if line["n"] else 0.0
        unacked = sum(1 for a in open_alerts[key] if a["acknowledged_by"] is None)
        score = max(0.0, min(100.0, round(100 * (1 - share) - 10 * unacked, 1)))
        out.append(
            {
                "plant": line["plant"],
                "line": line["line"],
                "health_score": score,
                "anomaly_share_15m": share,
                "open_alerts": len(open_alerts[key]),
                "models": sorted(line["models"]),
                "sensors": line["sensors"],
                "last_ts_ms": max(s["last_ts_ms"] for s in line["sensors"]),
            }
        )
    return out


def utc_now_ms() -> int:
    """The current time in epoch ms."""
    return int(datetime.now(UTC).timestamp() * 1000)
