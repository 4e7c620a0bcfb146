"""Binding a gateway's data to its own plant: a batch is taken only from the gateway that published it, for the
plant that gateway is registered to.

IoT Core lets a gateway publish only on its own topics (the policy names its thing), but the plant and gateway
id inside a payload are the gateway's own words. A compromised or misconfigured gateway could otherwise file
readings under another gateway's sequence numbers or another plant, where that plant's users would see them.
"""

from __future__ import annotations

from plantwatch.contract.topics import gateway_of
from plantwatch.ports import GatewayRegistry


def origin_problem(topic: str | None, gateway_id: str, plant: str, registry: GatewayRegistry | None) -> str | None:
    """Why a payload claiming ``gateway_id`` and ``plant`` must not be taken from ``topic``; None when it may."""
    publisher = gateway_of(topic)
    if publisher is not None and publisher != gateway_id:
        return f"payload claims gateway {gateway_id!r} but was published on gateway {publisher!r}'s topic"
    if registry is None:
        return None
    registered = registry.plant_of(publisher or gateway_id)
    if registered is None:
        return f"gateway {publisher or gateway_id!r} is not registered to any plant (set its thing attribute 'plant')"
    if registered != plant:
        return f"gateway {publisher or gateway_id!r} belongs to plant {registered!r}, the payload claims {plant!r}"
    return None
