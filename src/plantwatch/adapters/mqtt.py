"""MQTT over paho: the gateway uplink that drains a durable spool, and the bridge that feeds the stream."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.ports import Spool, SpooledBatch

log = logging.getLogger(__name__)


class MqttEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a broker is and how to authenticate to it (mutual TLS when ``cert_file`` is set)."""

    host: str = "127.0.0.1"
    port: int = 1883
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30


def _client(endpoint: MqttEndpoint, client_id: str, *, clean: bool, manual_ack: bool = False) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
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


class MqttUplink:
    """Publishes a spool's batches with QoS 1 and removes each one only when the broker acknowledges it."""

    def __init__(self, spool: Spool, endpoint: MqttEndpoint, *, client_id: str, inflight: int = 20) -> None:
        self.spool = spool
        self.endpoint = endpoint
        self.inflight_limit = inflight
        self._client = _client(endpoint, client_id, clean=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._lock = threading.Condition()
        self._inflight: dict[int, int] = {}  # paho mid -> spool id
        self._pending: set[int] = set()  # spool ids handed to paho, not yet acknowledged
        self._early_acks: set[int] = set()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"uplink-{client_id}", daemon=True)
        self.published = 0

    @property
    def connected(self) -> bool:
        """Whether the uplink currently has a broker connection."""
        return self._connected.is_set()

    def start(self) -> None:
        """Connect (retrying in the background) and start draining the spool."""
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=self.endpoint.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def nudge(self) -> None:
        """Wake the drain loop: new batches are in the spool."""
        with self._lock:
            self._lock.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is empty or ``timeout_s`` passes; returns whether it emptied."""
        with self._lock:
            return self._lock.wait_for(lambda: self.spool.depth() == 0, timeout=timeout_s)

    def stop(self) -> None:
        """Stop publishing and disconnect; unacknowledged batches stay in the spool."""
        self._stop.set()
        self.nudge()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("uplink connection refused: %s", reason)
            return
        log.info("uplink connected to %s:%s", self.endpoint.host, self.endpoint.port)
        self._connected.set()
        self.nudge()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("uplink disconnected (%s); batches stay spooled", reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            spool_id = self._inflight.pop(mid, None)
            if spool_id is None:  # acknowledged before _run registered the mid
                self._early_acks.add(mid)
                return
            self._acknowledged(spool_id)

    def _acknowledged(self, spool_id: int) -> None:
        self.spool.remove([spool_id])
        self._pending.discard(spool_id)
        self.published += 1
        self._lock.notify_all()

    def _next_to_send(self) -> list[SpooledBatch]:
        with self._lock:
            if not self._connected.is_set() or len(self._pending) >= self.inflight_limit:
                self._lock.wait(timeout=0.5)
                return []
            room = self.inflight_limit - len(self._pending)
            waiting = [b for b in self.spool.peek(room + len(self._pending)) if b.spool_id not in self._pending]
            if not waiting:
                self._lock.wait(timeout=0.5)
            chosen = waiting[:room]
            self._pending.update(b.spool_id for b in chosen)
            return chosen

    def _run(self) -> None:
        # paho's network thread holds its own locks while it calls _on_publish, so publish() is never
        # called while holding self._lock (that would deadlock)
        while not self._stop.is_set():
            for batch in self._next_to_send():
                info = self._client.publish(batch.topic, batch.payload, qos=1)
                with self._lock:
                    if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                        log.warning("publish of batch %s failed to queue (rc=%s); will retry", batch.seq, info.rc)
                        self._pending.discard(batch.spool_id)
                    elif info.mid in self._early_acks:
                        self._early_acks.discard(info.mid)
                        self._acknowledged(batch.spool_id)
                    else:
                        # paho keeps a QoS 1 message it accepted and resends it after a reconnect
                        self._inflight[info.mid] = batch.spool_id


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
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=self.endpoint.keepalive_s)
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
