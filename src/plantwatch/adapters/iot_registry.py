"""The gateway registry in the cloud: a gateway is an IoT thing, and its thing attribute ``plant`` names its plant."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

#: The thing attribute that binds a gateway to its plant (the thing type lists it as searchable).
PLANT_ATTRIBUTE = "plant"


class IotThingRegistry:
    """``plant_of(gateway)`` from DescribeThing, cached: registered gateways for ``ttl_s``, unknown ones for
    ``unknown_ttl_s`` (a gateway registered a minute ago is taken soon; a flood of unknown ones costs one call
    per gateway per minute). Errors other than "no such thing" raise, so the record is delivered again."""

    def __init__(
        self,
        client: Any,
        *,
        ttl_s: float = 300.0,
        unknown_ttl_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.monotonic = monotonic
        self.lookups = 0
        self._cache: dict[str, tuple[str | None, float]] = {}

    def plant_of(self, gateway_id: str) -> str | None:
        """The plant attribute of thing ``gateway_id``; None when there is no such thing or no such attribute."""
        now = self.monotonic()
        hit = self._cache.get(gateway_id)
        if hit is not None and now < hit[1]:
            return hit[0]
        self.lookups += 1
        try:
            thing = self.client.describe_thing(thingName=gateway_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            plant = None
        else:
            plant = thing.get("attributes", {}).get(PLANT_ATTRIBUTE) or None
        if plant is None:
            log.warning("gateway %s has no thing with a %r attribute", gateway_id, PLANT_ATTRIBUTE)
        self._cache[gateway_id] = (plant, now + (self.ttl_s if plant is not None else self.unknown_ttl_s))
        return plant


def connect_iot_registry(*, endpoint_url: str | None = None) -> IotThingRegistry:
    """The registry over a boto3 IoT client (``endpoint_url``: a VPC endpoint's DNS name, else the default)."""
    import boto3

    return IotThingRegistry(boto3.client("iot", endpoint_url=endpoint_url))
