"""End to end: `plantwatch up` as a subprocess, observed only through its HTTP API and MQTT broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.e2e
FAULT_ARGS = ["--fault-after", "2", "--fault-stagger", "3", "--fault-ramp", "6", "--fault-duration", "30"]
#: score summaries every 5 s, so drift figures appear while the test runs
DRIFT_ARGS = ["--summary-window", "5"]


class Platform:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.mqtt_port = free_port()
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self.process: subprocess.Popen[str] | None = None
        self.cli = [sys.executable, "-m", "plantwatch.cli"]
        self.output = data_dir.parent / f"platform-{self.port}.log"

    def start(self) -> None:
        command = [*self.cli, "up", "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port), "--mqtt-port", str(self.mqtt_port), *FAULT_ARGS, *DRIFT_ARGS]
        token = subprocess.run(
            [*self.cli, "token", "create", "--data-dir", str(self.data_dir), "--plant", "plant-1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.api.headers["Authorization"] = f"Bearer {token}"
        log = self.output.open("w")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        wait_for(self._ready, timeout=60, what="the platform's API")
        # the token `plantwatch up` prints is ready to use, and nothing is served without one
        wait_for(lambda: "API token" in self.output.read_text(), timeout=10, what="the printed token")
        printed = next(ln for ln in self.output.read_text().splitlines() if "API token" in ln).rsplit(" ", 1)[1]
        assert self.api.get("/v1/health", headers={"Authorization": f"Bearer {printed}"}).status_code == 200
        assert self.api.get("/v1/health", headers={"Authorization": ""}).status_code == 401

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"plantwatch up exited early:\n{self.output.read_text()}")
        return self.api.get("/v1/health").status_code == 200

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def running(data_dir: Path) -> Iterator[Platform]:
    platform = Platform(data_dir)
    try:
        platform.start()
        yield platform
    finally:
        platform.kill()


def publish_raw(port: int, readings: list[dict[str, Any]]) -> None:
    """Publish original-format readings with QoS 1 from a separate client and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"legacy-sensor-{os.getpid()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(f"manufacturing/sensors/{r['sensor_id']}/data", json.dumps(r), qos=1) for r in readings]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def raw_reading(sensor_id: str, value: float, when: datetime) -> dict[str, Any]:
    iso = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"sensor_id": sensor_id, "production_line": "line-9", "type": "pressure", "value": value, "timestamp": iso}


def iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_platform_runs_detects_faults_accepts_raw_readings_and_restarts_losing_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running(data_dir) as platform:
        # GIVEN the platform is up, WHEN a separate MQTT client publishes raw readings in the original format
        now = datetime.now(UTC)
        publish_raw(platform.mqtt_port, [raw_reading("legacy-p1", 250.0, now)])

        faults = json.loads((data_dir / "faults.json").read_text())
        first = {f["line"]: f for f in sorted(faults, key=lambda f: f["start_ms"])[::-1]}
        assert sorted(first) == ["line-1", "line-2", "line-3"]
        settle_ms = max(f["start_ms"] for f in first.values()) + 18_000  # detection <= 8 s, batches every 5 s
        wait_for(lambda: time.time() * 1000 > settle_ms, timeout=90, interval=0.5, what="the faults to develop")
        wait_for(lambda: platform.get("/v1/health")["components"]["stream_backlog"] == 0, timeout=30, what="backlog")

        # THEN readings from every line are served
        sensors = platform.get("/v1/sensors")
        assert {s["line"] for s in sensors} >= {"line-1", "line-2", "line-3", "line-9"}
        assert all(s["readings"] >= 5 for s in sensors if s["line"] != "line-9")

        # AND every injected fault is flagged on its own asset and sensor type, soon after it starts, and nothing else
        kinds: set[str] = set()
        for line, fault in first.items():
            anomalies = platform.get("/v1/anomalies", line=line, limit=10_000)
            assert anomalies, f"fault {fault} on {line} was not flagged"
            # the thresholds flag the faulty sensor; the forest may flag its asset's other sensors too
            assert {a["asset"] for a in anomalies} == {fault["asset"]}
            assert fault_sensor(fault["kind"]) in {a["sensor_type"] for a in anomalies}
            times = sorted(iso_ms(a["ts"]) for a in anomalies)
            assert fault["start_ms"] <= times[0] <= fault["start_ms"] + 8_000
            assert times[-1] < fault["end_ms"]

            # AND the gateway raised alerts for it that reached the API: a threshold breach on the faulty sensor
            # alerts on that sensor, the model's verdict on its asset once for the asset (not one per reading, nor
            # one per sensor the verdict touched)
            alerts = wait_for(
                lambda line=line: platform.get("/v1/alerts", line=line), timeout=20, what=f"an alert on {line}"
            )
            faulty_sensor = f"{fault['asset']}-{fault_sensor(fault['kind'])[:4]}"
            expected = {("anomaly", faulty_sensor), ("asset_anomaly", f"{line}.{fault['asset']}")}
            assert {(a["kind"], a["sensor_id"]) for a in alerts} <= expected, alerts
            assert len(alerts) == len({(a["kind"], a["sensor_id"]) for a in alerts}), alerts  # one lifecycle each
            # raised while the fault was on (the model's may clear before the threshold's: its verdict is the
            # window's, and the tuned forest stops flagging some readings of a fault, recall 0.887 per reading)
            assert all(fault["start_ms"] <= iso_ms(a["raised_at"]) <= fault["end_ms"] for a in alerts), alerts
            kinds |= {a["kind"] for a in alerts}
        assert kinds == {"anomaly", "asset_anomaly"}  # across the lines, both paths reached the API

        # AND an operator acknowledges a gateway's alert through the API by the id the gateway gave it, encoded
        # as the dashboard encodes it (encodeURIComponent: its colons become %3A)
        raised = platform.get("/v1/alerts", state="open")[0]
        acked = platform.api.post(f"/v1/alerts/{quote(raised['alert_id'], safe='')}/acknowledge", json={"note": "e2e"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["alert_id"] == raised["alert_id"] and acked.json()["acknowledged_by"]
        assert [e["alert_id"] for e in platform.get("/v1/audit")["entries"]] == [raised["alert_id"]]

        # AND every line's gateway reported score summaries: drift figures of the model that scored, partial so far
        def with_drift() -> list[dict[str, Any]] | None:
            found = [m for m in platform.get("/v1/models") if m["drift"]]
            return found if len(found) == 3 else None

        lines = wait_for(with_drift, timeout=30, interval=0.5, what="drift figures of every line")
        for line_models in lines:
            [drift] = line_models["drift"]
            assert drift["model_name"] == f"plant-1.{line_models['line']}"
            assert drift["model_version"] in {m["version"] for m in line_models["models"]}
            assert drift["status"] == "partial" and drift["summaries"] < drift["summaries_per_check"]
            assert drift["psi"] >= 0 and drift["scores"] > 0

        # AND the raw reading is stored with its own event time and scored with the original thresholds
        [legacy] = platform.get("/v1/readings", sensor_id="legacy-p1")["readings"]
        assert legacy["value"] == 250.0 and legacy["anomaly"] and legacy["reasons"] == ["threshold.high"]
        assert iso_ms(legacy["ts"]) == int(now.timestamp() * 1000)
        assert platform.get("/analytics")

        # WHEN more raw readings are acknowledged right before a stop
        burst_at = datetime.now(UTC)
        burst = [raw_reading(f"legacy-b{i}", float(i), burst_at) for i in range(20)]
        publish_raw(platform.mqtt_port, burst)
        before = {s["sensor_id"]: s for s in platform.get("/v1/sensors")}
        assert platform.stop() == 0
    assert "stopped cleanly" in platform.output.read_text()

    # THEN after a restart on the same data dir nothing published before the stop is missing
    with running(data_dir) as again:
        wait_for(lambda: again.get("/v1/health")["components"]["stream_backlog"] == 0, timeout=30, what="backlog")
        after = {s["sensor_id"]: s for s in again.get("/v1/sensors")}
        for i in range(20):
            assert after[f"legacy-b{i}"]["readings"] == 1
        for sensor_id, seen in before.items():
            assert after[sensor_id]["readings"] >= seen["readings"]
        # every simulated sensor has a gap-free 1 Hz series over the first run
        first_run_end = iso_ms(max(s["last_ts"] for s in before.values() if s["line"] != "line-9"))
        for sensor_id, seen in before.items():
            if seen["line"] == "line-9":
                continue
            series = again.get(
                "/v1/readings",
                sensor_id=sensor_id,
                end=datetime.fromtimestamp(first_run_end / 1000 + 1, UTC).isoformat(),
            )["readings"]
            stamps = [iso_ms(r["ts"]) for r in series]
            assert stamps == list(range(stamps[0], first_run_end + 1, 1000)), f"gap in {sensor_id}"
        assert again.stop() == 0


def fault_sensor(kind: str) -> str:
    return {"overheating": "temperature", "bearing_wear": "vibration", "pressure_leak": "pressure"}[kind]
