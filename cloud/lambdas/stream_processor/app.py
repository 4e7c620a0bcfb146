"""Stream processor Lambda (placeholder): reads its Terraform configuration; the Kinesis wiring is not here yet."""

from __future__ import annotations

import os
from typing import Any

import plantwatch

SINK = os.environ["PLANTWATCH_SINK"]
TIMESTREAM_DATABASE = os.environ["TIMESTREAM_DATABASE"]
TIMESTREAM_TABLE = os.environ["TIMESTREAM_TABLE"]
ARCHIVE_URL = os.environ["PLANTWATCH_ARCHIVE_URL"]


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Not implemented yet: the stream-processing handler (Kinesis -> StreamProcessor) replaces this placeholder."""
    raise NotImplementedError(
        f"plantwatch {plantwatch.__version__}: the stream processor Lambda is a placeholder "
        f"(would write {SINK} {TIMESTREAM_DATABASE}.{TIMESTREAM_TABLE} and archive to {ARCHIVE_URL})"
    )
