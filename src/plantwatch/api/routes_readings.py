"""Routes over readings: raw and bucketed series, a line's series for charts, exports, anomalies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Response

from plantwatch.api.context import ApiContext, Caller
from plantwatch.api.export import MEDIA_TYPES, ExportFormat, encode, end_that_fits
from plantwatch.api.models import Anomaly, Bucket, LineSeries, Problem, RawReading, ReadingsPage, SensorSeries
from plantwatch.api.params import (
    BucketSpec,
    Ident,
    Limit,
    OptionalIdent,
    Tz,
    check_tz,
    dt,
    narrow,
    parse_bucket,
    unprocessable,
    window,
)
from plantwatch.services.analytics import Row, Scope, Series, TimeRange
from plantwatch.services.dashboards import BucketError, bucketed


def _iso(ms: int) -> str:
    return dt(ms).isoformat().replace("+00:00", "Z")


def _bucket(row: Row) -> Bucket:
    return Bucket(ts=dt(row["ts_ms"]), **{k: row[k] for k in ("avg", "min", "max", "count", "anomalies")})


def register(app: FastAPI, ctx: ApiContext) -> None:
    """Add the reading routes to ``app``."""

    def known_sensor(scope: Scope, sensor_id: str) -> None:
        """Refuse an unknown sensor, and one whose id names sensors of several plants in scope (ids are unique
        within a plant only: their readings would be one interleaved series)."""
        plants = sorted({s["plant"] for s in ctx.queries.sensors(scope) if s["sensor_id"] == sensor_id})
        if not plants:
            raise HTTPException(404, f"no sensor {sensor_id!r}")
        if len(plants) > 1:
            raise unprocessable("plant", f"sensor {sensor_id!r} is in plants {', '.join(plants)}: name one with plant=")

    def series_buckets(
        scope: Scope, series: Series, start_ms: int, end_ms: int, seconds: int, tz: str | None
    ) -> list[Row]:
        try:
            return bucketed(
                ctx.queries,
                scope,
                series=series,
                window=TimeRange(start_ms=start_ms, end_ms=end_ms),
                bucket_s=seconds,
                tz=tz,
            )
        except BucketError as exc:
            raise unprocessable("bucket", str(exc)) from exc

    @app.get("/v1/readings", tags=["readings"])
    def readings(
        scope: Caller,
        sensor_id: Ident,
        plant: OptionalIdent = None,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket: BucketSpec = None,
        tz: Tz = None,
        limit: Limit = 1000,
    ) -> ReadingsPage:
        """Readings of one sensor in a time range (default: the last hour): raw and paged, or bucketed."""
        scope = narrow(scope, plant, None)
        span = window(start, end, ctx.now(), timedelta(hours=1))
        known_sensor(scope, sensor_id)
        page = ReadingsPage(
            sensor_id=sensor_id, start=dt(span.start_ms), end=dt(span.end_ms), bucket_seconds=None, tz=check_tz(tz)
        )
        if bucket is None:
            rows = ctx.queries.readings(scope, series=Series(sensor_id=sensor_id), window=span, limit=limit + 1)
            if len(rows) > limit:
                page.next_start = dt(rows[limit]["ts_ms"])
            page.readings = [
                RawReading(ts=dt(r["ts_ms"]), **{k: r[k] for k in ("value", "score", "anomaly", "reasons", "model")})
                for r in rows[:limit]
            ]
            return page
        page.bucket_seconds = parse_bucket(bucket)
        rows = series_buckets(scope, Series(sensor_id=sensor_id), span.start_ms, span.end_ms, page.bucket_seconds, tz)
        page.buckets = [_bucket(r) for r in rows[:limit]]
        return page

    @app.get("/v1/series", tags=["readings"])
    def series(
        scope: Caller,
        line: Ident,
        plant: OptionalIdent = None,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket: Annotated[str, Query(pattern=r"^\d{1,5}[smhd]$", description="1s to 1d")] = "1m",
        tz: Tz = None,
    ) -> LineSeries:
        """Bucketed readings of every sensor of a line (what the dashboard charts), default the last hour."""
        scope = narrow(scope, plant, line)
        span = window(start, end, ctx.now(), timedelta(hours=1))
        seconds = parse_bucket(bucket)
        catalogue = {(s["plant"], s["sensor_id"]): s for s in ctx.queries.sensors(scope)}
        grouped: dict[tuple[str, str], list[Bucket]] = {key: [] for key in catalogue}
        for row in series_buckets(scope, Series(line=line), span.start_ms, span.end_ms, seconds, check_tz(tz)):
            grouped.setdefault((row["plant"], row["sensor_id"]), []).append(_bucket(row))
        return LineSeries(
            plant=plant,
            line=line,
            start=dt(span.start_ms),
            end=dt(span.end_ms),
            bucket_seconds=seconds,
            tz=tz,
            sensors=[
                SensorSeries(
                    **{k: catalogue[key][k] for k in ("plant", "line", "sensor_id", "asset", "sensor_type", "unit")},
                    buckets=buckets,
                )
                for key, buckets in sorted(grouped.items())
                if key in catalogue
            ],
        )

    @app.get(
        "/v1/export",
        tags=["readings"],
        responses={
            200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}},
            501: {"model": Problem, "description": "This deployment does not serve the requested format"},
        },
        response_class=Response,
    )
    def export(
        scope: Caller,
        start: datetime,
        end: datetime,
        plant: OptionalIdent = None,
        line: OptionalIdent = None,
        sensor_id: OptionalIdent = None,
        format: ExportFormat = "csv",
    ) -> Response:
        """Raw readings of a time range (optionally one line or sensor) as CSV or Parquet, at most 100,000 rows
        (and, in AWS Lambda, what fits in its 6 MB response)."""
        limits = ctx.export
        if refused := limits.refused_formats.get(format):
            raise HTTPException(501, f"format={format} is not served by this deployment: {refused}")
        scope = narrow(scope, plant, line)
        span = window(start, end, ctx.now(), timedelta(hours=1))
        if sensor_id is not None:
            known_sensor(scope, sensor_id)
        rows = ctx.queries.readings(
            scope, series=Series(sensor_id=sensor_id, line=line), window=span, limit=limits.max_rows + 1
        )
        if len(rows) > limits.max_rows:
            raise unprocessable("end", f"more than {limits.max_rows} readings: export a shorter time range")
        body, media_type = encode(rows, format), MEDIA_TYPES[format]
        if limits.body is not None and (size := limits.body.measure(body, media_type)) > limits.body.max_bytes:
            cut = end_that_fits(rows, size, limits.body.max_bytes)
            # both bounds: without a start the window is the hour before `end`, so an `end` alone would move it
            hint = f", e.g. start={_iso(span.start_ms)}&end={_iso(cut)}" if cut is not None else ""
            raise unprocessable(
                "end",
                f"{len(rows)} readings take {size} bytes as a {format} answer here, over the limit of "
                f"{limits.body.max_bytes} ({limits.body.why}): export a shorter time range{hint}",
            )
        name = f"readings-{span.start_ms}-{span.end_ms}.{format}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type=media_type, headers=headers)

    @app.get("/v1/anomalies", tags=["readings"])
    def anomalies(
        scope: Caller,
        plant: OptionalIdent = None,
        line: OptionalIdent = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Limit = 1000,
    ) -> list[Anomaly]:
        """Anomalous readings, newest first, optionally of one plant and line (default: the last hour)."""
        scope = narrow(scope, plant, line)
        span = window(start, end, ctx.now(), timedelta(hours=1))
        return [Anomaly(ts=dt(r.pop("ts_ms")), **r) for r in ctx.queries.anomalies(scope, window=span, limit=limit)]
