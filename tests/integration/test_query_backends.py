"""DuckDB and Timestream answer the same questions with the same results on one dataset; the Timestream SQL is
always one statement with the caller's plant filter, whatever the parameters (Timestream answered by a fake)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.timestream_query import TimestreamQueries, literal
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.services.analytics import Scope, Series, TimeRange
from tests.api_data import KEY, NOW, SPAN_MS, filled_store
from tests.fakes.timestream_query import FakeTimestreamQuery
from tests.helpers import NOW_MS

DB, TABLE = "smart_manufacturing_iot_analytics_platform_sensor_database", "sensor_readings"
SCOPES = [
    Scope(subject="t", plants=("plant-a",)),
    Scope(subject="t", plants=("plant-b",)),
    Scope(subject="t", plants=("plant-a", "plant-b")),
    Scope(subject="t", plants=("plant-a",), lines=("line-2",)),
]
WINDOWS = [
    TimeRange(start_ms=NOW_MS - SPAN_MS, end_ms=NOW_MS),
    TimeRange(start_ms=NOW_MS - 3_600_000 + 1234, end_ms=NOW_MS - 600_000 - 5),
]


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBQueries, TimestreamQueries, FakeTimestreamQuery]:
    store = filled_store(Path(tmp_path_factory.mktemp("backends")) / "db.duckdb")
    fake = FakeTimestreamQuery(DB, TABLE)
    fake.load(store)
    return DuckDBQueries(store), TimestreamQueries(fake, database=DB, table=TABLE), fake


def same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without what only DuckDB stores (the model), floats rounded against summation order."""
    return [{k: round(v, 9) if isinstance(v, float) else v for k, v in r.items() if k != "model"} for r in rows]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: "+".join(s.plants + s.lines))
def test_both_backends_answer_alike(backends: tuple[Any, ...], scope: Scope) -> None:
    duck, ts, fake = backends
    assert same(ts.sensors(scope)) == same(duck.sensors(scope))
    assert ts.totals(scope) | {"batches": 0} == duck.totals(scope) | {"batches": 0, "quarantined": 0}
    for window in WINDOWS:
        for series in (Series(sensor_id="shared-1"), Series(line="line-1"), Series()):
            assert same(ts.readings(scope, series=series, window=window, limit=700)) == same(
                duck.readings(scope, series=series, window=window, limit=700)
            )
            for bucket_s in (30, 60, 300, 3600):
                aligned = TimeRange(
                    start_ms=window.start_ms // (bucket_s * 1000) * bucket_s * 1000,
                    end_ms=-(-window.end_ms // (bucket_s * 1000)) * bucket_s * 1000,
                )
                assert same(ts.buckets(scope, series=series, window=aligned, bucket_s=bucket_s, tz=None)) == same(
                    duck.buckets(scope, series=series, window=aligned, bucket_s=bucket_s, tz=None)
                )
        assert same(ts.anomalies(scope, window=window, limit=50)) == same(
            duck.anomalies(scope, window=window, limit=50)
        )
        assert same(ts.summary(scope, window=window)) == same(duck.summary(scope, window=window))
    assert fake.statements


def test_the_api_answers_alike_over_both_backends(backends: tuple[Any, ...]) -> None:
    duck, ts, _ = backends
    token = f"Bearer {create_token(KEY, plants=['plant-a', 'plant-b'])}"
    clients = [TestClient(create_app(q, auth=LocalTokens(KEY), now=lambda: NOW)) for q in (duck, ts)]
    requests = [
        ("/v1/plants", {}),
        ("/v1/sensors", {"plant": "plant-b"}),
        ("/v1/readings", {"sensor_id": "shared-1", "plant": "plant-a", "limit": 50}),
        ("/v1/readings", {"sensor_id": "shared-1", "plant": "plant-b", "bucket": "15m", "tz": "Asia/Kolkata"}),
        ("/v1/series", {"line": "line-2", "bucket": "5m"}),
        ("/v1/anomalies", {"plant": "plant-a", "limit": 20}),
        ("/v1/overview", {}),
        ("/analytics", {}),
    ]
    for path, params in requests:
        a, b = (c.get(path, params=params, headers={"Authorization": token}) for c in clients)
        assert a.status_code == b.status_code == 200, (path, a.text, b.text)
        assert mask(a.json()) == mask(b.json()), path
    # a sensor id both plants use names no one series for a caller of both: refused alike, asking for the plant
    for client in clients:
        mixed = client.get("/v1/readings", params={"sensor_id": "shared-1"}, headers={"Authorization": token})
        assert mixed.status_code == 422
        assert (
            mixed.json()["detail"][0]["msg"] == "sensor 'shared-1' is in plants plant-a, plant-b: name one with plant="
        )


def mask(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: "*" if k in ("model", "models") else mask(v) for k, v in body.items()}
    if isinstance(body, list):
        return [mask(v) for v in body]
    return round(body, 9) if isinstance(body, float) else body


INJECTIONS = st.one_of(
    st.sampled_from(["x'; DROP TABLE t; --", "a' OR '1'='1", "a'/*", "a\\'", "' UNION SELECT 1 --", "a;b"]),
    st.text(min_size=1, max_size=40),
)


@settings(max_examples=150, deadline=None)
@given(bad=INJECTIONS)
def test_literals_admit_only_identifiers(bad: str) -> None:
    try:
        text = literal(bad)
    except ValueError:
        return
    # what passes is a plain identifier inside one pair of quotes
    assert text == f"'{bad}'" and "'" not in bad and ";" not in bad and " " not in bad


@settings(max_examples=60, deadline=None)
@given(sensor=INJECTIONS, line=INJECTIONS, limit=st.integers(1, 10_000), bucket_s=st.sampled_from([1, 60, 7, 86400]))
def test_every_statement_is_one_select_with_the_plant_filter(sensor: str, line: str, limit: int, bucket_s: int) -> None:
    fake = FakeTimestreamQuery(DB, TABLE)  # check() raises on more than one statement or a missing plant filter
    ts = TimestreamQueries(fake, database=DB, table=TABLE)
    scope = Scope(subject="t", plants=("plant-b",))
    window = TimeRange(start_ms=NOW_MS - 60_000, end_ms=NOW_MS)
    calls = [
        lambda: ts.readings(scope, series=Series(sensor_id=sensor, line=line), window=window, limit=limit),
        lambda: ts.buckets(scope, series=Series(sensor_id=sensor), window=window, bucket_s=bucket_s, tz=None),
        lambda: ts.buckets(scope, series=Series(line=line), window=window, bucket_s=bucket_s, tz=None),
        lambda: ts.sensors(Scope(subject="t", plants=("plant-b",), lines=(line,))),
    ]
    refused = 0
    for call in calls:
        try:
            call()
        except ValueError as exc:
            refused += "is not an identifier" in str(exc)
    assert refused + len(fake.statements) == len(calls)
    for sql in fake.statements:
        assert "plant IN ('plant-b')" in sql


def test_table_names_are_allow_listed() -> None:
    fake = FakeTimestreamQuery(DB, TABLE)
    with pytest.raises(ValueError, match="not allowed"):
        TimestreamQueries(fake, database='db"; DROP', table=TABLE)


def test_models_name_the_gateways_model_where_the_backend_keeps_none(backends: tuple[Any, ...], tmp_path: Path) -> None:
    """Timestream keeps no model per reading: ``/v1/models`` names the one the line's gateways report scoring
    with in their score summaries (so the dashboard matches it with its drift), as DuckDB names it from readings."""
    from plantwatch.adapters.duckdb_drift import DuckDBDrift
    from plantwatch.adapters.duckdb_store import DuckDBStore
    from plantwatch.contract.batch import ModelRef
    from plantwatch.contract.summaries import ScoreSummaryMessage

    _, ts, _ = backends
    drift = DuckDBDrift(DuckDBStore(tmp_path / "drift.duckdb"))
    for hour in range(3):
        start = NOW_MS - (3 - hour) * 3_600_000
        drift.record_summary(
            ScoreSummaryMessage(
                gateway_id="gw-plant-a-line-1", plant="plant-a", line="line-1",
                model=ModelRef(name="plant-a.line-1", version="4"), start_ms=start, end_ms=start + 3_600_000,
                counts=[100] * 20, mean=0.5, p99=0.9, reference=[0.05] * 20,
            )
        )  # fmt: skip
    app = create_app(ts, auth=LocalTokens(KEY), now=lambda: NOW, drift=drift, dashboard=False)
    token = f"Bearer {create_token(KEY, plants=['plant-a'])}"
    lines = {m["line"]: m for m in TestClient(app).get("/v1/models", headers={"Authorization": token}).json()}
    [used] = lines["line-1"]["models"]
    [reported] = lines["line-1"]["drift"]
    assert (
        (used["name"], used["version"])
        == (reported["model_name"], reported["model_version"])
        == ("plant-a.line-1", "4")
    )
    assert used["sensors"] == 7  # the line's sensors, as before
    [unreported] = lines["line-2"]["models"]  # no summaries from line-2: the backend can't tell, and says so
    assert (unreported["name"], unreported["version"]) == ("unknown", "")
