"""Score summaries and retraining requests in DynamoDB: the write half (the stream processor's), via boto3."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from plantwatch.adapters.dynamo_drift import DynamoDBDriftReader, line_key
from plantwatch.contract.summaries import ScoreSummaryMessage
from plantwatch.services.drift_reports import RetrainRequest

#: How long items live (the TTL deletes them later): summaries are evidence for months, not forever.
DEFAULT_RETENTION_DAYS: Final = 90


class DynamoDBDrift(DynamoDBDriftReader):
    """:class:`~plantwatch.services.drift_reports.SummaryStore` over one DynamoDB table (layout: dynamo_drift.py)."""

    def __init__(self, client: Any, table: str, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        super().__init__(client, table)
        self.retention_s = retention_days * 86_400

    def _put(self, pk: str, sk: str, document: bytes, at_ms: int, **extra: str) -> None:
        item = {
            "pk": {"S": pk},
            "sk": {"S": sk},
            "document": {"S": document.decode()},
            "expires_at": {"N": str(at_ms // 1000 + self.retention_s)},
            **{k: {"S": v} for k, v in extra.items()},
        }
        self._client.put_item(TableName=self.table, Item=item)

    def record_summary(self, summary: ScoreSummaryMessage) -> None:
        """Put the summary (a re-delivery overwrites it with the same content) and list its line."""
        pk = line_key(summary.plant, summary.line)
        sk = f"summary#{summary.start_ms:015d}#{summary.gateway_id}#{summary.model.version}"
        self._put(pk, sk, msgspec.json.encode(summary), summary.end_ms)
        self._put(f"lines#{summary.plant}", summary.line, b"{}", summary.end_ms, plant=summary.plant)

    def record_retrain_request(self, request: RetrainRequest) -> None:
        """Keep the line's latest request."""
        self._put(
            line_key(request.plant, request.line), "retrain", msgspec.json.encode(request), request.requested_at_ms
        )
