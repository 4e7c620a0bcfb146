"""Score summaries and retraining requests in DynamoDB (the cloud's drift store): the read half, via boto3.

One table, key ``pk`` (partition) + ``sk`` (sort):

- ``pk = "{plant}#{line}"``, ``sk = "summary#{start_ms:015d}#{gateway_id}#{model_version}"``: a summary (the
  sort key orders a line's windows by time, then gateway, then model, so a check's windows are one key range;
  the same summary stored again replaces itself: idempotent);
- ``pk = "{plant}#{line}"``, ``sk = "retrain"``: the line's latest retraining request;
- ``pk = "lines#{plant}"``, ``sk = line``: the lines of a plant that have summaries (for the API's listing).

Every item carries ``expires_at`` (epoch seconds) for the table's TTL, and the JSON document it stands for.
Writing lives in ``dynamo_drift_writer.py``, so the API's import closure (and IAM) has no write call.
"""

from __future__ import annotations

from typing import Any

import msgspec

from plantwatch.contract.summaries import ScoreSummaryMessage
from plantwatch.services.analytics import Scope
from plantwatch.services.drift_reports import RetrainRequest, first_start


def line_key(plant: str, line: str) -> str:
    """The partition key of a line's items."""
    return f"{plant}#{line}"


def _window_key(start_ms: int) -> str:
    """The sort keys of a window's summaries (every gateway's, every model's) begin with this."""
    return f"summary#{start_ms:015d}"


def _summary(item: dict[str, Any]) -> ScoreSummaryMessage:
    return msgspec.json.decode(item["document"]["S"], type=ScoreSummaryMessage)


class DynamoDBDriftReader:
    """The read half of the drift store (all the analytics API may do): :class:`SummaryReader` over DynamoDB."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self.table = table

    def recent_summaries(self, plant: str, line: str, windows: int) -> list[ScoreSummaryMessage]:
        """Every gateway's summaries of the line's latest ``windows`` windows, oldest first: the latest summary,
        then the sort-key range from :func:`first_start` to its window, paged (windows x gateways x models items).
        Read consistently: the stream processor judges a summary right after writing it."""
        pk = {"S": line_key(plant, line)}
        answer = self._client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": pk, ":prefix": {"S": "summary#"}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        if not answer.get("Items"):
            return []
        latest = _summary(answer["Items"][0])
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": pk,
                ":first": {"S": _window_key(max(first_start(latest, windows), 0))},
                ":last": {"S": _window_key(latest.start_ms) + "$"},  # "$" sorts after the "#" that follows the start
            },
            "ConsistentRead": True,
        }
        out = []
        while True:
            answer = self._client.query(**kwargs)
            out += [_summary(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                return out
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def summary_lines(self, scope: Scope) -> list[tuple[str, str]]:
        """Lines with summaries in ``scope`` (one query per plant of the scope)."""
        out = []
        for plant in sorted(scope.plants):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": f"lines#{plant}"}},
            }
            while True:
                answer = self._client.query(**kwargs)
                out += [(plant, item["sk"]["S"]) for item in answer.get("Items", [])]
                if "LastEvaluatedKey" not in answer:
                    break
                kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return [(p, line) for p, line in out if scope.allows(p, line)]

    def last_retrain_request(self, plant: str, line: str) -> RetrainRequest | None:
        """The line's latest request."""
        answer = self._client.get_item(
            TableName=self.table, Key={"pk": {"S": line_key(plant, line)}, "sk": {"S": "retrain"}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return msgspec.json.decode(item["document"]["S"], type=RetrainRequest) if item else None
