"""Routes over alerts, the audit log, the live overview of lines, and the models in use."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Body, FastAPI, HTTPException, Path

from plantwatch.api.context import ApiContext, Caller
from plantwatch.api.models import (
    Acknowledgement,
    AlertOut,
    AuditEntryOut,
    AuditLog,
    DriftOut,
    LatestReading,
    LineModels,
    LineOverview,
    ModelInUse,
)
from plantwatch.api.params import Limit, OptionalIdent, dt, ms, narrow
from plantwatch.contract.alerts import ALERT_ID_MAX, ALERT_ID_PATTERN
from plantwatch.services.analytics import UNKNOWN_MODEL, Row
from plantwatch.services.dashboards import overview, split_model
from plantwatch.services.drift_reports import LineDrift, drift_report


def _alert(row: Row) -> AlertOut:
    def when(key: str) -> datetime | None:
        return dt(row[key]) if row[key] is not None else None

    return AlertOut(
        **{k: row[k] for k in ("alert_id", "plant", "line", "asset", "sensor_id", "kind", "state", "reasons")},
        score=row["score"],
        gateway_id=row["gateway_id"],
        raised_at=dt(row["raised_at_ms"]),
        cleared_at=when("cleared_at_ms"),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=when("acknowledged_at_ms"),
    )


def _drift(d: LineDrift) -> DriftOut:
    return DriftOut(
        model_name=d.model.name,
        model_version=d.model.version,
        psi=d.psi,
        threshold=d.threshold,
        drifted=d.drifted,
        scores=d.scores,
        window_start=dt(d.start_ms),
        window_end=dt(d.end_ms),
        summaries=d.windows,
        summaries_per_check=d.window,
        status="partial" if not d.complete else "drifted" if d.drifted else "ok",
        retrain_requested_at=dt(d.retrain_requested_at_ms) if d.retrain_requested_at_ms is not None else None,
    )


def register(app: FastAPI, ctx: ApiContext) -> None:
    """Add the alert, overview and model routes to ``app``."""

    @app.get("/v1/alerts", tags=["alerts"])
    def alerts(
        scope: Caller,
        plant: OptionalIdent = None,
        line: OptionalIdent = None,
        state: Literal["open", "cleared"] | None = None,
        limit: Limit = 1000,
    ) -> list[AlertOut]:
        """Alerts, newest raised first, optionally of one plant, line and state."""
        rows = ctx.alerts.alerts(narrow(scope, plant, line), state=state, limit=limit)
        return [_alert(r) for r in rows]

    @app.post("/v1/alerts/{alert_id}/acknowledge", tags=["alerts"])
    def acknowledge(
        scope: Caller,
        alert_id: Annotated[str, Path(pattern=ALERT_ID_PATTERN, max_length=ALERT_ID_MAX)],
        body: Annotated[Acknowledgement | None, Body()] = None,
    ) -> AlertOut:
        """Acknowledge an alert as the token's subject; recorded in the hash-chained audit log (idempotent)."""
        row = ctx.alerts.acknowledge(
            scope, alert_id=alert_id, actor=scope.subject, note=body.note if body else "", at_ms=ms(ctx.now())
        )
        if row is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return _alert(row)

    @app.get("/v1/audit", tags=["alerts"])
    def audit(scope: Caller, plant: OptionalIdent = None, limit: Limit = 1000) -> AuditLog:
        """The audit log of the caller's plants, oldest first, with the verification of the whole hash chain."""
        rows, broken = ctx.alerts.audit(narrow(scope, plant, None), limit=limit)
        entries = [AuditEntryOut(at=dt(r.pop("at_ms")), **r) for r in rows]
        return AuditLog(chain_intact=broken is None, first_broken_seq=broken, entries=entries)

    @app.get("/v1/overview", tags=["dashboard"])
    def line_overview(scope: Caller, plant: OptionalIdent = None, line: OptionalIdent = None) -> list[LineOverview]:
        """Per line: latest value per sensor, open alerts, models in use, and a health score."""
        alert_store = ctx.alerts if ctx.has_alerts else None
        rows = overview(ctx.queries, alert_store, narrow(scope, plant, line), now_ms=ms(ctx.now()))
        return [
            LineOverview(
                **{k: r[k] for k in ("plant", "line", "health_score", "anomaly_share_15m", "open_alerts", "models")},
                last_ts=dt(r["last_ts_ms"]) if r["last_ts_ms"] is not None else None,
                sensors=[
                    LatestReading(
                        **{k: s[k] for k in ("asset", "sensor_id", "sensor_type", "unit")},
                        ts=dt(s["last_ts_ms"]),
                        value=s["last_value"],
                        anomaly=s["last_anomaly"],
                    )
                    for s in r["sensors"]
                ],
            )
            for r in rows
        ]

    @app.get("/v1/models", tags=["dashboard"])
    def models(scope: Caller, plant: OptionalIdent = None, line: OptionalIdent = None) -> list[LineModels]:
        """Model versions recorded on each line's latest readings, and drift from the gateways' score summaries."""
        narrowed = narrow(scope, plant, line)
        per_line: dict[tuple[str, str], dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
        for s in ctx.queries.sensors(narrowed):
            per_line[(s["plant"], s["line"])][s["model"]].append(s)
        drift: dict[tuple[str, str], LineDrift] = {}
        if ctx.drift is not None:
            drift = {(d.plant, d.line): d for d in drift_report(ctx.drift, narrowed, ctx.drift_config)}
        for key in drift:
            per_line.setdefault(key, defaultdict(list))
        out = []
        for (p, ln), by_model in sorted(per_line.items()):
            used = []
            found = drift.get((p, ln))
            for model, sensors in sorted(by_model.items()):
                name, version = split_model(model)
                if model == UNKNOWN_MODEL and found is not None:
                    # a backend that keeps no model per reading (Timestream): the one the line's gateways report
                    # scoring with in their score summaries
                    name, version = found.model.name, found.model.version
                last = max(s["last_ts_ms"] for s in sensors)
                used.append(ModelInUse(name=name, version=version, sensors=len(sensors), last_ts=dt(last)))
            out.append(LineModels(plant=p, line=ln, models=used, drift=[_drift(found)] if found else []))
        return out
