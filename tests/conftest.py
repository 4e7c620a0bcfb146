"""Shared test helpers: real dependencies are required under CI, free ports, readiness waits."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# make test is deterministic: property tests draw the same examples on every run (explore with a random seed
# by running pytest with --hypothesis-profile=explore)
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("deterministic")

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent


def missing(what: str) -> None:
    """A real dependency is absent: fail the test under CI=true, skip it elsewhere."""
    message = f"{what} is required for this test but is not installed"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: .ci/run must install it)")
    pytest.skip(message)


def require_binary(name: str) -> str:
    """Path of an executable; under CI=true a missing one fails the test instead of skipping it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        missing(f"the program {name!r}")
    assert path is not None
    return path


def require_module(name: str) -> None:
    """Import check; under CI=true a missing module fails the test instead of skipping it."""
    if importlib.util.find_spec(name) is None:
        missing(f"the Python module {name!r}")


#: Ports handed out already: two servers of one test never get the same one before either binds it.
_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (32768 where it can't be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (never 1883 or 8080), below the kernel's range for
    outgoing connections: a port from that range could be taken by an outgoing connection (the server's own
    MQTT clients, say) between this check and the server's bind."""
    rng = random.SystemRandom()
    high = _ephemeral_low()
    while True:
        port = rng.randrange(20_000, high)
        if port in (1883, 8080) or port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the thing may not be up yet
            last_error = exc
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Any:
    """A moto server that serves one request at a time (atomic like DynamoDB's conditional writes), per session."""
    from tests.moto import moto_server

    with moto_server(one_request_at_a_time=True) as url:
        yield url
