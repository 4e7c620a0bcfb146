"""The HTTP API over a real DuckDB store: readings raw and bucketed, anomalies, /analytics, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.contract import ScoredBatch, ScoredReading
from plantwatch.contract.batch import ModelRef
from tests.helpers import NOW_MS, reading

NOW = datetime.fromtimestamp(NOW_MS / 1000, tz=UTC)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    store = DuckDBStore(Path(tmp_path_factory.mktemp("api")) / "db.duckdb")
    readings = []
    for i in range(120):  # s0: one reading a second over the last two minutes; every 30th is anomalous
        flagged = i % 30 == 0
        readings.append(
            ScoredReading(
                reading=reading(0, value=float(i), ts_ms=NOW_MS - 120_000 + i * 1000),
                score=0.9 if flagged else 0.0,
                anomaly=flagged,
                reasons=("threshold.high",) if flagged else (),
            )
        )
    old = ScoredReading(reading=reading(1, value=1.0, ts_ms=NOW_MS - 2 * 3600_000), score=0.0, anomaly=False)
    store.write(
        [
            ScoredBatch(
                schema_version=1,
                gateway_id="gw-line-1",
                seq=1,
                plant="plant-1",
                model=ModelRef(name="original-thresholds", version="1"),
                readings=(*readings, old),
            )
        ]
    )
    key = b"k" * 32
    client = TestClient(create_app(DuckDBQueries(store), auth=LocalTokens(key), now=lambda: NOW))
    client.headers["Authorization"] = f"Bearer {create_token(key, plants=['plant-1'])}"
    return client


def test_health_counts_what_is_stored(client: TestClient) -> None:
    body = client.get("/v1/health").json()
    assert body | {"components": {}} == {
        "status": "ok",
        "readings": 121,
        "anomalies": 4,
        "batches": 1,
        "quarantined": 0,
        "components": {},
    }


def test_raw_readings_default_to_the_last_hour(client: TestClient) -> None:
    body = client.get("/v1/readings", params={"sensor_id": "s0"}).json()
    assert body["bucket_seconds"] is None and body["buckets"] is None
    assert [r["value"] for r in body["readings"]] == [float(i) for i in range(120)]
    assert body["readings"][0]["ts"] == "2025-11-24T15:58:00Z"
    assert body["readings"][30]["reasons"] == ["threshold.high"]


def test_bucketed_readings(client: TestClient) -> None:
    body = client.get("/v1/readings", params={"sensor_id": "s0", "bucket": "1m"}).json()
    assert [(b["ts"], b["count"], b["min"], b["max"], b["avg"], b["anomalies"]) for b in body["buckets"]] == [
        ("2025-11-24T15:58:00Z", 60, 0.0, 59.0, 29.5, 2),
        ("2025-11-24T15:59:00Z", 60, 60.0, 119.0, 89.5, 2),
    ]


def test_time_range_and_limit(client: TestClient) -> None:
    params = {"sensor_id": "s1", "start": "2025-11-24T13:00:00Z", "end": "2025-11-24T15:00:00Z"}
    assert [r["value"] for r in client.get("/v1/readings", params=params).json()["readings"]] == [1.0]
    limited = client.get("/v1/readings", params={"sensor_id": "s0", "limit": 5}).json()["readings"]
    assert len(limited) == 5


def test_anomalies_newest_first(client: TestClient) -> None:
    body = client.get("/v1/anomalies", params={"line": "line-1"}).json()
    assert [a["value"] for a in body] == [90.0, 60.0, 30.0, 0.0]
    assert client.get("/v1/anomalies", params={"line": "line-2"}).json() == []


def test_original_analytics_endpoint(client: TestClient) -> None:
    assert client.get("/analytics").json() == [
        {
            "sensor_id": "s0",
            "production_line": "line-1",
            "sensor_type": "temperature",
            "avg_value": 59.5,
            "reading_count": 120,
        }
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"sensor_id": "s0; DROP TABLE readings"},
        {"sensor_id": "s0", "bucket": "7w"},
        {"sensor_id": "s0", "bucket": "2d"},
        {"sensor_id": "s0", "limit": 0},
        {"sensor_id": "s0", "start": "2025-11-24T16:00:00Z", "end": "2025-11-24T15:00:00Z"},
        {"sensor_id": "s0", "start": "not a time"},
        {"sensor_id": "s0", "end": "0001-01-01T00:00:00Z"},  # an hour before it does not exist (found by schemathesis)
        {},
    ],
)
def test_bad_parameters_get_422_with_a_message(client: TestClient, params: dict[str, object]) -> None:
    response = client.get("/v1/readings", params=params)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_openapi_document_lists_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/health", "/v1/readings", "/v1/anomalies", "/v1/sensors", "/analytics"} <= set(paths)


def test_every_data_endpoint_needs_a_token(client: TestClient) -> None:
    for path in ("/v1/health", "/v1/readings?sensor_id=s0", "/v1/anomalies", "/v1/sensors", "/analytics"):
        response = client.get(path, headers={"Authorization": ""})
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
