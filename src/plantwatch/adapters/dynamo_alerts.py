"""Alerts and the hash-chained audit log of their acknowledgements in DynamoDB (the cloud's alert store).

Two tables, both partitioned by plant, so every read names the caller's plant and a caller of plant A never
reads plant B:

- alerts: key (plant, alert_id); local secondary index ``by_raised`` on ``order_key`` (newest raised first,
  then alert id, the order the DuckDB store answers in), read with strong consistency.
- audit: key (plant, seq); one append-only hash chain per plant. An entry is written only with the condition
  that its seq does not exist yet, in the same transaction as the alert's acknowledgement (conditional on the
  alert not being acknowledged yet): two concurrent acknowledgements can neither both win nor fork the chain.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Final

from botocore.exceptions import ClientError

from plantwatch.adapters.dynamo_alert_writer import DynamoAlertWriter, attr_n, attr_s, dynamodb_client, error_code
from plantwatch.domain.audit import GENESIS, AuditEntry, entry_hash, first_break
from plantwatch.services.analytics import Row, Scope

log = logging.getLogger(__name__)

#: The alerts table's index that lists a plant's alerts newest raised first.
BY_RAISED: Final = "by_raised"
ACKNOWLEDGE: Final = "alert.acknowledge"


class AuditContentionError(RuntimeError):
    """The audit chain's head kept moving: too many acknowledgements of one plant at the same moment."""


def table_definitions(alerts_table: str, audit_table: str) -> list[dict[str, Any]]:
    """``create_table`` arguments of both tables (Terraform declares the same keys: cloud/terraform/alerts.tf)."""
    string, number = "S", "N"
    return [
        {
            "TableName": alerts_table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "plant", "AttributeType": string},
                {"AttributeName": "alert_id", "AttributeType": string},
                {"AttributeName": "order_key", "AttributeType": string},
            ],
            "KeySchema": [
                {"AttributeName": "plant", "KeyType": "HASH"},
                {"AttributeName": "alert_id", "KeyType": "RANGE"},
            ],
            "LocalSecondaryIndexes": [
                {
                    "IndexName": BY_RAISED,
                    "KeySchema": [
                        {"AttributeName": "plant", "KeyType": "HASH"},
                        {"AttributeName": "order_key", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        },
        {
            "TableName": audit_table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "plant", "AttributeType": string},
                {"AttributeName": "seq", "AttributeType": number},
            ],
            "KeySchema": [
                {"AttributeName": "plant", "KeyType": "HASH"},
                {"AttributeName": "seq", "KeyType": "RANGE"},
            ],
        },
    ]


def _number(attr: dict[str, str] | None) -> int | None:
    return int(attr["N"]) if attr is not None else None


def _alert_row(item: dict[str, Any]) -> Row:
    """An alerts-table item as the row the DuckDB store returns for it."""
    return {
        **{k: item[k]["S"] for k in ("alert_id", "plant", "line", "asset", "sensor_id", "kind", "state")},
        "raised_at_ms": int(item["raised_at_ms"]["N"]),
        "cleared_at_ms": _number(item.get("cleared_at_ms")),
        "reasons": [r["S"] for r in item["reasons"]["L"]],
        "score": float(Decimal(item["score"]["N"])),
        "gateway_id": item["gateway_id"]["S"],
        "acknowledged_by": item["acknowledged_by"]["S"] if "acknowledged_by" in item else None,
        "acknowledged_at_ms": _number(item.get("acknowledged_at_ms")),
    }


def _audit_row(item: dict[str, Any]) -> Row:
    """An audit-table item as a row (the entry's fields, prev_hash and hash)."""
    return {
        "seq": int(item["seq"]["N"]),
        "at_ms": int(item["at_ms"]["N"]),
        **{k: item[k]["S"] for k in ("actor", "action", "plant", "alert_id", "note", "prev_hash", "hash")},
    }


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(**{k: row[k] for k in AuditEntry.__struct_fields__})


class DynamoAlerts(DynamoAlertWriter):
    """:class:`~plantwatch.services.analytics.AlertStore` over two DynamoDB tables (a boto3 ``dynamodb`` client)."""

    def __init__(self, client: Any, *, alerts_table: str, audit_table: str, max_attempts: int = 25) -> None:
        super().__init__(client, alerts_table=alerts_table)
        self.audit_table = audit_table
        self.max_attempts = max_attempts

    # --- reads --------------------------------------------------------------------------------------

    def get(self, scope: Scope, alert_id: str) -> Row | None:
        """One alert in scope, or None (the same for an alert of another plant as for no alert at all)."""
        for plant in scope.plants:
            item = self.client.get_item(
                TableName=self.alerts_table,
                Key={"plant": attr_s(plant), "alert_id": attr_s(alert_id)},
                ConsistentRead=True,
            ).get("Item")
            if item is not None and scope.allows(plant, item["line"]["S"]):
                return _alert_row(item)
        return None

    def alerts(self, scope: Scope, *, state: str | None, limit: int) -> list[Row]:
        """Alerts in scope, newest raised first (then by alert id), optionally of one state."""
        filters, names, values = [], {}, {}
        if state is not None:
            filters.append("#state = :state")
            names["#state"] = "state"
            values[":state"] = attr_s(state)
        if scope.lines:
            placeholders = [f":line{i}" for i in range(len(scope.lines))]
            filters.append(f"#line IN ({', '.join(placeholders)})")
            names["#line"] = "line"
            values |= {p: attr_s(line) for p, line in zip(placeholders, scope.lines, strict=True)}
        found: list[dict[str, Any]] = []
        for plant in scope.plants:
            request: dict[str, Any] = {
                "TableName": self.alerts_table,
                "IndexName": BY_RAISED,
                "KeyConditionExpression": "plant = :plant",
                "ExpressionAttributeValues": {":plant": attr_s(plant), **values},
                "ConsistentRead": True,
                "Limit": limit,
            }
            if filters:
                request["FilterExpression"] = " AND ".join(filters)
                request["ExpressionAttributeNames"] = names
            found += _take(self._pages(request), limit)
        found.sort(key=lambda item: item["order_key"]["S"])
        return [_alert_row(item) for item in found[:limit]]

    def audit_entries(self, plant: str) -> list[Row]:
        """Every audit entry of one plant, oldest first."""
        request = {
            "TableName": self.audit_table,
            "KeyConditionExpression": "plant = :plant",
            "ExpressionAttributeValues": {":plant": attr_s(plant)},
            "ConsistentRead": True,
        }
        return [_audit_row(item) for item in self._pages(request)]

    def verify(self, plant: str) -> int | None:
        """The seq of the first entry of ``plant``'s chain that does not follow from the ones before it, or None."""
        return first_break((_entry(r), r["prev_hash"], r["hash"]) for r in self.audit_entries(plant))

    def audit(self, scope: Scope, *, limit: int) -> tuple[list[Row], int | None]:
        """Audit entries of the scope's plants, oldest first, and the first broken seq of their chains, if any."""
        entries: list[Row] = []
        broken: int | None = None
        for plant in sorted(scope.plants):
            chain = self.audit_entries(plant)
            entries += chain
            if broken is None:
                broken = first_break((_entry(r), r["prev_hash"], r["hash"]) for r in chain)
        entries.sort(key=lambda r: (r["at_ms"], r["plant"], r["seq"]))
        return entries[:limit], broken

    # --- acknowledgement ----------------------------------------------------------------------------

    def acknowledge(self, scope: Scope, *, alert_id: str, actor: str, note: str, at_ms: int) -> Row | None:
        """Acknowledge once (later calls return the first acknowledgement) and append it to the plant's chain."""
        for attempt in range(self.max_attempts):
            found = self.get(scope, alert_id)
            if found is None or found["acknowledged_by"] is not None:
                return found
            plant = found["plant"]
            seq, prev = self._head(plant)
            entry = AuditEntry(
                seq=seq + 1, at_ms=at_ms, actor=actor, action=ACKNOWLEDGE, plant=plant, alert_id=alert_id, note=note
            )
            try:
                self.client.transact_write_items(TransactItems=self._acknowledgement(entry, prev))
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                # someone else acknowledged this alert or appended to the chain first: look again
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
                continue
            return {**found, "acknowledged_by": actor, "acknowledged_at_ms": at_ms}
        raise AuditContentionError(f"audit chain of {scope.plants}: no append in {self.max_attempts} attempts")

    def _head(self, plant: str) -> tuple[int, str]:
        """The last (seq, hash) of the plant's chain, or (0, GENESIS) when it is empty."""
        items = self.client.query(
            TableName=self.audit_table,
            KeyConditionExpression="plant = :plant",
            ExpressionAttributeValues={":plant": attr_s(plant)},
            ExpressionAttributeNames={"#hash": "hash"},
            ProjectionExpression="seq, #hash",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )["Items"]
        return (int(items[0]["seq"]["N"]), items[0]["hash"]["S"]) if items else (0, GENESIS)

    def _acknowledgement(self, entry: AuditEntry, prev: str) -> list[dict[str, Any]]:
        """The transaction: mark the alert acknowledged unless it is, and add the chain's next entry unless taken."""
        return [
            {
                "Update": {
                    "TableName": self.alerts_table,
                    "Key": {"plant": attr_s(entry.plant), "alert_id": attr_s(entry.alert_id)},
                    "UpdateExpression": "SET acknowledged_by = :by, acknowledged_at_ms = :at",
                    "ConditionExpression": "attribute_exists(alert_id) AND attribute_not_exists(acknowledged_by)",
                    "ExpressionAttributeValues": {":by": attr_s(entry.actor), ":at": attr_n(entry.at_ms)},
                }
            },
            {
                "Put": {
                    "TableName": self.audit_table,
                    "Item": {
                        "plant": attr_s(entry.plant),
                        "seq": attr_n(entry.seq),
                        "at_ms": attr_n(entry.at_ms),
                        **{k: attr_s(getattr(entry, k)) for k in ("actor", "action", "alert_id", "note")},
                        "prev_hash": attr_s(prev),
                        "hash": attr_s(entry_hash(entry, prev)),
                    },
                    "ConditionExpression": "attribute_not_exists(seq)",
                }
            },
        ]

    def _pages(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item a query returns, page after page."""
        while True:
            page = self.client.query(**request)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def connect_alert_store(*, alerts_table: str, audit_table: str) -> DynamoAlerts:
    """The store over a boto3 DynamoDB client (region, credentials and ``AWS_ENDPOINT_URL`` from the environment)."""
    return DynamoAlerts(dynamodb_client(), alerts_table=alerts_table, audit_table=audit_table)


def _take(items: Iterator[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` items, reading no further pages than needed."""
    out = []
    for item in items:
        out.append(item)
        if len(out) >= limit:
            break
    return out
