"""MQTT topics: one place that spells them, for gateways, bridges, IoT policies and tests."""

from __future__ import annotations

from typing import Final

#: Gateways publish under their own id (== IoT thing name), so a policy can confine each to its topics.
BATCH_TOPIC_FILTER: Final = "plantwatch/gateways/+/batches"
ALERT_TOPIC_FILTER: Final = "plantwatch/gateways/+/alerts"
SUMMARY_TOPIC_FILTER: Final = "plantwatch/gateways/+/summaries"


def batch_topic(gateway_id: str) -> str:
    """Where a gateway publishes its scored batches."""
    return f"plantwatch/gateways/{gateway_id}/batches"


def alert_topic(gateway_id: str) -> str:
    """Where a gateway publishes its alerts."""
    return f"plantwatch/gateways/{gateway_id}/alerts"


def is_alert_topic(topic: str | None) -> bool:
    """Whether ``topic`` is a gateway's alert topic (what an IoT rule or bridge brings in from it)."""
    return topic is not None and topic.startswith("plantwatch/gateways/") and topic.endswith("/alerts")


def summary_topic(gateway_id: str) -> str:
    """Where a gateway publishes its per-window score summaries (drift input)."""
    return f"plantwatch/gateways/{gateway_id}/summaries"


def is_summary_topic(topic: str | None) -> bool:
    """Whether ``topic`` is a gateway's summaries topic."""
    return topic is not None and topic.startswith("plantwatch/gateways/") and topic.endswith("/summaries")


def gateway_of(topic: str | None) -> str | None:
    """The gateway id in a ``plantwatch/gateways/{gateway_id}/...`` topic (the thing name IoT Core let publish)."""
    if topic is None or not topic.startswith("plantwatch/gateways/"):
        return None
    parts = topic.split("/")
    return parts[2] if len(parts) >= 4 and parts[2] else None


def floor_alert_topic(gateway_id: str) -> str:
    """Where a gateway announces alert events on the floor (local broker or Greengrass local pub/sub)."""
    return f"plantwatch/floor/{gateway_id}/alerts"


def floor_ack_topic(gateway_id: str) -> str:
    """Where the floor acknowledges a gateway's alerts: ``{"alert_id": ..., "by": ...}``."""
    return f"plantwatch/floor/{gateway_id}/alerts/ack"
