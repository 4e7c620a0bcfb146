"""Greengrass IPC (awsiot.greengrasscoreipc.clientv2): uplink to IoT Core, floor alerts on local pub/sub, and
configuration updates validated before the nucleus accepts them. Every IPC callback catches its own errors."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


def default_client() -> Any:
    """The nucleus IPC client (works only inside a Greengrass core device)."""
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    return GreengrassCoreIPCClientV2()


class GreengrassTransport:
    """PublishToIoTCore with QoS 1: the nucleus answers once IoT Core acknowledged (or spooled) the message."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._owned = client is None  # a client passed in is shared (the component's rebuilds): not ours to close
        self._ok = threading.Event()

    @property
    def connected(self) -> bool:
        """IPC is local; the last publish tells whether the nucleus takes messages."""
        return self._client is not None

    def start(self, on_connected: Callable[[], None]) -> None:
        """Connect to the nucleus."""
        if self._client is None:
            self._client = default_client()
        on_connected()

    def publish(self, topic: str, payload: bytes, on_done: Callable[[bool], None]) -> None:
        """Publish via the nucleus; ``on_done`` runs when its response (or error) arrives."""
        from awsiot.greengrasscoreipc.model import QOS

        def done(future: Future[Any]) -> None:
            try:
                future.result()
                ok = True
            except Exception as exc:
                log.warning("PublishToIoTCore %s failed: %s; the batch stays spooled", topic, exc)
                ok = False
            on_done(ok)

        try:
            future = self._client.publish_to_iot_core_async(topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=payload)
        except Exception as exc:
            log.warning("PublishToIoTCore %s not sent: %s", topic, exc)
            on_done(False)
            return
        future.add_done_callback(done)

    def stop(self) -> None:
        """Close the IPC connection if this transport opened it."""
        closer = getattr(self._client, "close", None) if self._owned else None
        if closer is not None:
            closer()


class GreengrassAlertNotifier:
    """Floor alerts on Greengrass local pub/sub (PublishToTopic), acknowledgements via SubscribeToTopic."""

    def __init__(self, client: Any = None, *, topic: str, ack_topic: str) -> None:
        self._client = client
        self.topic = topic
        self.ack_topic = ack_topic
        self._acks: list[bytes] = []
        self._lock = threading.Lock()
        self._subscription: Any = None

    def start(self) -> None:
        """Subscribe to acknowledgements."""
        if self._client is None:
            self._client = default_client()
        _, self._subscription = self._client.subscribe_to_topic(
            topic=self.ack_topic, on_stream_event=self._on_ack, on_stream_error=self._on_error
        )

    def stop(self) -> None:
        """Close the acknowledgement subscription (a rebuilt gateway subscribes again; the client stays open)."""
        subscription, self._subscription = self._subscription, None
        closer = getattr(subscription, "close", None)
        if closer is not None:
            closer()

    def notify(self, payloads: Sequence[bytes]) -> None:
        """Publish events on local pub/sub (fire and forget: a failure is logged, the cloud copy is spooled)."""
        from awsiot.greengrasscoreipc.model import BinaryMessage, PublishMessage

        for payload in payloads:
            try:
                self._client.publish_to_topic_async(
                    topic=self.topic, publish_message=PublishMessage(binary_message=BinaryMessage(message=payload))
                )
            except Exception:
                log.exception("PublishToTopic %s failed", self.topic)

    def take_acks(self) -> list[bytes]:
        """Acknowledgements received since the last call."""
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def _on_ack(self, event: Any) -> None:
        try:
            if event.binary_message is not None:
                data = bytes(event.binary_message.message or b"")
            else:
                data = json.dumps(event.json_message.message).encode()
            with self._lock:
                self._acks.append(data)
        except Exception:
            log.exception("bad acknowledgement message")

    def _on_error(self, error: Exception) -> bool:
        log.warning("acknowledgement stream error: %s", error)
        return False  # keep the stream open


class ConfigurationValidator:
    """Answers the nucleus's validate-configuration events: a configuration the gateway can't use is rejected."""

    def __init__(self, client: Any, validate: Callable[[dict[str, Any]], str | None]) -> None:
        self._client = client
        self._validate = validate
        self.reports: list[tuple[str, str]] = []

    def start(self) -> None:
        """Subscribe to validation events."""
        self._client.subscribe_to_validate_configuration_updates(
            on_stream_event=self._on_event, on_stream_error=lambda error: False
        )

    def _on_event(self, event: Any) -> None:
        from awsiot.greengrasscoreipc.model import ConfigurationValidityReport, ConfigurationValidityStatus

        try:
            update = event.validate_configuration_update_event
            problem = self._validate(update.configuration or {})
            status = ConfigurationValidityStatus.REJECTED if problem else ConfigurationValidityStatus.ACCEPTED
            report = ConfigurationValidityReport(
                status=status, deployment_id=update.deployment_id, message=problem or "configuration accepted"
            )
            self._client.send_configuration_validity_report(configuration_validity_report=report)
            self.reports.append((status, problem or ""))
        except Exception:
            log.exception("configuration validation failed")
