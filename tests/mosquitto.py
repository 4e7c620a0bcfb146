"""Run a real mosquitto broker for a test, on a free loopback port, and stop it afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import port_open, require_binary, wait_for


@contextmanager
def mosquitto(
    workdir: Path, port: int, extra_config: str = "", *, persistent: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """A plain-TCP (or, via ``extra_config``, TLS) mosquitto on 127.0.0.1:``port``.

    ``persistent`` keeps sessions and their queued messages in ``workdir`` across a stop and start, so a
    persistent subscriber misses nothing published while it reconnects.
    """
    binary = require_binary("mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"mosquitto-{port}.conf"
    config.write_text(
        f"user root\nlog_dest file {workdir}/mosquitto-{port}.log\n"
        + (f"persistence true\npersistence_location {workdir}/\n" if persistent else "persistence false\n")
        + f"listener {port} 127.0.0.1\n"
        + (extra_config or "allow_anonymous true\n")
    )
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, timeout=10, what=f"mosquitto on {port}")
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {process.stderr.read().decode() if process.stderr else ''}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
