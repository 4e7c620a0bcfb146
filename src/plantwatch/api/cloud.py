"""Composition root of the analytics API in AWS Lambda: Timestream answers, API Gateway's JWT authorizer
(Cognito) has verified the token, API Gateway throttles; the app reads the verified claims from the event."""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import FastAPI

from plantwatch.adapters.timestream_query import TimestreamQueries, TimestreamQueryClient
from plantwatch.api.app import create_app
from plantwatch.api.auth import ApiGatewayClaims

#: The original design's Timestream names.
DEFAULT_DATABASE = "smart_manufacturing_iot_analytics_platform_sensor_database"
DEFAULT_TABLE = "sensor_readings"


def build_cloud_app(client: TimestreamQueryClient, env: Mapping[str, str] = os.environ) -> FastAPI:
    """The API over Timestream, configured by ``TIMESTREAM_DATABASE`` and ``TIMESTREAM_TABLE``."""
    queries = TimestreamQueries(
        client,
        database=env.get("TIMESTREAM_DATABASE", DEFAULT_DATABASE),
        table=env.get("TIMESTREAM_TABLE", DEFAULT_TABLE),
    )
    return create_app(queries, auth=ApiGatewayClaims(), dashboard=False)
