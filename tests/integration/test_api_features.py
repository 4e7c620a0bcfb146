"""The analytics API's answers over a real DuckDB store: catalogue, paging, rollup-served buckets checked against
the raw data, local-time buckets across DST changes, exports, alerts with their audit chain, overview, models."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.contract import Reading, ScoredBatch, ScoredReading
from plantwatch.contract.batch import ModelRef
from tests.api_data import KEY, NOW, SPAN_MS, alert_ref, batches, filled_store
from tests.helpers import NOW_MS

#: ids of the API test data's alerts, as gateways make them
A0 = alert_ref("plant-a", 0)
A1 = alert_ref("plant-a", 1)

SENSOR = "plant-a.line-1.press-2.vibration"


def client_for(store: DuckDBStore, plants: list[str], now: datetime = NOW) -> TestClient:
    api = create_app(DuckDBQueries(store), alerts=DuckDBAlerts(store), auth=LocalTokens(KEY), now=lambda: now)
    client = TestClient(api)
    client.headers["Authorization"] = f"Bearer {create_token(KEY, plants=plants, subject='tester')}"
    return client


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    return filled_store(Path(tmp_path_factory.mktemp("features")) / "db.duckdb")


@pytest.fixture
def client(store: DuckDBStore) -> TestClient:
    return client_for(store, ["plant-a", "plant-b"])


def raw(sensor_id: str, plant: str = "plant-a") -> list[ScoredReading]:
    return [r for b in batches() for r in b.readings if r.reading.sensor_id == sensor_id and r.reading.plant == plant]


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def test_catalogue(client: TestClient) -> None:
    plants = client.get("/v1/plants").json()
    assert [(p["plant"], p["lines"], p["sensors"], p["readings"]) for p in plants] == [
        ("plant-a", ["line-1", "line-2"], 13, 13 * 1080),
        ("plant-b", ["line-1"], 7, 7 * 1080),
    ]
    assert [
        (ln["plant"], ln["line"], ln["assets"]) for ln in client.get("/v1/lines", params={"plant": "plant-a"}).json()
    ] == [
        ("plant-a", "line-1", ["press-1", "press-2"]),
        ("plant-a", "line-2", ["press-1", "press-2"]),
    ]
    assets = client.get("/v1/assets", params={"plant": "plant-b", "line": "line-1"}).json()
    assert [(a["asset"], len(a["sensors"])) for a in assets] == [("press-1", 4), ("press-2", 3)]
    [sensor] = [s for s in client.get("/v1/sensors", params={"plant": "plant-a"}).json() if s["sensor_id"] == SENSOR]
    last = raw(SENSOR)[-1]
    assert (sensor["last_value"], sensor["readings"], sensor["model"]) == (
        last.reading.value,
        1080,
        "original-thresholds@1",
    )


def test_raw_readings_page_through_a_range_without_gaps(client: TestClient) -> None:
    params: dict[str, Any] = {"sensor_id": SENSOR, "start": iso(NOW_MS - SPAN_MS), "end": iso(NOW_MS), "limit": 100}
    seen: list[dict[str, Any]] = []
    while True:
        page = client.get("/v1/readings", params=params).json()
        seen += page["readings"]
        if page["next_start"] is None:
            break
        params["start"] = page["next_start"]
    assert [r["value"] for r in seen] == [r.reading.value for r in raw(SENSOR)]
    assert len({r["ts"] for r in seen}) == 1080


@pytest.mark.parametrize("bucket", ["30s", "5m", "1h", "2h"])
def test_buckets_from_rollups_match_the_raw_readings(client: TestClient, bucket: str) -> None:
    seconds = {"30s": 30, "5m": 300, "1h": 3600, "2h": 7200}[bucket]
    expected: dict[int, list[ScoredReading]] = defaultdict(list)
    for r in raw(SENSOR):
        expected[r.reading.ts_ms // (seconds * 1000) * seconds * 1000].append(r)
    start, end = NOW_MS - SPAN_MS, NOW_MS
    params = {"sensor_id": SENSOR, "bucket": bucket, "start": iso(start), "end": iso(end), "limit": 10_000}
    got = client.get("/v1/readings", params=params).json()["buckets"]
    want = [
        (
            iso(ts),
            len(rs),
            min(r.reading.value for r in rs),
            max(r.reading.value for r in rs),
            sum(r.anomaly for r in rs),
        )
        for ts, rs in sorted(expected.items())
    ]
    assert [(b["ts"].replace("+00:00", "Z"), b["count"], b["min"], b["max"], b["anomalies"]) for b in got] == want
    for b, (_, rs) in zip(got, sorted(expected.items()), strict=True):
        assert b["avg"] == pytest.approx(sum(r.reading.value for r in rs) / len(rs))


def test_line_series_has_every_sensor_of_the_line(client: TestClient) -> None:
    body = client.get("/v1/series", params={"plant": "plant-a", "line": "line-2", "bucket": "10m"}).json()
    assert len(body["sensors"]) == 6
    assert all(len(s["buckets"]) == 6 and sum(b["count"] for b in s["buckets"]) == 360 for s in body["sensors"])


def test_export_csv_and_parquet_hold_the_same_readings(client: TestClient) -> None:
    params = {"sensor_id": SENSOR, "plant": "plant-a", "start": iso(NOW_MS - 3600_000), "end": iso(NOW_MS)}
    text = client.get("/v1/export", params=params)
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [float(r["value"]) for r in rows] == [r.reading.value for r in raw(SENSOR)[-360:]]
    parquet = client.get("/v1/export", params=params | {"format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column("value").to_pylist() == [float(r["value"]) for r in rows]
    assert table.column("ts_ms").to_pylist() == [int(r["ts_ms"]) for r in rows]


def test_alerts_acknowledge_once_into_a_verifiable_audit_chain(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "alerts.duckdb")
    client = client_for(store, ["plant-a"])
    [open_alert] = client.get("/v1/alerts", params={"state": "open"}).json()
    assert (open_alert["alert_id"], open_alert["acknowledged_by"]) == (A0, None)
    acked = client.post(f"/v1/alerts/{A0}/acknowledge", json={"note": "checked the bearing"}).json()
    assert (acked["acknowledged_by"], acked["acknowledged_at"]) == ("tester", "2025-11-24T16:00:00Z")
    other = client_for(store, ["plant-a"], now=datetime(2025, 11, 24, 17, tzinfo=UTC))
    assert other.post(f"/v1/alerts/{A0}/acknowledge").json()["acknowledged_at"] == "2025-11-24T16:00:00Z"
    other.post(f"/v1/alerts/{A1}/acknowledge", json={"note": "late"})
    audit = client.get("/v1/audit").json()
    assert audit["chain_intact"] is True
    assert [(e["seq"], e["alert_id"], e["note"]) for e in audit["entries"]] == [
        (1, A0, "checked the bearing"),
        (2, A1, "late"),
    ]
    assert audit["entries"][1]["prev_hash"] == audit["entries"][0]["hash"]
    # WHEN someone edits the stored log behind the API's back THEN the chain no longer verifies
    store.cursor().execute("UPDATE audit_log SET note = 'nothing to see' WHERE seq = 1")
    assert client.get("/v1/audit").json() | {"entries": []} == {
        "chain_intact": False,
        "first_broken_seq": 1,
        "entries": [],
    }


def test_overview_and_models_per_line(client: TestClient) -> None:
    overview = {(o["plant"], o["line"]): o for o in client.get("/v1/overview").json()}
    assert sorted(overview) == [("plant-a", "line-1"), ("plant-a", "line-2"), ("plant-b", "line-1")]
    line = overview[("plant-a", "line-1")]
    recent = [
        r
        for b in batches()
        for r in b.readings
        if (r.reading.plant, r.reading.line) == ("plant-a", "line-1") and r.reading.ts_ms >= NOW_MS - 15 * 60_000
    ]
    share = sum(r.anomaly for r in recent) / len(recent)
    assert line["anomaly_share_15m"] == pytest.approx(share)
    assert line["health_score"] == round(100 * (1 - share) - 10, 1)  # one open, unacknowledged alert
    assert line["open_alerts"] == 1 and len(line["sensors"]) == 7
    assert overview[("plant-a", "line-2")]["open_alerts"] == 0
    models = {(m["plant"], m["line"]): m for m in client.get("/v1/models").json()}
    assert [(m["name"], m["version"], m["sensors"]) for m in models[("plant-a", "line-2")]["models"]] == [
        ("original-thresholds", "2", 6)
    ]
    assert models[("plant-b", "line-1")]["models"][0]["version"] == "1"
    assert models[("plant-b", "line-1")]["drift"] == []


# --- local-time buckets across DST changes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dst_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """One reading a minute (value 1) around Berlin's autumn 2025 and spring 2026 changes, and a Kolkata day."""
    store = DuckDBStore(Path(tmp_path_factory.mktemp("dst")) / "db.duckdb")
    periods = [("2025-10-24T20:00", "2025-10-27T04:00"), ("2026-03-27T20:00", "2026-03-30T04:00")]
    readings = []
    for first, last in periods:
        start = int(datetime.fromisoformat(first + "+00:00").timestamp() * 1000)
        stop = int(datetime.fromisoformat(last + "+00:00").timestamp() * 1000)
        for ts in range(start, stop, 60_000):
            r = Reading(
                plant="plant-a",
                line="line-1",
                asset="a",
                sensor_id="t",
                sensor_type="temperature",
                unit="degC",
                ts_ms=ts,
                value=1.0,
            )
            readings.append(ScoredReading(reading=r, score=0.0, anomaly=False))
    model = ModelRef(name="m", version="1")
    store.write(
        [
            ScoredBatch(
                schema_version=1,
                gateway_id="gw",
                seq=i,
                plant="plant-a",
                model=model,
                readings=tuple(readings[i : i + 500]),
            )
            for i in range(0, len(readings), 500)
        ]
    )
    return client_for(store, ["plant-a"])


def buckets(client: TestClient, bucket: str, tz: str, start: str, end: str) -> list[tuple[str, int]]:
    params = {"sensor_id": "t", "bucket": bucket, "tz": tz, "start": start, "end": end, "limit": 10_000}
    body = client.get("/v1/readings", params=params).json()
    return [(b["ts"].replace("+00:00", "Z"), b["count"]) for b in body["buckets"]]


def test_local_days_are_25_and_23_hours_long_across_dst(dst_client: TestClient) -> None:
    autumn = buckets(dst_client, "1d", "Europe/Berlin", "2025-10-25T00:00:00Z", "2025-10-26T23:00:00Z")
    assert autumn[1:] == [("2025-10-25T22:00:00Z", 25 * 60)]  # local 26 Oct: 00:00 CEST to 00:00 CET
    spring = buckets(dst_client, "1d", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z")
    assert spring == [("2026-03-27T23:00:00Z", 24 * 60), ("2026-03-28T23:00:00Z", 23 * 60)]


def test_the_repeated_hour_is_two_buckets_and_six_hour_buckets_follow_local_time(dst_client: TestClient) -> None:
    hours = buckets(dst_client, "1h", "Europe/Berlin", "2025-10-25T23:00:00Z", "2025-10-26T02:00:00Z")
    # local 01:00 CEST, 02:00 CEST, and 02:00 again (CET): the repeated hour is two buckets of 60 readings
    assert hours == [("2025-10-25T23:00:00Z", 60), ("2025-10-26T00:00:00Z", 60), ("2025-10-26T01:00:00Z", 60)]
    six = buckets(dst_client, "6h", "Europe/Berlin", "2025-10-25T22:00:00Z", "2025-10-26T11:00:00Z")
    assert six == [("2025-10-25T22:00:00Z", 7 * 60), ("2025-10-26T05:00:00Z", 6 * 60)]


def test_half_hour_zones_bucket_on_their_own_hours(dst_client: TestClient) -> None:
    hours = buckets(dst_client, "1h", "Asia/Kolkata", "2025-10-25T00:30:00Z", "2025-10-25T03:30:00Z")
    assert hours == [("2025-10-25T00:30:00Z", 60), ("2025-10-25T01:30:00Z", 60), ("2025-10-25T02:30:00Z", 60)]
    utc = buckets(dst_client, "1h", "UTC", "2025-10-25T00:00:00Z", "2025-10-25T02:00:00Z")
    assert utc == [("2025-10-25T00:00:00Z", 60), ("2025-10-25T01:00:00Z", 60)]
