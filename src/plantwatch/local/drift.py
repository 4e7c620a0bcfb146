"""Drift in the local platform: score summaries into DuckDB, figures for the API, retraining requests logged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from plantwatch.adapters.duckdb_drift import DuckDBDrift
from plantwatch.ports import Archive, Clock, Sink
from plantwatch.services.drift_reports import DriftConfig, DriftIngest, RetrainRequest

log = logging.getLogger(__name__)


class LocalDrift:
    """The summaries topic's handler over the local store; in the cloud the same ingest writes DynamoDB."""

    def __init__(
        self, store: Any, *, sink: Sink, archive: Archive, clock: Clock, window: int, archive_dir: Path
    ) -> None:
        self.store = DuckDBDrift(store)
        self.config = DriftConfig(window=window)
        self.archive_dir = archive_dir
        self.ingest = DriftIngest(
            store=self.store, sink=sink, archive=archive, clock=clock, config=self.config, on_drift=self.requested
        )

    def requested(self, request: RetrainRequest) -> None:
        """Locally a retraining request is recorded (GET /v1/models) and the command to run is logged."""
        log.warning(
            "drift on %s: retrain with `plantwatch train --from-archive %s` (promoted models are picked up live)",
            request.line,
            self.archive_dir,
        )
