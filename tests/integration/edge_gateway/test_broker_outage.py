"""Broker down for 30 s, then back: every batch arrives; floor alerts kept firing during the outage."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.reading import Reading
from plantwatch.contract.topics import floor_alert_topic
from plantwatch.domain.alerts import decode_event
from plantwatch.edge.bootstrap import build_gateway
from plantwatch.edge.config import parse_config
from plantwatch.edge.run import run_gateway

from .servers import Downstream, Mosquitto, wait_for

OUTAGE_S = 30.0


class InjectedReadings:
    """A sensor source the test feeds by hand (the anomalies that must raise floor alerts)."""

    def __init__(self) -> None:
        self.queue: deque[Reading] = deque()

    def poll(self, now_ms: int) -> list[Reading]:
        out = list(self.queue)
        self.queue.clear()
        return out

    def send(self, value: float, count: int) -> float:
        now = time.time_ns() // 1_000_000
        for i in range(count):
            self.queue.append(
                Reading(
                    plant="plant-1",
                    line="line-9",
                    asset="oven-9",
                    sensor_id="oven-9-temp",
                    sensor_type="temperature",
                    unit="degC",
                    ts_ms=now + i,
                    value=value,
                )
            )
        return time.monotonic()


class FloorListener:
    """Someone on the floor watching the local alert topic."""

    def __init__(self, port: int, topic: str) -> None:
        self.events: list[tuple[float, Any]] = []
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="floor-panel")
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *args: ready.set()
        self.client.on_message = lambda c, u, m: self.events.append((time.monotonic(), decode_event(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def first(self, event: str, sensor_id: str = "oven-9-temp") -> tuple[float, Any] | None:
        return next((e for e in self.events if e[1].event == event and e[1].alert.sensor_id == sensor_id), None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    """Stops whatever the test registered, in reverse order, however the test ends."""
    with contextlib.ExitStack() as stack:
        yield stack


def test_broker_down_30s_then_back_delivers_every_batch_and_floor_alerts_keep_firing(
    tmp_path: Path, cleanup: contextlib.ExitStack
) -> None:
    cloud = Mosquitto(tmp_path / "cloud-broker", persistent=True)
    floor = Mosquitto(tmp_path / "floor-broker")
    cleanup.callback(cloud.stop)
    cleanup.callback(floor.stop)
    cloud.start()
    floor.start()
    downstream = Downstream(cloud.port)
    cleanup.callback(downstream.close)
    panel = FloorListener(floor.port, floor_alert_topic("gw-outage"))
    cleanup.callback(panel.close)
    config = parse_config(
        {
            "gateway_id": "gw-outage",
            "plant": "plant-1",
            "data_dir": str(tmp_path / "gw"),
            "batch_interval_ms": 200,
            "sources": [
                {
                    "kind": "simulator",
                    "line": "line-1",
                    "assets_per_line": 2,
                    "sample_period_ms": 100,
                    "fault_after_s": 1e12,  # no simulated faults: the test injects its own anomaly
                }
            ],
            "uplink": {"transport": "mqtt", "port": cloud.port},
            "alerts": {"floor": "mqtt", "floor_port": floor.port, "raise_after": 2, "clear_after": 2},
        }
    )
    runtime = build_gateway(config)
    injected = InjectedReadings()
    runtime.gateway.sources.append(injected)
    stop = threading.Event()
    thread = threading.Thread(target=run_gateway, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(downstream.batches) >= 3, 20, "batches before the outage")
        # GIVEN the cloud broker goes down
        cloud.stop()
        wait_for(lambda: runtime.uplink is not None and not runtime.uplink.connected, 10, "the uplink to notice")
        outage_started = time.monotonic()
        # WHEN a sensor goes anomalous during the outage
        sent = injected.send(95.0, 2)
        wait_for(lambda: panel.first("raised") is not None, 5, "the floor alert")
        raised_at, raised = panel.first("raised")  # type: ignore[misc]
        # THEN the floor hears it within 500 ms, uplink or not
        assert raised_at - sent < 0.5
        assert raised.alert.sensor_id == "oven-9-temp"
        assert raised.alert.kind == "anomaly"
        sent = injected.send(55.0, 2)
        wait_for(lambda: panel.first("cleared") is not None, 5, "the floor clear")
        assert panel.first("cleared")[0] - sent < 0.5  # type: ignore[index]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))  # the outage itself
        assert not runtime.uplink.connected  # type: ignore[union-attr]
        # WHEN the broker is back
        cloud.start()
        wait_for(lambda: runtime.uplink.connected, 40, "the uplink to reconnect")  # type: ignore[union-attr]
    finally:
        stop.set()
        thread.join(30)
    spool = SqliteSpool(tmp_path / "gw" / "spool.sqlite")
    try:
        produced = set(range(spool.first_seq(), spool.next_seq()))
        assert spool.depth() == 0
    finally:
        spool.close()
    wait_for(lambda: downstream.seqs("gw-outage") >= produced, 20, "every batch downstream")
    # the set of batch ids downstream equals the set produced (duplicates removed downstream)
    assert downstream.seqs("gw-outage") == produced
    # the alert raised offline reached the cloud's alert topic later, through the spool
    cloud_events = [decode_event(p) for p in downstream.alerts]
    assert raised.alert.alert_id in {e.alert.alert_id for e in cloud_events if e.event == "raised"}
