"""The analytics_api Lambda: an API Gateway HTTP API v2 event through Mangum gives the same body as the local
app on uvicorn (Timestream answered by the recording fake, loaded with the same data as the local DuckDB; alerts
from DynamoDB on moto server, loaded with the same alerts)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from tests.api_data import KEY, NOW, alert_ref, alerts, filled_store
from tests.conftest import free_port, wait_for
from tests.integration.lambda_api_support import EVENT, LambdaContext, load_handler
from tests.moto import alert_tables

#: ids of the API test data's alerts, as gateways make them
A0 = alert_ref("plant-a", 0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return filled_store(Path(tmp_path_factory.mktemp("lambda")) / "db.duckdb")


@pytest.fixture(scope="module")
def handler(store: Any) -> Any:
    return load_handler(store, "analytics_api_app")


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


@pytest.fixture(scope="module")
def alert_handler(store: Any, dynamodb_endpoint: str) -> Any:
    """The Lambda as Terraform configures it with the alert tables: Timestream faked, DynamoDB on moto server."""
    dynamo = alert_tables(dynamodb_endpoint)
    dynamo.record_alerts(alerts())
    env = {
        "PLANTWATCH_ALERTS_TABLE": dynamo.alerts_table,
        "PLANTWATCH_AUDIT_TABLE": dynamo.audit_table,
        "AWS_ENDPOINT_URL": dynamodb_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    return load_handler(store, "analytics_api_alerts", env)


def request(method: str, path: str, query: str = "", *, plants: str = "plant-a", sub: str | None = None) -> Any:
    """The canned HTTP API v2 event, turned into another request by another caller."""
    event = copy.deepcopy(EVENT)
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&")) if query else None
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    claims["custom:plants"] = plants
    claims["sub"] = sub or claims["sub"]
    return event


def test_alerts_are_listed_from_dynamodb_with_the_same_body_as_uvicorn(alert_handler: Any, uvicorn_url: str) -> None:
    token = create_token(KEY, plants=["plant-a"])
    for query in ("", "state=open", "plant=plant-a&state=cleared&limit=1"):
        response = alert_handler(request("GET", "/v1/alerts", query), LambdaContext())
        assert response["statusCode"] == 200, response["body"]
        local = httpx.get(f"{uvicorn_url}/v1/alerts?{query}", headers={"Authorization": f"Bearer {token}"})
        assert json.loads(response["body"]) == local.json() and local.json()


def test_an_acknowledgement_through_the_lambda_is_recorded_once_in_the_chain(alert_handler: Any) -> None:
    # a caller of plant-b can't acknowledge plant-a's alert, and learns nothing from trying
    foreign = alert_handler(request("POST", f"/v1/alerts/{A0}/acknowledge", plants="plant-b"), LambdaContext())
    assert (foreign["statusCode"], json.loads(foreign["body"])) == (404, {"detail": f"no alert {A0!r}"})
    first = alert_handler(request("POST", f"/v1/alerts/{A0}/acknowledge", sub="operator-1"), LambdaContext())
    assert first["statusCode"] == 200, first["body"]
    assert json.loads(first["body"])["acknowledged_by"] == "operator-1"
    second = alert_handler(request("POST", f"/v1/alerts/{A0}/acknowledge", sub="operator-2"), LambdaContext())
    assert json.loads(second["body"])["acknowledged_by"] == "operator-1"
    audit = json.loads(alert_handler(request("GET", "/v1/audit"), LambdaContext())["body"])
    assert audit["chain_intact"] is True
    assert [(e["seq"], e["actor"], e["alert_id"]) for e in audit["entries"]] == [(1, "operator-1", A0)]
    assert (
        json.loads(alert_handler(request("GET", "/v1/audit", plants="plant-b"), LambdaContext())["body"])["entries"]
        == []
    )


def test_parquet_is_refused_in_the_lambda_with_the_reason_and_csv_is_served(handler: Any, uvicorn_url: str) -> None:
    query = "plant=plant-a&line=line-1&start=2025-11-24T15:00:00Z&end=2025-11-24T16:00:00Z"
    # GIVEN the Lambda's zip holds no pyarrow (docs/cloud.md, "Packaging") WHEN Parquet is asked for
    parquet = handler(request("GET", "/v1/export", f"{query}&format=parquet"), LambdaContext())
    # THEN the caller learns why and what to ask for instead, rather than getting a 500 from a failed import
    assert parquet["statusCode"] == 501, parquet["body"][:300]
    detail = json.loads(parquet["body"])["detail"]
    assert "pyarrow" in detail and "Lambda" in detail and "format=csv" in detail, detail
    # AND CSV holds the same readings the local platform exports (Timestream keeps no model: "unknown" there)
    csv_answer = handler(request("GET", "/v1/export", query), LambdaContext())
    assert csv_answer["statusCode"] == 200 and csv_answer["headers"]["content-type"].startswith("text/csv")
    token = create_token(KEY, plants=["plant-a"])
    local = httpx.get(f"{uvicorn_url}/v1/export?{query}", headers={"Authorization": f"Bearer {token}"})
    assert local.status_code == 200
    cloud_rows = [line.rsplit(",", 1)[0] for line in csv_answer["body"].splitlines()[1:]]
    local_rows = [line.rsplit(",", 1)[0] for line in local.text.splitlines()[1:]]
    assert cloud_rows == local_rows and len(cloud_rows) == 7 * 360


def test_an_access_token_is_refused_with_the_token_to_send_instead(handler: Any) -> None:
    # API Gateway's JWT authorizer accepts a Cognito access token too (client_id matches its audience), but only
    # the ID token carries custom:plants
    event = request("GET", "/v1/series", EVENT["rawQueryString"])
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    for claim in ("custom:plants", "aud", "cognito:username"):
        del claims[claim]
    claims.update({"token_use": "access", "client_id": "1example23456789", "scope": "openid email"})
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 401
    assert "send the ID token" in json.loads(response["body"])["detail"]
