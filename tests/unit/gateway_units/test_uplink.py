"""The store-and-forward drain: in order, only acknowledged batches leave, retries, and IoT Core's caps."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.services.uplink import TokenBucket, Uplink


class FakeBroker:
    """A transport that acknowledges after a random delay, refuses chosen first attempts, and logs publishes.

    It records the most unacknowledged publishes it ever held (IoT Core allows at most 100).
    """

    def __init__(self, *, refuse_first: set[bytes] | None = None) -> None:
        self.refuse_first = set(refuse_first or ())
        self.max_seen = 0
        self.log: list[tuple[float, bytes]] = []
        self.inflight = 0
        self.lock = threading.Lock()
        self.rng = random.Random(1)

    @property
    def connected(self) -> bool:
        return True

    def start(self, on_connected: Callable[[], None]) -> None:
        on_connected()

    def publish(self, topic: str, payload: bytes, on_done: Callable[[bool], None]) -> None:
        with self.lock:
            self.log.append((time.monotonic(), payload))
            self.inflight += 1
            self.max_seen = max(self.max_seen, self.inflight)
            ok = payload not in self.refuse_first
            self.refuse_first.discard(payload)

        def answer() -> None:
            with self.lock:
                self.inflight -= 1
            on_done(ok)

        threading.Timer(self.rng.uniform(0, 0.01), answer).start()

    def stop(self) -> None:
        pass


def filled_spool(tmp_path: Path, n: int, size: int = 10) -> SqliteSpool:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    spool.put("t", [(seq, seq.to_bytes(4, "big") * (size // 4)) for seq in range(1, n + 1)], [1] * n)
    return spool


def test_drains_in_order_and_resends_what_was_refused(tmp_path: Path) -> None:
    spool = filled_spool(tmp_path, 60)
    refused = (7).to_bytes(4, "big") * 2
    broker = FakeBroker(refuse_first={refused})
    uplink = Uplink(spool, broker, inflight=10, max_publishes_per_s=1000, max_bytes_per_s=1e9)
    uplink.start()
    try:
        assert uplink.drain(20)
    finally:
        uplink.stop()
    first_attempts = []
    for _, payload in broker.log:
        if payload not in first_attempts:
            first_attempts.append(payload)
    assert [int.from_bytes(p[:4], "big") for p in first_attempts] == list(range(1, 61))  # oldest first
    assert [p for _, p in broker.log].count(refused) == 2  # refused once, then resent
    assert spool.depth() == 0
    assert broker.max_seen <= 10
    spool.close()


def test_publish_rate_stays_under_the_cap(tmp_path: Path) -> None:
    spool = filled_spool(tmp_path, 45)
    broker = FakeBroker()
    uplink = Uplink(spool, broker, inflight=50, max_publishes_per_s=20, max_bytes_per_s=1e9)
    uplink.start()
    try:
        assert uplink.drain(20)
    finally:
        uplink.stop()
    times = [t for t, _ in broker.log]
    # a burst of one second's worth, then the rate: no 1-second window holds more than 2 x the cap
    for t in times:
        assert sum(1 for u in times if t <= u < t + 1.0) <= 40
    assert times[-1] - times[0] >= (45 - 20) / 20 * 0.9
    spool.close()


def test_byte_rate_stays_under_the_cap(tmp_path: Path) -> None:
    spool = filled_spool(tmp_path, 20, size=1000)
    broker = FakeBroker()
    uplink = Uplink(spool, broker, inflight=50, max_publishes_per_s=1000, max_bytes_per_s=10_000)
    uplink.start()
    try:
        assert uplink.drain(20)
    finally:
        uplink.stop()
    times = [t for t, _ in broker.log]
    assert times[-1] - times[0] >= (20_000 - 10_000) / 10_000 * 0.9
    spool.close()


def test_token_bucket_with_a_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(100, monotonic=lambda: now[0])
    assert bucket.wait_time(100) == 0
    bucket.take(100)
    assert bucket.wait_time(1) == pytest.approx(0.01)
    now[0] = 0.5
    assert bucket.wait_time(50) == 0
    assert bucket.wait_time(1000) == pytest.approx(0.5)  # larger than the burst: waits for a full bucket
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


def test_inflight_is_bounded_by_iot_core_limit(tmp_path: Path) -> None:
    spool = filled_spool(tmp_path, 1)
    with pytest.raises(ValueError, match="inflight"):
        Uplink(spool, FakeBroker(), inflight=101)
    spool.close()
