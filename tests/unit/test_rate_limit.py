"""The local rate limiter: a token bucket per caller that refills at its rate and forgets idle callers."""

from __future__ import annotations

import pytest

from plantwatch.api.ratelimit import RateLimiter


def test_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=4.0, burst=2, clock=lambda: now[0])
    assert [limiter.wait_s("a"), limiter.wait_s("a")] == [0.0, 0.0]
    assert limiter.wait_s("a") == pytest.approx(0.25)
    now[0] += 0.25
    assert limiter.wait_s("a") == 0.0


def test_idle_callers_are_forgotten() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10.0, burst=10, clock=lambda: now[0])
    for i in range(10_001):
        limiter.wait_s(f"caller-{i}")
    now[0] += 5.0  # everyone's bucket is full again
    limiter.wait_s("new")
    assert len(limiter._buckets) == 1
