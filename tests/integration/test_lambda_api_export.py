"""Exports through the analytics_api Lambda: an export too large for one Lambda response is refused with a 422 that
says how to narrow it (never a 500 from Lambda), a range that fits arrives whole, and the local platform, which has
no such limit, serves the same range in one answer."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from fastapi.testclient import TestClient
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
from mangum.handlers.utils import handle_base64_response_body

from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.api.cloud import (
    LAMBDA_RESPONSE_MAX_BYTES,
    RESPONSE_ENVELOPE_BYTES,
    lambda_body_bytes,
)
from tests.api_data import KEY, NOW, batches
from tests.helpers import NOW_MS
from tests.integration.lambda_api_support import EVENT, LambdaContext, load_handler

SPAN_MS = 20 * 3600 * 1000
SENSORS = 13  # plant-a's, each a reading every 10 s
READINGS = SENSORS * SPAN_MS // 10_000  # 93,600: under the 100,000-row cap, over 6 MB as CSV
START = datetime.fromtimestamp((NOW_MS - SPAN_MS) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
END = NOW.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    """20 hours of readings every 10 s."""
    store = DuckDBStore(Path(tmp_path_factory.mktemp("export")) / "db.duckdb")
    store.write(batches(span_ms=SPAN_MS))
    return store


@pytest.fixture(scope="module")
def handler(store: DuckDBStore) -> Any:
    """The Lambda's handler as Terraform configures it, Timestream answered by the recording fake."""
    return load_handler(store, "analytics_api_export")


def export(handler: Any, **params: str) -> dict[str, Any]:
    """GET /v1/export through the handler, as API Gateway's HTTP API (payload 2.0) sends it, for plant-a's caller."""
    event = copy.deepcopy(EVENT)
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /v1/{proxy+}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/export"
    event["rawQueryString"] = urlencode(params)
    event["queryStringParameters"] = params
    response: dict[str, Any] = handler(event, LambdaContext())
    return response


def test_an_export_over_the_lambda_response_limit_is_a_422_that_says_how_to_narrow_it(handler: Any) -> None:
    # WHEN a caller exports 20 hours of plant-a (93,600 readings: over 6 MB of CSV)
    response = export(handler, plant="plant-a", start=START, end=END)
    # THEN the answer is a 422 naming the limit and a shorter range, not a body Lambda would refuse to return
    assert response["statusCode"] == 422, response["body"][:300]
    [problem] = json.loads(response["body"])["detail"]
    assert problem["loc"] == ["query", "end"]
    assert f"{READINGS} readings" in problem["msg"] and "6 MB" in problem["msg"], problem["msg"]
    assert "export a shorter time range, e.g. start=" in problem["msg"], problem["msg"]
    # the suggestion names both bounds (without a start, the window would be the hour before any new end)
    hint = parse_qs(problem["msg"].rsplit("e.g. ", 1)[1])
    assert hint["start"] == [START]
    [suggested] = hint["end"]
    assert START < suggested < END

    # WHEN the caller follows the suggestion THEN the export arrives, whole, in a response Lambda can return
    fitted = export(handler, plant="plant-a", start=hint["start"][0], end=suggested)
    assert fitted["statusCode"] == 200, fitted["body"][:300]
    assert fitted["isBase64Encoded"] is False and fitted["headers"]["content-type"].startswith("text/csv")
    payload = len(json.dumps(fitted).encode())
    assert payload <= LAMBDA_RESPONSE_MAX_BYTES
    rows = list(csv.DictReader(io.StringIO(fitted["body"])))
    end_ms = int(datetime.fromisoformat(suggested).timestamp() * 1000)
    assert len(rows) == SENSORS * ((end_ms - (NOW_MS - SPAN_MS)) // 10_000), "every reading of the range, none cut off"
    assert max(int(r["ts_ms"]) for r in rows) < end_ms
    # AND the limit is measured on what the Lambda response really holds, the envelope within what is kept for it
    body = lambda_body_bytes(fitted["body"].encode(), fitted["headers"]["content-type"])
    assert body <= payload <= body + RESPONSE_ENVELOPE_BYTES


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (bytes(range(256)) * 100, "application/vnd.apache.parquet"),  # binary: base64
        ('a,"b"\n\u00e9\tz\n'.encode(), "text/csv; charset=utf-8"),  # text: escapes, non-ASCII
        (b"\xff\xfe", "text/csv"),  # not UTF-8: Mangum falls back to base64
    ],
)
def test_a_body_is_measured_as_mangum_puts_it_into_the_response(body: bytes, media_type: str) -> None:
    carried, _ = handle_base64_response_body(body, {"content-type": media_type}, [*DEFAULT_TEXT_MIME_TYPES])
    assert lambda_body_bytes(body, media_type) == len(json.dumps(carried).encode())


def test_the_local_platform_serves_the_whole_range_in_one_answer(store: DuckDBStore) -> None:
    # the local API (uvicorn, no response limit) keeps the 100,000-row cap only
    client = TestClient(create_app(DuckDBQueries(store), auth=LocalTokens(KEY), now=lambda: NOW))
    client.headers["Authorization"] = f"Bearer {create_token(KEY, plants=['plant-a'])}"
    response = client.get("/v1/export", params={"plant": "plant-a", "start": START, "end": END})
    assert response.status_code == 200
    assert len(response.content) > LAMBDA_RESPONSE_MAX_BYTES
    assert len(response.text.splitlines()) == 1 + READINGS
