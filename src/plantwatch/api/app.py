"""The FastAPI application: catalogue, readings, anomalies, alerts, overview, models, and the original
``GET /analytics``; every data endpoint needs a bearer token and answers only within its plants and lines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from plantwatch import __version__
from plantwatch.api import routes_alerts, routes_readings
from plantwatch.api.auth import Authenticator
from plantwatch.api.context import ApiContext, Caller
from plantwatch.api.export import ExportLimits
from plantwatch.api.models import AnalyticsRow, Asset, Health, Line, Plant, Problem, Sensor
from plantwatch.api.params import OptionalIdent, dt, narrow, window
from plantwatch.api.ratelimit import RateLimiter
from plantwatch.services.analytics import AlertStore, AnalyticsQueries, Row, Scope
from plantwatch.services.drift_reports import DriftConfig, SummaryReader

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, invalid or expired bearer token"},
    404: {"model": Problem, "description": "Not found, or outside the token's plants and lines"},
    429: {"model": Problem, "description": "Rate limit exceeded; see Retry-After"},
}
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"


def sensor_model(row: Row) -> Sensor:
    """A catalogue row as the API's Sensor."""
    last = row["last_ts_ms"]
    return Sensor(
        **{k: row[k] for k in ("plant", "line", "asset", "sensor_id", "sensor_type", "unit", "model", "readings")},
        last_ts=dt(last) if last is not None else None,
        last_value=row.get("last_value"),
        last_anomaly=row.get("last_anomaly"),
    )


def _last(rows: list[Row]) -> datetime | None:
    stamps = [r["last_ts_ms"] for r in rows if r["last_ts_ms"] is not None]
    return dt(max(stamps)) if stamps else None


def create_app(
    queries: AnalyticsQueries,
    *,
    auth: Authenticator,
    alerts: AlertStore | None = None,
    status: Callable[[], dict[str, Any]] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    rate_limit: RateLimiter | None = None,
    dashboard: bool = True,
    drift: SummaryReader | None = None,
    drift_config: DriftConfig | None = None,
    export: ExportLimits | None = None,
) -> FastAPI:
    """Build the API over ``queries`` (and ``alerts``); ``status`` adds live component figures to the health answer;
    ``export`` limits ``GET /v1/export`` (default: 100,000 rows, CSV and Parquet, no byte cap)."""
    app = FastAPI(title="plantwatch", version=__version__, description="Production-line readings, anomalies, alerts.")
    if rate_limit is not None:
        app.middleware("http")(rate_limit)
    ctx = ApiContext(queries, alerts, auth, now, drift=drift, drift_config=drift_config, export=export)
    app.state.ctx = ctx

    @app.get("/v1/health", tags=["platform"])
    def health(scope: Caller) -> Health:
        """Liveness, stored totals of the caller's plants, and live component figures."""
        return Health(status="ok", components=status() if status else {}, **queries.totals(scope))

    def catalogue(scope: Scope, plant: str | None, line: str | None) -> list[Row]:
        return queries.sensors(narrow(scope, plant, line))

    @app.get("/v1/plants", tags=["catalogue"])
    def plants(scope: Caller) -> list[Plant]:
        """The plants the caller may read."""
        by_plant: dict[str, list[Row]] = defaultdict(list)
        for row in queries.sensors(scope):
            by_plant[row["plant"]].append(row)
        return [
            Plant(
                plant=p,
                lines=sorted({r["line"] for r in rows}),
                sensors=len(rows),
                readings=sum(r["readings"] for r in rows),
                last_ts=_last(rows),
            )
            for p, rows in sorted(by_plant.items())
        ]

    @app.get("/v1/lines", tags=["catalogue"])
    def lines(scope: Caller, plant: OptionalIdent = None) -> list[Line]:
        """Production lines, optionally of one plant."""
        by_line: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for row in catalogue(scope, plant, None):
            by_line[(row["plant"], row["line"])].append(row)
        return [
            Line(plant=p, line=ln, assets=sorted({r["asset"] for r in rows}), sensors=len(rows), last_ts=_last(rows))
            for (p, ln), rows in sorted(by_line.items())
        ]

    @app.get("/v1/assets", tags=["catalogue"])
    def assets(scope: Caller, plant: OptionalIdent = None, line: OptionalIdent = None) -> list[Asset]:
        """Assets (machines), optionally of one plant and line."""
        by_asset: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
        for row in catalogue(scope, plant, line):
            by_asset[(row["plant"], row["line"], row["asset"])].append(row)
        return [
            Asset(plant=p, line=ln, asset=a, sensors=[r["sensor_id"] for r in rows], last_ts=_last(rows))
            for (p, ln, a), rows in sorted(by_asset.items())
        ]

    @app.get("/v1/sensors", tags=["catalogue"])
    def sensors(scope: Caller, plant: OptionalIdent = None, line: OptionalIdent = None) -> list[Sensor]:
        """Sensors that have stored readings, with their latest reading, optionally of one plant and line."""
        return [sensor_model(row) for row in catalogue(scope, plant, line)]

    routes_readings.register(app, ctx)
    routes_alerts.register(app, ctx)

    @app.get("/analytics", tags=["original"])
    def analytics(scope: Caller) -> list[AnalyticsRow]:
        """The original design's endpoint: average value and count per sensor, line and type, last hour."""
        last_hour = window(None, None, now(), timedelta(hours=1))
        return [AnalyticsRow(**r) for r in queries.summary(scope, window=last_hour)]

    for route in app.routes:  # document the refusals every data endpoint can answer
        if isinstance(route, APIRoute):
            route.responses = {**_REFUSALS, **route.responses}

    if dashboard and (DASHBOARD_DIR / "index.html").exists():
        app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(DASHBOARD_DIR / "index.html")

    else:

        @app.get("/", include_in_schema=False)
        def docs() -> RedirectResponse:
            return RedirectResponse("/docs")

    return app
