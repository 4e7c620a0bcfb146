"""Analytics API Lambda (placeholder): reads its Terraform configuration; FastAPI + Mangum wiring comes later."""

from __future__ import annotations

import os
from typing import Any

import plantwatch

TIMESTREAM_DATABASE = os.environ["TIMESTREAM_DATABASE"]
TIMESTREAM_TABLE = os.environ["TIMESTREAM_TABLE"]
# The HTTP API stage ("/prod") that Mangum must strip from the path (api_gateway_base_path).
API_BASE = os.environ.get("PLANTWATCH_API_BASE", "/")


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Not implemented yet: the Timestream query adapter and Mangum handler replace this placeholder."""
    raise NotImplementedError(
        f"plantwatch {plantwatch.__version__}: the analytics API Lambda is a placeholder "
        f"(would query {TIMESTREAM_DATABASE}.{TIMESTREAM_TABLE}); deploy the real handler"
    )
