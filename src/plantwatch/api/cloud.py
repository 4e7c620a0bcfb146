"""Composition root of the analytics API in AWS Lambda: Timestream answers, DynamoDB keeps alerts and their audit
log, API Gateway's JWT authorizer (Cognito) has verified the token, API Gateway throttles; the app reads the
verified claims from the event."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from plantwatch.adapters.timestream_query import TimestreamQueries, TimestreamQueryClient
from plantwatch.api.app import create_app
from plantwatch.api.auth import ApiGatewayClaims
from plantwatch.services.analytics import AlertStore
from plantwatch.services.drift_reports import DriftConfig

#: The original design's Timestream names.
DEFAULT_DATABASE = "smart_manufacturing_iot_analytics_platform_sensor_database"
DEFAULT_TABLE = "sensor_readings"


def cloud_alert_store(env: Mapping[str, str] = os.environ) -> AlertStore | None:
    """The DynamoDB alert store named by ``PLANTWATCH_ALERTS_TABLE`` and ``PLANTWATCH_AUDIT_TABLE``, if set."""
    alerts_table = env.get("PLANTWATCH_ALERTS_TABLE")
    audit_table = env.get("PLANTWATCH_AUDIT_TABLE")
    if not alerts_table or not audit_table:
        return None
    from plantwatch.adapters.dynamo_alerts import connect_alert_store

    return connect_alert_store(alerts_table=alerts_table, audit_table=audit_table)


def build_cloud_app(
    client: TimestreamQueryClient, env: Mapping[str, str] = os.environ, *, dynamodb: Any = None
) -> FastAPI:
    """The API over Timestream (``TIMESTREAM_DATABASE``, ``TIMESTREAM_TABLE``), the DynamoDB alert store, and
    drift from the DynamoDB table ``PLANTWATCH_DRIFT_TABLE`` (read through ``dynamodb``, a boto3 client) when
    both are given."""
    queries = TimestreamQueries(
        client,
        database=env.get("TIMESTREAM_DATABASE", DEFAULT_DATABASE),
        table=env.get("TIMESTREAM_TABLE", DEFAULT_TABLE),
    )
    drift = None
    table = env.get("PLANTWATCH_DRIFT_TABLE")
    if table and dynamodb is not None:
        from plantwatch.adapters.dynamo_drift import DynamoDBDriftReader

        drift = DynamoDBDriftReader(dynamodb, table)
    threshold = float(env.get("PLANTWATCH_DRIFT_PSI_THRESHOLD") or DriftConfig().threshold)
    return create_app(
        queries,
        alerts=cloud_alert_store(env),
        auth=ApiGatewayClaims(),
        dashboard=False,
        drift=drift,
        drift_config=DriftConfig(threshold=threshold),
    )
