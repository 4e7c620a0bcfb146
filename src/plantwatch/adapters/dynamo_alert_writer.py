"""Writing alerts into the DynamoDB alerts table: what the stream processor needs, and nothing more.

Kept apart from :mod:`plantwatch.adapters.dynamo_alerts` (reads, acknowledgements, audit log) so the stream
processor's code, and so its IAM policy, reaches the alerts table with UpdateItem only and the audit log not at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Final

from botocore.exceptions import ClientError

from plantwatch.contract.alerts import Alert
from plantwatch.services.alert_ingest import AlertRefusedError

log = logging.getLogger(__name__)

_ORDER_MAX: Final = 2**63 - 1
#: The table's TTL attribute (epoch seconds); only cleared alerts get one, and only with a retention set.
EXPIRES_AT: Final = "expires_at"
#: Errors that the same write can never get past. ItemCollectionSizeLimitExceeded: a plant's alerts reached the
#: 10 GB a partition key may hold in a table with a local secondary index (set a retention).
_REFUSALS: Final = frozenset({"ItemCollectionSizeLimitExceededException", "ValidationException"})


def order_key(raised_at_ms: int, alert_id: str) -> str:
    """Sort key of the ``by_raised`` index: ascending order is newest raised first, then alert id."""
    return f"{_ORDER_MAX - raised_at_ms:020d}#{alert_id}"


def dynamodb_client() -> Any:
    """A boto3 DynamoDB client (region, credentials and ``AWS_ENDPOINT_URL`` from the environment)."""
    import boto3

    return boto3.client("dynamodb")


def attr_s(value: str) -> dict[str, str]:
    """A DynamoDB string attribute value."""
    return {"S": value}


def attr_n(value: int | float) -> dict[str, str]:
    """A DynamoDB number attribute value."""
    return {"N": str(value)}


def dynamo_number(value: float) -> float:
    """``value`` as DynamoDB can store it: no NaN or infinity (0.0), nothing closer to zero than 1e-130 (0.0)."""
    return value if math.isfinite(value) and (value == 0 or 1e-130 <= abs(value) < 1e125) else 0.0


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call."""
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoAlertWriter:
    """Inserts and updates alerts by (plant, alert_id): the AlertIngest's store in the cloud."""

    def __init__(self, client: Any, *, alerts_table: str, retention_days: int = 0) -> None:
        if retention_days < 0:
            raise ValueError(f"alert retention must be 0 (keep) or a number of days, got {retention_days}")
        self.client = client
        self.alerts_table = alerts_table
        #: days a cleared alert is kept after it cleared (DynamoDB TTL deletes it later); 0: kept for ever
        self.retention_days = retention_days

    # --- ingest -------------------------------------------------------------------------------------

    def record_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert alerts or update known ones (the first acknowledgement stays, through the API or on the floor); a
        cleared alert is never reopened."""
        stored = 0
        for alert in {a.alert_id: a for a in alerts}.values():
            values: dict[str, Any] = {
                ":line": attr_s(alert.line),
                ":asset": attr_s(alert.asset),
                ":sensor": attr_s(alert.sensor_id),
                ":kind": attr_s(alert.kind),
                ":state": attr_s(alert.state),
                ":raised": attr_n(alert.raised_at_ms),
                ":reasons": {"L": [attr_s(r) for r in alert.reasons]},
                ":score": attr_n(dynamo_number(alert.score)),
                ":gateway": attr_s(alert.gateway_id),
                ":order": attr_s(order_key(alert.raised_at_ms, alert.alert_id)),
            }
            update = (
                "SET #line = :line, asset = :asset, sensor_id = :sensor, kind = :kind, #state = :state, "
                "raised_at_ms = :raised, reasons = :reasons, score = :score, gateway_id = :gateway, order_key = :order"
            )
            if alert.acknowledged_by is not None:  # on the floor; the first acknowledgement stays
                update += (
                    ", acknowledged_by = if_not_exists(acknowledged_by, :ack_by), "
                    "acknowledged_at_ms = if_not_exists(acknowledged_at_ms, :ack_at)"
                )
                values[":ack_by"] = attr_s(alert.acknowledged_by)
                values[":ack_at"] = attr_n(alert.acknowledged_at_ms or alert.raised_at_ms)
            if alert.cleared_at_ms is None:
                update += " REMOVE cleared_at_ms"
            else:
                update += ", cleared_at_ms = :cleared"
                values[":cleared"] = attr_n(alert.cleared_at_ms)
                if self.retention_days:
                    update += f", {EXPIRES_AT} = :expires"
                    values[":expires"] = attr_n(alert.cleared_at_ms // 1000 + self.retention_days * 86_400)
            condition: dict[str, Any] = {}
            if alert.state != "cleared":  # a late or repeated event of a cleared alert must not reopen it
                condition = {"ConditionExpression": "attribute_not_exists(#state) OR #state <> :cleared_state"}
                values[":cleared_state"] = attr_s("cleared")
            try:
                self.client.update_item(
                    TableName=self.alerts_table,
                    Key={"plant": attr_s(alert.plant), "alert_id": attr_s(alert.alert_id)},
                    UpdateExpression=update,
                    ExpressionAttributeNames={"#line": "line", "#state": "state"},
                    ExpressionAttributeValues=values,
                    **condition,
                )
            except ClientError as exc:
                code = error_code(exc)
                if code in _REFUSALS:
                    message = exc.response.get("Error", {}).get("Message", "")
                    raise AlertRefusedError(f"{code}: {message}") from exc
                if code != "ConditionalCheckFailedException":
                    raise
                log.info("alert %s is already cleared: a late %s event leaves it so", alert.alert_id, alert.state)
                continue
            stored += 1
        return stored


def connect_alert_writer(*, alerts_table: str, retention_days: int = 0) -> DynamoAlertWriter:
    """The writer over a boto3 DynamoDB client from the environment."""
    return DynamoAlertWriter(dynamodb_client(), alerts_table=alerts_table, retention_days=retention_days)
