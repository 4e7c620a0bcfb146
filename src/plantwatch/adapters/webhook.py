"""Webhook floor notifier: each alert event is POSTed as JSON, retried with backoff, off the pipeline's thread."""

from __future__ import annotations

import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence

log = logging.getLogger(__name__)


class WebhookNotifier:
    """POSTs alert events to ``url`` from a background thread; a failing endpoint never blocks the gateway."""

    def __init__(self, url: str, *, retries: int = 3, timeout_s: float = 5.0, backoff_s: float = 0.5) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {url!r}")
        self.url = url
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread.start()

    def notify(self, payloads: Sequence[bytes]) -> None:
        """Queue events for delivery."""
        for payload in payloads:
            self._queue.put(payload)

    def stop(self) -> None:
        """Deliver what is queued (within the retry budget), then stop."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout_s * (self.retries + 1) + 5)

    def _run(self) -> None:
        stop = threading.Event()
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            for attempt in range(self.retries + 1):
                if self._post(payload):
                    self.delivered += 1
                    break
                if attempt < self.retries:
                    stop.wait(self.backoff_s * 2**attempt)
            else:
                self.failed += 1
                log.error("webhook %s: alert event not delivered after %d attempts", self.url, self.retries + 1)

    def _post(self, payload: bytes) -> bool:
        request = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.url, data=payload, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return 200 <= int(response.status) < 300
        except (urllib.error.URLError, OSError) as exc:
            log.warning("webhook %s: %s", self.url, exc)
            return False
