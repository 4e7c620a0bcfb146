"""Retraining: archive window from S3 -> train -> evaluate -> register -> Greengrass, for every configured plant
(the EventBridge schedule) or one plant's line (a drift event from the stream processor, or a replayed event)."""

from __future__ import annotations

import logging
from typing import Any

from plantwatch.adapters.aws_retrain import build_job

logging.getLogger().setLevel(logging.INFO)
JOB = build_job()  # wiring once per container, from PLANTWATCH_* environment variables


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run one retraining for the event's window; what it could not retrain is logged and queued (status failed)."""
    return JOB.run(event)
