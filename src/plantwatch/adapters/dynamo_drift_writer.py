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

    def _put(
        self, pk: str, sk: str, document: bytes, at_ms: int, *, condition: dict[str, Any] | None = None, **extra: str
    ) -> None:
        item = {
            "pk": {"S": pk},
            "sk": {"S": sk},
            "document": {"S": document.decode()},
            "expires_at": {"N": str(at_ms // 1000 + self.retention_s)},
            **{k: {"S": v} for k, v in extra.items()},
        }
        self._client.put_item(TableName=self.table, Item=item, **(condition or {}))

    def record_summary(self, summary: ScoreSummaryMessage) -> None:
        """Put the summary (a re-delivery overwrites it with the same content) and list its line."""
        pk = line_key(summary.plant, summary.line)
        sk = f"summary#{summary.start_ms:015d}#{summary.gateway_id}#{summary.model.version}"
        self._put(pk, sk, msgspec.json.encode(summary), summary.end_ms)
        self._put(f"lines#{summary.plant}", summary.line, b"{}", summary.end_ms, plant=summary.plant)

    def claim_retrain_request(self, request: RetrainRequest, previous: RetrainRequest | None) -> bool:
        """Put the request only if the line's stored one is still ``previous`` (a conditional write)."""
        try:
            self._put(
                line_key(request.plant, request.line),
                "retrain",
                msgspec.json.encode(request),
                request.requested_at_ms,
                condition=_still(previous),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_retrain_request(self, request: RetrainRequest, previous: RetrainRequest | None) -> None:
        """Put ``previous`` back (or remove the request) if the stored one is still ``request``."""
        key = line_key(request.plant, request.line)
        try:
            if previous is None:
                self._client.delete_item(
                    TableName=self.table, Key={"pk": {"S": key}, "sk": {"S": "retrain"}}, **_still(request)
                )
            else:
                self._put(
                    key, "retrain", msgspec.json.encode(previous), previous.requested_at_ms, condition=_still(request)
                )
        except self._client.exceptions.ConditionalCheckFailedException:
            pass  # another request replaced it meanwhile: that one stands


def _still(request: RetrainRequest | None) -> dict[str, Any]:
    """The condition of a write that expects the stored request to be ``request`` (None: no request stored)."""
    if request is None:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "document = :document",
        "ExpressionAttributeValues": {":document": {"S": msgspec.json.encode(request).decode()}},
    }
