"""Direct MQTT with mutual TLS through awsiotsdk (awscrt), for gateways that run without Greengrass."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from awscrt import mqtt
from awsiot import mqtt_connection_builder

log = logging.getLogger(__name__)


class AwsIotTransport:
    """QoS 1 publishes over an awscrt MQTT 3.1.1 connection; a publish unanswered within the timeout is resent."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        ca_file: str,
        cert_file: str,
        key_file: str,
        operation_timeout_s: float = 30.0,
    ) -> None:
        self.client_id = client_id
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._on_connected: Callable[[], None] = lambda: None
        self._connection = mqtt_connection_builder.mtls_from_path(
            cert_filepath=cert_file,
            pri_key_filepath=key_file,
            ca_filepath=ca_file,
            endpoint=host,
            port=port,
            client_id=client_id,  # IoT policies confine a client to its thing name
            clean_session=True,
            keep_alive_secs=30,
            reconnect_min_timeout_secs=1,
            reconnect_max_timeout_secs=30,
            protocol_operation_timeout_ms=int(operation_timeout_s * 1000),
            on_connection_interrupted=self._interrupted,
            on_connection_resumed=self._resumed,
            enable_metrics_collection=False,
        )
        self._thread = threading.Thread(target=self._connect_loop, name=f"iot-{client_id}", daemon=True)

    @property
    def connected(self) -> bool:
        """Whether the connection is up."""
        return self._connected.is_set()

    def start(self, on_connected: Callable[[], None]) -> None:
        """Connect in the background, retrying the first connection until it succeeds."""
        self._on_connected = on_connected
        self._thread.start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait for the connection."""
        return self._connected.wait(timeout_s)

    def publish(self, topic: str, payload: bytes, on_done: Callable[[bool], None]) -> None:
        """Publish QoS 1; ``on_done`` runs when the PUBACK (or a failure) arrives."""

        def done(future: Future[Any]) -> None:
            try:
                future.result()
                on_done(True)
            except Exception as exc:
                log.warning("%s: publish to %s failed: %s", self.client_id, topic, exc)
                on_done(False)

        try:
            future, _packet_id = self._connection.publish(topic=topic, payload=payload, qos=mqtt.QoS.AT_LEAST_ONCE)
        except Exception as exc:
            log.warning("%s: publish to %s not queued: %s", self.client_id, topic, exc)
            on_done(False)
            return
        future.add_done_callback(done)

    def stop(self) -> None:
        """Disconnect."""
        self._stop.set()
        if self._connected.is_set():
            try:
                self._connection.disconnect().result(timeout=5)
            except Exception as exc:
                log.debug("disconnect: %s", exc)
        self._connected.clear()

    def _connect_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._connection.connect().result(timeout=30)
            except Exception as exc:
                log.warning("%s: cannot connect (%s); retrying in %.0f s", self.client_id, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            log.info("%s connected", self.client_id)
            self._connected.set()
            self._on_connected()
            return

    def _interrupted(self, connection: Any, error: Any, **kwargs: Any) -> None:
        self._connected.clear()
        log.warning("%s: connection interrupted (%s); batches stay spooled", self.client_id, error)

    def _resumed(self, connection: Any, return_code: Any, session_present: Any, **kwargs: Any) -> None:
        self._connected.set()
        self._on_connected()
