"""Score summaries and retraining requests in the local DuckDB store (the cloud keeps them in DynamoDB)."""

from __future__ import annotations

import threading
from typing import Any, Final

import msgspec

from plantwatch.adapters.duckdb_sql import IN_SCOPE, scope_params
from plantwatch.contract.summaries import ScoreSummaryMessage
from plantwatch.services.analytics import Scope
from plantwatch.services.drift_reports import RetrainRequest, first_start

DRIFT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS score_summaries (
    summary_key VARCHAR PRIMARY KEY, gateway_id VARCHAR NOT NULL, plant VARCHAR NOT NULL, line VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL, document VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS retrain_requests (
    plant VARCHAR NOT NULL, line VARCHAR NOT NULL, requested_at_ms BIGINT NOT NULL, document VARCHAR NOT NULL,
    PRIMARY KEY (plant, line)
);
"""


class DuckDBDrift:
    """:class:`~plantwatch.services.drift_reports.SummaryStore` over the store's DuckDB connection."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = threading.Lock()
        store.cursor().execute(DRIFT_SCHEMA)

    def record_summary(self, summary: ScoreSummaryMessage) -> None:
        """Insert, or replace the summary of the same key (a re-delivery)."""
        with self._lock:
            self.store.cursor().execute(
                "INSERT OR REPLACE INTO score_summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    summary.key,
                    summary.gateway_id,
                    summary.plant,
                    summary.line,
                    summary.model.version,
                    summary.start_ms,
                    summary.end_ms,
                    msgspec.json.encode(summary).decode(),
                ],
            )

    def recent_summaries(self, plant: str, line: str, windows: int) -> list[ScoreSummaryMessage]:
        """Every gateway's summaries of the line's latest ``windows`` windows, oldest first (as in DynamoDB)."""
        cursor = self.store.cursor()
        found = cursor.execute(
            "SELECT document FROM score_summaries WHERE plant = ? AND line = ? "
            "ORDER BY start_ms DESC, gateway_id DESC, model_version DESC LIMIT 1",
            [plant, line],
        ).fetchone()
        if found is None:
            return []
        latest = msgspec.json.decode(found[0], type=ScoreSummaryMessage)
        rows = cursor.execute(
            "SELECT document FROM score_summaries WHERE plant = ? AND line = ? AND start_ms BETWEEN ? AND ? "
            "ORDER BY start_ms, gateway_id, model_version",
            [plant, line, first_start(latest, windows), latest.start_ms],
        ).fetchall()
        return [msgspec.json.decode(row[0], type=ScoreSummaryMessage) for row in rows]

    def summary_lines(self, scope: Scope) -> list[tuple[str, str]]:
        """Lines with summaries in ``scope``."""
        found = (
            self.store.cursor()
            .execute(
                f"SELECT DISTINCT plant, line FROM score_summaries WHERE {IN_SCOPE} ORDER BY plant, line",  # noqa: S608
                scope_params(scope),
            )
            .fetchall()
        )
        return [(row[0], row[1]) for row in found]

    def record_retrain_request(self, request: RetrainRequest) -> None:
        """Keep the line's latest request."""
        with self._lock:
            self.store.cursor().execute(
                "INSERT OR REPLACE INTO retrain_requests VALUES (?, ?, ?, ?)",
                [request.plant, request.line, request.requested_at_ms, msgspec.json.encode(request).decode()],
            )

    def last_retrain_request(self, plant: str, line: str) -> RetrainRequest | None:
        """The line's latest request."""
        row = (
            self.store.cursor()
            .execute("SELECT document FROM retrain_requests WHERE plant = ? AND line = ?", [plant, line])
            .fetchone()
        )
        return msgspec.json.decode(row[0], type=RetrainRequest) if row else None
