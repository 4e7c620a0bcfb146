"""The analytics_api Lambda as Terraform configures it, loaded in-process: its canned API Gateway event and
context, and its handler over a DuckDB store that the recording Timestream fake answers from."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from typing import Any

import boto3
import pytest

from plantwatch.api.cloud import DEFAULT_DATABASE, DEFAULT_TABLE
from tests.conftest import REPO
from tests.fakes.timestream_query import FakeTimestreamQuery

#: An HTTP API (payload 2.0) event for GET /v1/series, by a caller of plant-a.
EVENT: dict[str, Any] = json.loads((REPO / "tests/events/apigw_http_v2_series.json").read_text())


class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the fields Mangum and Powertools read)."""

    function_name = "analytics-api"
    aws_request_id = "11111111-2222-3333-4444-555555555555"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def load_handler(store: Any, module_name: str, env: Mapping[str, str] = {}) -> Any:
    """Import cloud/lambdas/analytics_api/app.py as ``module_name`` with Terraform's Timestream names and ``env``
    set; Timestream answers from ``store``, every other boto3 client is the real one (e.g. DynamoDB on moto)."""
    fake = FakeTimestreamQuery(DEFAULT_DATABASE, DEFAULT_TABLE)
    fake.load(store)
    real_client = boto3.client
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            boto3, "client", lambda service, **kw: fake if service == "timestream-query" else real_client(service, **kw)
        )
        # Terraform's Timestream names, and the region the Lambda runtime always sets
        settings = {
            "TIMESTREAM_DATABASE": DEFAULT_DATABASE,
            "TIMESTREAM_TABLE": DEFAULT_TABLE,
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
        for name, value in {**settings, "PLANTWATCH_API_BASE": "/", **env}.items():
            mp.setenv(name, value)
        spec = importlib.util.spec_from_file_location(module_name, REPO / "cloud/lambdas/analytics_api/app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.handler
