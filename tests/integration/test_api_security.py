"""API security: tokens scope every endpoint to plants and lines, foreign data answers 404, parameters are
validated (422), injection strings change nothing, and the local rate limit answers 429 with Retry-After."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from fastapi.testclient import TestClient

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.api.app import create_app
from plantwatch.api.auth import AUDIENCE, ISSUER, LocalTokens, create_token
from plantwatch.api.ratelimit import RateLimiter
from tests.api_data import KEY, NOW, alert_ref, alerts, filled_store
from tests.moto import alert_tables

#: ids of the API test data's alerts, as gateways make them
A0 = alert_ref("plant-a", 0)
B0 = alert_ref("plant-b", 0)

START, END = "2025-11-24T13:30:00Z", "2025-11-24T16:00:00Z"
FOREIGN_SENSOR = "plant-a.line-1.press-1.temperature"
#: For each endpoint: a request aimed at plant-a's data (made with a plant-b token it must answer 404).
FOREIGN: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/v1/health"): {},
    ("get", "/v1/plants"): {},
    ("get", "/v1/lines"): {"plant": "plant-a"},
    ("get", "/v1/assets"): {"plant": "plant-a"},
    ("get", "/v1/sensors"): {"plant": "plant-a"},
    ("get", "/v1/readings"): {"sensor_id": FOREIGN_SENSOR},
    ("get", "/v1/series"): {"plant": "plant-a", "line": "line-1"},
    ("get", "/v1/export"): {"sensor_id": FOREIGN_SENSOR, "start": START, "end": END},
    ("get", "/v1/anomalies"): {"plant": "plant-a"},
    ("get", "/v1/alerts"): {"plant": "plant-a"},
    ("post", "/v1/alerts/{alert_id}/acknowledge"): {"alert_id": A0},
    ("get", "/v1/audit"): {"plant": "plant-a"},
    ("get", "/v1/overview"): {"plant": "plant-a"},
    ("get", "/v1/models"): {"plant": "plant-a"},
    ("get", "/analytics"): {},
}
#: Endpoints without a plant parameter: scoped answers must simply not contain plant-a.
UNSCOPED = {"/v1/health", "/v1/plants", "/analytics"}
INJECTIONS = [
    "plant-a' OR '1'='1",
    "x'; DROP TABLE readings; --",
    'line-1" OR plant <> "',
    "1) UNION SELECT * FROM audit_log --",
    "plant-b\x00plant-a",
    "../../etc/passwd",
    "plant-b' AND plant = 'plant-a",
    "ago(1h)) OR (1=1",
    "\u202eplant-a",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    return filled_store(Path(tmp_path_factory.mktemp("sec")) / "db.duckdb")


def make_client(
    store: DuckDBStore, *, plants: list[str], lines: list[str] | None = None, alerts: Any = None, **app: Any
) -> TestClient:
    alerts = alerts or DuckDBAlerts(store)
    api = create_app(DuckDBQueries(store), alerts=alerts, auth=LocalTokens(KEY), now=lambda: NOW, **app)
    client = TestClient(api)
    client.headers["Authorization"] = f"Bearer {create_token(KEY, plants=plants, lines=lines, subject='tester')}"
    return client


def call(client: TestClient, method: str, path: str, params: dict[str, Any]) -> Any:
    params = dict(params)
    if "{alert_id}" in path:
        path = path.replace("{alert_id}", quote(params.pop("alert_id"), safe=""))
    return client.request(method.upper(), path, params=params)


def test_every_endpoint_is_covered(store: DuckDBStore) -> None:
    spec = make_client(store, plants=["plant-b"]).get("/openapi.json").json()
    assert {(m, p) for p, ops in spec["paths"].items() for m in ops} == set(FOREIGN)


@pytest.mark.parametrize(("method", "path"), sorted(FOREIGN))
def test_a_plant_b_token_never_reads_plant_a(store: DuckDBStore, method: str, path: str) -> None:
    client = make_client(store, plants=["plant-b"])
    response = call(client, method, path, FOREIGN[(method, path)])
    if path in UNSCOPED:
        assert response.status_code == 200
        assert "plant-a" not in response.text
    else:
        assert response.status_code == 404, response.text
        # the answer only repeats what was asked: the same as for a plant, sensor or alert that doesn't exist
        assert response.json() == {
            "detail": {"plant": "no plant 'plant-a'", "sensor_id": f"no sensor {FOREIGN_SENSOR!r}"}.get(
                next(iter(FOREIGN[(method, path)])), f"no alert {A0!r}"
            )
        }


def test_a_foreign_plant_looks_exactly_like_one_that_does_not_exist(store: DuckDBStore) -> None:
    client = make_client(store, plants=["plant-b"])
    for path in ("/v1/sensors", "/v1/anomalies", "/v1/alerts", "/v1/overview"):
        foreign = client.get(path, params={"plant": "plant-a"})
        missing = client.get(path, params={"plant": "plant-zz"})
        assert (foreign.status_code, foreign.json()["detail"].replace("plant-a", "X")) == (
            missing.status_code,
            missing.json()["detail"].replace("plant-zz", "X"),
        )


def test_unfiltered_answers_hold_only_the_token_plant(store: DuckDBStore) -> None:
    client = make_client(store, plants=["plant-b"])
    assert [p["plant"] for p in client.get("/v1/plants").json()] == ["plant-b"]
    assert {s["plant"] for s in client.get("/v1/sensors").json()} == {"plant-b"}
    assert {a["plant"] for a in client.get("/v1/alerts").json()} == {"plant-b"}
    anomalies = client.get("/v1/anomalies", params={"start": START, "end": END}).json()
    assert anomalies and {a["plant"] for a in anomalies} == {"plant-b"}
    # the sensor id both plants use: only plant-b's readings (values >= 500) come back
    shared = client.get("/v1/readings", params={"sensor_id": "shared-1", "limit": 10_000}).json()["readings"]
    assert shared and min(r["value"] for r in shared) >= 500
    # and acknowledging plant-a's alert did nothing
    assert make_client(store, plants=["plant-a"]).get("/v1/alerts").json()[0]["acknowledged_by"] is None


def test_a_line_scoped_token_sees_only_its_lines(store: DuckDBStore) -> None:
    client = make_client(store, plants=["plant-a"], lines=["line-2"])
    assert {s["line"] for s in client.get("/v1/sensors").json()} == {"line-2"}
    assert client.get("/v1/series", params={"line": "line-1"}).status_code == 404
    assert client.get("/v1/series", params={"line": "line-2"}).status_code == 200
    assert client.get("/v1/alerts").json() == []  # plant-a's alerts are on line-1
    assert client.post(f"/v1/alerts/{A0}/acknowledge").status_code == 404
    assert client.get("/v1/readings", params={"sensor_id": FOREIGN_SENSOR}).status_code == 404


@pytest.mark.parametrize(
    "token",
    [
        "",
        "Bearer",
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        "Bearer " + create_token(b"some-other-key-0123456789abcdefgh", plants=["plant-b"]),
        "Bearer " + create_token(KEY, plants=["plant-b"], ttl_s=-10),
        "Bearer " + jwt.encode({"sub": "x", "plants": ["plant-b"], "aud": AUDIENCE, "iss": ISSUER}, KEY),  # no exp
        "Bearer "
        + jwt.encode(
            {"sub": "x", "plants": ["plant-b"], "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 60},
            None,
            algorithm="none",
        ),
        "Bearer "
        + jwt.encode({"sub": "x", "plants": ["b c"], "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 60}, KEY),
    ],
)
def test_bad_tokens_get_401(store: DuckDBStore, token: str) -> None:
    client = make_client(store, plants=["plant-b"])
    response = client.get("/v1/sensors", headers={"Authorization": token})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/v1/readings", {"sensor_id": "shared-1", "bucket": "2d"}, "between 1s and 1d"),
        ("/v1/readings", {"sensor_id": "shared-1", "bucket": "1m", "tz": "Mars/Olympus_Mons"}, "not a known IANA"),
        ("/v1/readings", {"sensor_id": "shared-1", "bucket": "7s", "tz": "Europe/Berlin"}, "whole minutes"),
        ("/v1/readings", {"sensor_id": "shared-1", "start": END, "end": START}, "start must be before end"),
        ("/v1/readings", {"sensor_id": "shared-1", "bucket": "1s", "start": "2025-01-01T00:00:00Z"}, "buckets"),
        ("/v1/series", {"line": "line-1", "limit": "x", "bucket": "1x"}, "pattern"),
        ("/v1/export", {"start": START, "end": END, "format": "xml"}, "csv"),
        ("/v1/anomalies", {"limit": 0}, "greater than or equal to 1"),
        ("/v1/alerts", {"state": "closed"}, "open"),
    ],
)
def test_bad_parameters_get_422_saying_what_is_wrong(
    store: DuckDBStore, path: str, params: dict[str, Any], message: str
) -> None:
    response = make_client(store, plants=["plant-b"]).get(path, params=params)
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


def test_injection_strings_in_every_parameter_change_and_leak_nothing(store: DuckDBStore) -> None:
    client = make_client(store, plants=["plant-b"])
    before = client.get("/v1/health").json()
    spec = client.get("/openapi.json").json()
    tried = 0
    for (method, path), base in FOREIGN.items():
        names = {p["name"] for p in spec["paths"][path][method].get("parameters", [])}
        for name in names:
            for bad in INJECTIONS:
                params = {
                    "sensor_id": "shared-1",
                    "line": "line-1",
                    "start": START,
                    "end": END,
                    "alert_id": B0,
                }
                params = {k: v for k, v in params.items() if k in names} | {name: bad}
                response = call(client, method, path, params)
                tried += 1
                # refused before any query runs (no data in an error body), never a 5xx
                assert response.status_code in (404, 422), (path, name, bad, response.text)
                assert "detail" in response.json()
        assert base is not None
    assert tried > 200
    assert client.get("/v1/health").json() == before
    assert make_client(store, plants=["plant-a"]).get("/v1/health").json()["readings"] > 0


def test_rate_limit_answers_429_with_retry_after_per_caller(store: DuckDBStore) -> None:
    now = [1000.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    client = make_client(store, plants=["plant-b"], rate_limit=limiter)
    assert [client.get("/v1/plants").status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get("/v1/plants")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert "rate limit" in limited.json()["detail"]
    other = client.get("/v1/plants", headers={"Authorization": f"Bearer {create_token(KEY, plants=['plant-a'])}"})
    assert other.status_code == 200  # another caller has its own bucket
    now[0] += 0.5
    assert client.get("/v1/plants").status_code == 200


ALERT_PATHS = {"/v1/alerts", "/v1/alerts/{alert_id}/acknowledge", "/v1/audit"}


def test_the_cloud_alert_store_keeps_plants_and_lines_apart_too(store: DuckDBStore, dynamodb_endpoint: str) -> None:
    # GIVEN the API over the DynamoDB alert store (as in the cloud), holding the same alerts
    dynamo = alert_tables(dynamodb_endpoint)
    dynamo.record_alerts(alerts())
    client = make_client(store, plants=["plant-b"], alerts=dynamo)
    # THEN a plant-b token gets the same 404s as over DuckDB, and only plant-b's alerts
    for (method, path), params in FOREIGN.items():
        if path in ALERT_PATHS:
            response = call(client, method, path, params)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["detail"] in ("no plant 'plant-a'", f"no alert {A0!r}")
    assert {a["plant"] for a in client.get("/v1/alerts").json()} == {"plant-b"}
    line_2 = make_client(store, plants=["plant-a"], lines=["line-2"], alerts=dynamo)
    assert line_2.get("/v1/alerts").json() == []
    assert line_2.post(f"/v1/alerts/{A0}/acknowledge").status_code == 404
    # injection strings in every alert parameter are refused or find nothing, and change nothing
    spec = client.get("/openapi.json").json()
    for method, path in [(m, p) for (m, p) in FOREIGN if p in ALERT_PATHS]:
        for name in {p["name"] for p in spec["paths"][path][method].get("parameters", [])}:
            for bad in INJECTIONS:
                response = call(client, method, path, {"alert_id": B0} | {name: bad})
                assert response.status_code in (404, 422), (path, name, bad, response.text)
    owner = make_client(store, plants=["plant-a"], alerts=dynamo)
    assert all(a["acknowledged_by"] is None for a in owner.get("/v1/alerts").json())
    assert dynamo.audit_entries("plant-a") == [] and dynamo.audit_entries("plant-b") == []
