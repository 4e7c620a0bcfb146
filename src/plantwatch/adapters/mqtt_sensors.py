"""Sensors that publish the original raw reading to a local broker: a sensor source subscribed with paho."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.adapters.reading_queue import ReadingQueue
from plantwatch.contract.legacy import LegacyDefaults, parse_legacy
from plantwatch.contract.reading import Reading, SensorRef
from plantwatch.edge.config import MqttSensorsSourceConfig

log = logging.getLogger(__name__)


class MqttSensorsSource:
    """Subscribes to raw readings; valid ones queue up for the gateway, invalid ones are counted and logged."""

    def __init__(self, config: MqttSensorsSourceConfig, *, plant: str, client_id: str) -> None:
        self.config = config
        self.defaults = LegacyDefaults(plant=plant, asset=config.asset)
        self._queue = ReadingQueue()
        self.rejected = 0
        self._online = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *args: self._online.clear()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)

    def sensors(self) -> list[SensorRef]:
        """Raw sensors announce themselves; none are known up front."""
        return []

    def offline(self) -> list[SensorRef]:
        """Raw sensors are not tracked individually."""
        return []

    def start(self) -> None:
        """Connect (retrying in the background) and subscribe."""
        self._client.connect_async(self.config.host, self.config.port, keepalive=30)
        self._client.loop_start()

    def poll(self, now_ms: int) -> list[Reading]:
        """Readings received since the last poll."""
        return self._queue.drain()

    def read_once(self, timeout_s: float) -> list[Reading]:
        """Listen for ``once_wait_s`` (at most ``timeout_s``) and return the latest reading of each sensor heard."""
        self.start()
        time.sleep(min(timeout_s, self.config.once_wait_s))
        latest: dict[str, Reading] = {r.sensor_id: r for r in self.poll(0)}
        return list(latest.values())

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("raw sensor subscription refused: %s", reason)
            return
        self._online.set()
        client.subscribe(self.config.topic_filter, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            document = msgspec.json.decode(message.payload)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            parsed = parse_legacy(
                document, now_ms=time.time_ns() // 1_000_000, defaults=self.defaults, topic=message.topic
            )
        except (msgspec.DecodeError, ValueError) as exc:
            self.rejected += 1
            log.warning("raw reading on %s rejected: %s", message.topic, exc)
            return
        if isinstance(parsed, Reading):
            self._queue.put(parsed)
        else:
            self.rejected += 1
            log.warning("raw reading on %s rejected: %s", message.topic, parsed.reason)
