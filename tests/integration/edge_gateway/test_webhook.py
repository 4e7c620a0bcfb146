"""The webhook floor notifier against a real HTTP server: POSTed as JSON, retried until accepted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from plantwatch.adapters.webhook import WebhookNotifier

from .servers import wait_for


@pytest.fixture
def andon() -> Iterator[dict[str, Any]]:
    """An HTTP endpoint that answers 503 to the first two POSTs, then 204."""
    state: dict[str, Any] = {"bodies": [], "attempts": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["attempts"] += 1
            if state["attempts"] <= 2:
                self.send_response(503)
            else:
                assert self.headers["Content-Type"] == "application/json"
                state["bodies"].append(body)
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    yield state
    server.shutdown()
    server.server_close()


def test_webhook_retries_until_the_floor_system_accepts(andon: dict[str, Any]) -> None:
    notifier = WebhookNotifier(andon["url"], retries=3, backoff_s=0.01)
    notifier.start()
    try:
        notifier.notify([b'{"event":"raised"}', b'{"event":"cleared"}'])
        wait_for(lambda: notifier.delivered == 2, 10, "both events delivered")
    finally:
        notifier.stop()
    assert andon["bodies"] == [b'{"event":"raised"}', b'{"event":"cleared"}']
    assert andon["attempts"] == 4
    assert notifier.failed == 0


def test_webhook_gives_up_after_its_retries_and_counts_it() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/alerts", retries=1, backoff_s=0.01, timeout_s=0.5)
    notifier.start()
    notifier.notify([b"{}"])
    notifier.stop()
    assert notifier.failed == 1
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("file:///etc/passwd")
