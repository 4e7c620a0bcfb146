"""Retraining Lambda (placeholder): reads its Terraform configuration; the training job is not here yet."""

from __future__ import annotations

import os
from typing import Any

import plantwatch

ARCHIVE_URL = os.environ["PLANTWATCH_ARCHIVE_URL"]
MODEL_URL = os.environ["PLANTWATCH_MODEL_URL"]
THING_GROUPS = [g for g in os.environ["PLANTWATCH_THING_GROUPS"].split(",") if g]


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Not implemented yet: the retraining service (archive -> model -> Greengrass deployment) replaces this."""
    raise NotImplementedError(
        f"plantwatch {plantwatch.__version__}: the retraining Lambda is a placeholder "
        f"(would train from {ARCHIVE_URL} into {MODEL_URL} for {THING_GROUPS}); deploy the real handler"
    )
