"""A local request rate limit: a token bucket per caller, answering 429 with Retry-After when empty."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse


class RateLimiter:
    """``rate`` requests per second per caller (by token, else by client address), bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, caller: str) -> float:
        """Take one request from ``caller``'s bucket: 0 if allowed, else seconds until one is."""
        now = self.clock()
        with self._lock:
            if len(self._buckets) > 10_000:  # forget callers idle long enough to have a full bucket again
                idle_s = self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < idle_s}
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Starlette HTTP middleware."""
        auth = request.headers.get("authorization")
        caller = hashlib.sha256(auth.encode()).hexdigest() if auth else (request.client.host if request.client else "")
        wait = self.wait_s(caller)
        if wait > 0:
            return JSONResponse(
                {"detail": f"rate limit of {self.rate:g} requests/s exceeded: retry after {math.ceil(wait)} s"},
                status_code=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
        return await call_next(request)
