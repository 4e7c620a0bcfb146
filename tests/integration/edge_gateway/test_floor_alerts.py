"""Floor alerts over a real local broker: raised on the floor topic, acknowledged from the floor."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.adapters.mqtt import MqttAlertNotifier, MqttEndpoint
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.reading import Reading
from plantwatch.contract.topics import floor_ack_topic, floor_alert_topic
from plantwatch.domain.alerts import AlertEngine, AlertStatus, decode_event
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.services.gateway import Gateway, GatewayConfig

from .servers import wait_for


class Hot:
    """An oven that reads 120 degC on every poll until told otherwise."""

    def __init__(self) -> None:
        self.value = 120.0

    def poll(self, now_ms: int) -> list[Reading]:
        return [
            Reading(
                plant="plant-1", line="line-1", asset="oven-1", sensor_id="oven-1-temp", sensor_type="temperature",
                unit="degC", ts_ms=now_ms, value=self.value,
            )
        ]  # fmt: skip


def test_alert_is_acknowledged_from_the_floor(mosquitto: Any, tmp_path: Path) -> None:
    floor = MqttAlertNotifier(
        MqttEndpoint(port=mosquitto.port),
        client_id="gw-1-floor",
        topic=floor_alert_topic("gw-1"),
        ack_topic=floor_ack_topic("gw-1"),
    )
    floor.start()
    assert floor.wait_connected(10)
    events: list[Any] = []
    panel = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="panel")
    subscribed = threading.Event()
    panel.on_message = lambda c, u, m: events.append(decode_event(m.payload))
    panel.on_subscribe = lambda *args: subscribed.set()
    panel.connect("127.0.0.1", mosquitto.port)
    panel.subscribe(floor_alert_topic("gw-1"), qos=1)
    panel.loop_start()
    assert subscribed.wait(10)
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    oven = Hot()
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw-1", plant="plant-1"),
        sources=[oven],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
        alerts=AlertEngine(gateway_id="gw-1", plant="plant-1", raise_after=2, clear_after=2),
        notifiers=[floor],
    )

    def step_until(predicate: Any, what: str) -> None:
        def stepped() -> bool:
            gateway.step(time.time_ns() // 1_000_000)
            return bool(predicate())

        wait_for(stepped, 10, what)

    try:
        step_until(lambda: any(e.event == "raised" for e in events), "the raised alert on the floor")
        raised = next(e for e in events if e.event == "raised")
        # WHEN the shift lead acknowledges it on the floor
        panel.publish(
            floor_ack_topic("gw-1"), json.dumps({"alert_id": raised.alert.alert_id, "by": "shift-lead"}), qos=1
        )
        step_until(lambda: any(e.event == "acknowledged" for e in events), "the acknowledgement")
        # THEN the alert is acknowledged (still active until the oven cools down), and the floor hears it
        [active] = gateway.alerts.active()
        assert active.status is AlertStatus.ACKNOWLEDGED
        assert active.acknowledged_by == "shift-lead"
        oven.value = 60.0
        step_until(lambda: any(e.event == "cleared" for e in events), "the clear")
        assert [e.event for e in events] == ["raised", "acknowledged", "cleared"]
    finally:
        panel.loop_stop()
        panel.disconnect()
        floor.stop()
        spool.close()
