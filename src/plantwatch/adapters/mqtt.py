"""MQTT over paho: the uplink transport, floor alerts on a local broker, and the bridge that feeds the stream."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.ports import Spool
from plantwatch.services.uplink import IOT_CORE_BYTES_PER_S, IOT_CORE_PUBLISHES_PER_S, Uplink

log = logging.getLogger(__name__)


class MqttEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a broker is and how to authenticate to it (mutual TLS when ``cert_file`` is set)."""

    host: str = "127.0.0.1"
    port: int = 1883
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    #: 4 is MQTT 3.1.1 (the embedded amqtt broker speaks only that); 5 gets publish reason codes (e.g. 135).
    mqtt_version: int = 4


def _client(endpoint: MqttEndpoint, client_id: str, *, clean: bool, manual_ack: bool = False) -> mqtt.Client:
    v5 = endpoint.mqtt_version == 5
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if endpoint.ca_file:
        client.tls_set(
            ca_certs=endpoint.ca_file,
            certfile=endpoint.cert_file,
            keyfile=endpoint.key_file,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def _connect_async(client: mqtt.Client, endpoint: MqttEndpoint, *, clean: bool) -> None:
    if endpoint.mqtt_version == 5:
        client.connect_async(
            endpoint.host,
            endpoint.port,
            keepalive=endpoint.keepalive_s,
            clean_start=True if clean else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        )
    else:
        client.connect_async(endpoint.host, endpoint.port, keepalive=endpoint.keepalive_s)


class PahoTransport:
    """QoS 1 publishing over paho; paho keeps unacknowledged publishes and resends them after a reconnect."""

    def __init__(self, endpoint: MqttEndpoint, *, client_id: str, max_inflight: int = 100) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self._client = _client(endpoint, client_id, clean=True)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[bool], None]] = {}
        self._early: dict[int, bool] = {}  # acks that arrived before publish() returned the mid
        self._connected = threading.Event()
        self._on_connected: Callable[[], None] = lambda: None
        self._stopping = False
        self.refused: list[int] = []  # reason codes of publishes the broker refused (MQTT 5)

    @property
    def connected(self) -> bool:
        """Whether the client has a broker connection."""
        return self._connected.is_set()

    def start(self, on_connected: Callable[[], None]) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._on_connected = on_connected
        _connect_async(self._client, self.endpoint, clean=True)
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait for the first connection."""
        return self._connected.wait(timeout_s)

    def publish(self, topic: str, payload: bytes, on_done: Callable[[bool], None]) -> None:
        """Queue a QoS 1 publish; ``on_done`` runs on paho's thread when the broker answers."""
        # never call into paho while holding self._lock: paho calls _on_publish holding its own locks
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish to %s not queued (rc=%s); will retry", topic, info.rc)
            on_done(False)
            return
        with self._lock:
            early = self._early.pop(info.mid, None)  # the broker may answer before publish() returned
            if early is None:
                self._callbacks[info.mid] = on_done
        if early is not None:
            on_done(early)

    def stop(self) -> None:
        """Disconnect."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("%s: connection refused: %s", self.client_id, reason)
            return
        log.info("%s connected to %s:%s", self.client_id, self.endpoint.host, self.endpoint.port)
        self._connected.set()
        self._on_connected()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stopping:
            log.warning("%s disconnected (%s); unacknowledged publishes will be resent", self.client_id, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        ok = not reason.is_failure
        if not ok:
            self.refused.append(reason.value)
            log.error("%s: broker refused a publish: %s (reason code %s)", self.client_id, reason, reason.value)
        with self._lock:
            callback = self._callbacks.pop(mid, None)
            if callback is None:
                self._early[mid] = ok
                return
        callback(ok)


class MqttUplink(Uplink):
    """The store-and-forward uplink over paho MQTT (local broker, or any broker with optional mutual TLS)."""

    def __init__(
        self,
        spool: Spool,
        endpoint: MqttEndpoint,
        *,
        client_id: str,
        inflight: int = 20,
        max_bytes_per_s: float = IOT_CORE_BYTES_PER_S,
        max_publishes_per_s: float = IOT_CORE_PUBLISHES_PER_S,
    ) -> None:
        self.endpoint = endpoint
        super().__init__(
            spool,
            PahoTransport(endpoint, client_id=client_id, max_inflight=inflight),
            name=f"uplink-{client_id}",
            inflight=inflight,
            max_bytes_per_s=max_bytes_per_s,
            max_publishes_per_s=max_publishes_per_s,
        )


class MqttAlertNotifier:
    """Floor alerts on a local broker: publishes alert events and listens for acknowledgements from the floor."""

    def __init__(self, endpoint: MqttEndpoint, *, client_id: str, topic: str, ack_topic: str) -> None:
        self.topic = topic
        self.ack_topic = ack_topic
        self.endpoint = endpoint
        self._client = _client(endpoint, client_id, clean=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._acks: list[bytes] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()

    def start(self) -> None:
        """Connect in the background."""
        _connect_async(self._client, self.endpoint, clean=True)
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait for the first connection."""
        return self._connected.wait(timeout_s)

    def notify(self, payloads: Sequence[bytes]) -> None:
        """Publish alert events (QoS 1; queued by paho while the local broker is away)."""
        for payload in payloads:
            self._client.publish(self.topic, payload, qos=1)

    def take_acks(self) -> list[bytes]:
        """Acknowledgement messages received since the last call."""
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("floor alert connection refused: %s", reason)
            return
        self._connected.set()
        client.subscribe(self.ack_topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._acks.append(bytes(message.payload))


class MqttBridge:
    """Subscribes to topics and hands each message to ``deliver`` before acknowledging it (at least once)."""

    def __init__(
        self,
        deliver: Callable[[str, bytes], None],
        endpoint: MqttEndpoint,
        *,
        client_id: str,
        topics: Sequence[str],
    ) -> None:
        self.deliver = deliver
        self.endpoint = endpoint
        self.topics = list(topics)
        self._client = _client(endpoint, client_id, clean=False, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self.received = 0
        self.failed = 0

    def start(self) -> None:
        """Connect (retrying in the background) and subscribe."""
        _connect_async(self._client, self.endpoint, clean=False)
        self._client.loop_start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Wait until the broker has confirmed the subscriptions."""
        return self._subscribed.wait(timeout_s)

    def stop(self) -> None:
        """Disconnect; the broker keeps unacknowledged messages for the persistent session."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("bridge connection refused: %s", reason)
            return
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.deliver(message.topic, bytes(message.payload))
        except Exception:  # a callback must never raise into paho's loop
            self.failed += 1
            log.exception("could not store message from %s; the broker will redeliver it", message.topic)
            return
        self.received += 1
        client.ack(message.mid, message.qos)
