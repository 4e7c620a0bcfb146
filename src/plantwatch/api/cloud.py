"""Composition root of the analytics API in AWS Lambda: Timestream answers, DynamoDB keeps alerts and their audit
log, API Gateway's JWT authorizer (Cognito) has verified the token, API Gateway throttles; the app reads the
verified claims from the event; exports are capped to what one Lambda response can carry, and CSV only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI

from plantwatch.adapters.timestream_query import TimestreamQueries, TimestreamQueryClient
from plantwatch.api.app import create_app
from plantwatch.api.auth import ApiGatewayClaims
from plantwatch.api.export import BodyLimit, ExportLimits
from plantwatch.services.analytics import AlertStore
from plantwatch.services.drift_reports import DriftConfig

#: The original design's Timestream names.
DEFAULT_DATABASE = "smart_manufacturing_iot_analytics_platform_sensor_database"
DEFAULT_TABLE = "sensor_readings"
#: AWS Lambda's limit on a synchronous invocation's response (6 MB; API Gateway's HTTP API would take 10 MB).
LAMBDA_RESPONSE_MAX_BYTES: Final = 6 * 1024 * 1024
#: Kept for what Mangum puts around the body: status, headers, the JSON object itself.
RESPONSE_ENVELOPE_BYTES: Final = 16 * 1024
#: Why the cloud refuses format=parquet (measured in docs/cloud.md: pyarrow is 153 MiB, and with it the analytics
#: API's zip is 68 MiB, over Lambda's 50 MB for a directly uploaded zip).
PARQUET_REFUSED: Final = (
    "Parquet needs pyarrow, which is too large for the analytics API's Lambda package; ask for format=csv"
)


def lambda_body_bytes(body: bytes, media_type: str) -> int:
    """Bytes ``body`` takes in the response Mangum hands to Lambda: a JSON string of the text (``text/*``, JSON), or
    of its base64 (anything else, as Mangum encodes binary bodies). Non-ASCII text is counted as ``\\uXXXX`` escapes,
    the most any JSON encoder writes."""
    if media_type.startswith("text/") or media_type.startswith("application/json"):
        try:
            return len(json.dumps(body.decode()).encode())
        except UnicodeDecodeError:
            pass  # Mangum sends undecodable text as base64, too
    return 4 * -(-len(body) // 3) + 2


def cloud_export_limits() -> ExportLimits:
    """Exports in Lambda: at most what fits in one Lambda response, and no Parquet (pyarrow is not packaged)."""
    return ExportLimits(
        body=BodyLimit(
            max_bytes=LAMBDA_RESPONSE_MAX_BYTES - RESPONSE_ENVELOPE_BYTES,
            measure=lambda_body_bytes,
            why="an AWS Lambda response carries at most 6 MB",
        ),
        refused_formats={"parquet": PARQUET_REFUSED},
    )


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
        export=cloud_export_limits(),
    )
