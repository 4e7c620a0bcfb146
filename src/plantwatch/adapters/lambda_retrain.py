"""Drift asks the retrain Lambda to retrain one line: an asynchronous invoke (InvocationType=Event) via boto3."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from plantwatch.services.drift_reports import RetrainRequest, retrain_event

log = logging.getLogger(__name__)


class LambdaRetrainTrigger:
    """Calls the retrain function asynchronously with the line's drift event; raises if Lambda did not queue it."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self.function_name = function_name

    def __call__(self, request: RetrainRequest) -> None:
        """Queue one retraining of ``request.line`` (Lambda answers 202 Accepted)."""
        answer = self._client.invoke(
            FunctionName=self.function_name,
            InvocationType="Event",
            Payload=msgspec.json.encode(retrain_event(request)),
        )
        status = answer.get("StatusCode")
        if status != 202:
            raise RuntimeError(f"retrain function {self.function_name} did not accept the event (status {status})")
        log.info("retraining of %s/%s queued on %s", request.plant, request.line, self.function_name)
