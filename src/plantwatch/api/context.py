"""What every route needs: the query backend, the alert store, who is calling, the time, and the export limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from plantwatch.api.auth import Authenticator
from plantwatch.api.export import ExportLimits
from plantwatch.services.analytics import AlertStore, AnalyticsQueries, Scope
from plantwatch.services.drift_reports import DriftConfig, SummaryReader


class ApiContext:
    """The dependencies of the routes, built once per app."""

    def __init__(
        self,
        queries: AnalyticsQueries,
        alerts: AlertStore | None,
        auth: Authenticator,
        now: Callable[[], datetime],
        drift: SummaryReader | None = None,
        drift_config: DriftConfig | None = None,
        export: ExportLimits | None = None,
    ) -> None:
        self.queries = queries
        self.export = export or ExportLimits()
        self.drift = drift
        self.drift_config = drift_config or DriftConfig()
        self._alerts = alerts
        self.auth = auth
        self.now = now

    @property
    def alerts(self) -> AlertStore:
        """The alert store, or 501 where this deployment has none."""
        if self._alerts is None:
            raise HTTPException(501, "alerts are not served by this deployment")
        return self._alerts

    @property
    def has_alerts(self) -> bool:
        """Whether an alert store is configured."""
        return self._alerts is not None


def caller_scope(request: Request) -> Scope:
    """The caller's scope (401 without a valid token), by the app's authenticator."""
    ctx: ApiContext = request.app.state.ctx
    return ctx.auth.scope(request)


#: Route parameter type: the caller's scope.
Caller = Annotated[Scope, Depends(caller_scope)]
