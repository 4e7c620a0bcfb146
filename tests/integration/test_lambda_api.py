"""The analytics_api Lambda: an API Gateway HTTP API v2 event through Mangum gives the same body as the local
app on uvicorn (Timestream answered by the recording fake, loaded with the same data as the local DuckDB)."""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.api.cloud import DEFAULT_DATABASE, DEFAULT_TABLE
from tests.api_data import KEY, NOW, filled_store
from tests.conftest import REPO, free_port, wait_for
from tests.fakes.timestream_query import FakeTimestreamQuery

EVENT = json.loads((REPO / "tests/events/apigw_http_v2_series.json").read_text())


class LambdaContext:
    function_name = "analytics-api"
    aws_request_id = "11111111-2222-3333-4444-555555555555"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return filled_store(Path(tmp_path_factory.mktemp("lambda")) / "db.duckdb")


@pytest.fixture(scope="module")
def handler(store: Any) -> Any:
    fake = FakeTimestreamQuery(DEFAULT_DATABASE, DEFAULT_TABLE)
    fake.load(store)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(boto3, "client", lambda service, **_: fake if service == "timestream-query" else None)
        mp.setenv("TIMESTREAM_DATABASE", DEFAULT_DATABASE)  # as Terraform configures the function
        mp.setenv("TIMESTREAM_TABLE", DEFAULT_TABLE)
        mp.setenv("PLANTWATCH_API_BASE", "/")
        spec = importlib.util.spec_from_file_location("analytics_api_app", REPO / "cloud/lambdas/analytics_api/app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.handler


@pytest.fixture(scope="module")
def uvicorn_url(store: Any) -> Iterator[str]:
    app = create_app(DuckDBQueries(store), alerts=DuckDBAlerts(store), auth=LocalTokens(KEY), now=lambda: NOW)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=15, what="uvicorn")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_an_http_api_v2_event_gets_the_same_body_as_uvicorn(handler: Any, uvicorn_url: str) -> None:
    response = handler(copy.deepcopy(EVENT), LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["content-type"] == "application/json"
    token = create_token(KEY, plants=["plant-a"])
    local = httpx.get(
        f"{uvicorn_url}{EVENT['rawPath']}?{EVENT['rawQueryString']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert local.status_code == 200
    assert json.loads(response["body"]) == local.json()
    assert len(local.json()["sensors"]) == 7 and all(len(s["buckets"]) == 12 for s in local.json()["sensors"])


def test_the_verified_claims_scope_the_lambda_too(handler: Any) -> None:
    foreign = copy.deepcopy(EVENT)
    foreign["requestContext"]["authorizer"]["jwt"]["claims"]["custom:plants"] = "plant-b"
    assert handler(foreign, LambdaContext())["statusCode"] == 404
    unauthorized = copy.deepcopy(EVENT)
    del unauthorized["requestContext"]["authorizer"]
    response = handler(unauthorized, LambdaContext())
    assert response["statusCode"] == 401
    assert "token" in json.loads(response["body"])["detail"]
