"""Fixtures of the gateway integration tests."""

from .servers import mosquitto

__all__ = ["mosquitto"]
