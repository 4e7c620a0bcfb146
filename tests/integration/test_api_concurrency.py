"""Readers through the API while ingest runs: no errors, and every answer sees whole batches only (a batch's
readings and its rollups commit together), with counts that never go back; afterwards rollups equal raw data."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.contract import Reading, ScoredBatch, ScoredReading
from plantwatch.contract.batch import ModelRef
from tests.api_data import KEY, NOW, filled_store
from tests.helpers import NOW_MS

BATCHES, PER_BATCH, READERS = 60, 100, 3
SENSOR = "plant-a.line-2.press-1.pressure"


def new_batch(n: int) -> ScoredBatch:
    readings = tuple(
        ScoredReading(
            reading=Reading(
                plant="plant-a",
                line="line-2",
                asset="press-1",
                sensor_id=SENSOR,
                sensor_type="pressure",
                unit="kPa",
                ts_ms=NOW_MS + (n * PER_BATCH + i) * 10,
                value=float(i),
            ),
            score=0.5,
            anomaly=i == 0,
            reasons=("threshold.high",) if i == 0 else (),
        )
        for i in range(PER_BATCH)
    )
    model = ModelRef(name="original-thresholds", version="2")
    return ScoredBatch(schema_version=1, gateway_id="gw-live", seq=n, plant="plant-a", model=model, readings=readings)


def test_readers_see_whole_batches_while_ingest_runs(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "db.duckdb")
    app = create_app(DuckDBQueries(store), alerts=DuckDBAlerts(store), auth=LocalTokens(KEY), now=lambda: NOW)
    token = {"Authorization": f"Bearer {create_token(KEY, plants=['plant-a'])}"}
    base = TestClient(app).get("/v1/health", headers=token).json()["readings"]
    done = threading.Event()
    failures: list[str] = []
    observed: list[int] = []

    def read() -> None:
        client = TestClient(app)
        last_total, last_live = 0, 0
        window = {"start": "2025-11-24T16:00:00Z", "end": "2025-11-24T17:00:00Z"}
        while not done.is_set():
            health = client.get("/v1/health", headers=token)
            live = client.get("/v1/readings", params={"sensor_id": SENSOR, "bucket": "1h", **window}, headers=token)
            sensors = client.get("/v1/sensors", params={"line": "line-2"}, headers=token)
            if {health.status_code, live.status_code, sensors.status_code} != {200}:
                failures.append(f"{health.status_code} {live.status_code} {sensors.status_code}: {live.text[:200]}")
                return
            total = health.json()["readings"] - base
            live_count = sum(b["count"] for b in live.json()["buckets"])
            anomalies = sum(b["anomalies"] for b in live.json()["buckets"])
            [latest] = [s for s in sensors.json() if s["sensor_id"] == SENSOR]
            if total % PER_BATCH or live_count % PER_BATCH or anomalies * PER_BATCH != live_count:
                failures.append(f"partial batch visible: total {total}, live {live_count}, anomalies {anomalies}")
            if total < last_total or live_count < last_live:
                failures.append(f"went back: {last_total}->{total}, {last_live}->{live_count}")
            if live_count and latest["last_value"] != PER_BATCH - 1:
                failures.append(f"latest reading is not the end of a batch: {latest['last_value']}")
            last_total, last_live = total, live_count
            observed.append(live_count)

    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    for n in range(BATCHES):
        assert store.write([new_batch(n)]).written == PER_BATCH
    done.set()
    for reader in readers:
        reader.join(timeout=60)
    assert failures == []
    assert len(observed) >= READERS and max(observed) > 0  # readers ran while batches landed
    # THEN the rollups agree with the raw readings, sensor by sensor
    cur = store.cursor()
    mismatches = cur.execute(
        "SELECT r.sensor_id FROM "
        "(SELECT plant, sensor_id, count(*) AS n, sum(value) AS total FROM readings GROUP BY ALL) r "
        "JOIN (SELECT plant, sensor_id, sum(n) AS n, sum(total) AS total FROM readings_1m GROUP BY ALL) m "
        "USING (plant, sensor_id) "
        "JOIN (SELECT plant, sensor_id, sum(n) AS n FROM readings_1h GROUP BY ALL) h USING (plant, sensor_id) "
        "JOIN sensor_latest l USING (plant, sensor_id) "
        "WHERE r.n <> m.n OR r.n <> h.n OR r.n <> l.n OR abs(r.total - m.total) > 1e-6"
    ).fetchall()
    assert mismatches == []
    final = TestClient(app).get("/v1/health", headers=token).json()["readings"]
    assert final - base == BATCHES * PER_BATCH
