"""Running a gateway: the step loop until stopped, and the one-shot commissioning read (``--once``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import msgspec

from plantwatch.contract.reading import Reading
from plantwatch.edge.bootstrap import GatewayRuntime, build_source
from plantwatch.edge.config import GatewayFile

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_gateway(
    runtime: GatewayRuntime,
    stop: threading.Event,
    *,
    reload: threading.Event | None = None,
    now_ms: Callable[[], int] = _now_ms,
) -> None:
    """Step the gateway every ``step_interval_ms`` until ``stop`` (or ``reload``) is set, then seal, drain, close."""
    runtime.start()
    interval = runtime.config.step_interval_ms / 1000
    log.info("gateway %s running", runtime.config.gateway_id)
    next_model_check = 0.0
    try:
        while not stop.is_set() and not (reload is not None and reload.is_set()):
            started = time.monotonic()
            now = now_ms()
            if runtime.swapper is not None and started >= next_model_check:
                next_model_check = started + runtime.config.model_check_s
                try:
                    runtime.swapper.check()
                except Exception:  # e.g. the spool refused the flush before a swap: the next check retries
                    log.exception("model check failed; the current model keeps scoring")
            try:
                runtime.gateway.step(now)
            except Exception:  # a failing step (a source, the disk) is logged and retried, never fatal
                log.exception("gateway step failed")
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        runtime.stop()


def read_once(config: GatewayFile, *, timeout_s: float = 10.0) -> tuple[list[Reading], list[str]]:
    """Read every configured source once: the readings, and a problem line per sensor that did not answer."""
    readings: list[Reading] = []
    problems: list[str] = []
    for index, source_config in enumerate(config.sources):
        source = build_source(source_config, plant=config.plant, gateway_id=config.gateway_id, index=index)
        try:
            once = getattr(source, "read_once", None)
            got = list(once(timeout_s)) if once is not None else list(source.poll(_now_ms()))
            readings.extend(got)
            known = getattr(source, "sensors", None)
            answered = {r.sensor_id for r in got}
            kind = source_config.__struct_config__.tag
            for ref in known() if known is not None else []:
                if ref.sensor_id not in answered:
                    problems.append(f"source {index} ({kind}): sensor {ref.sensor_id} did not answer")
        finally:
            closer = getattr(source, "close", None)
            if closer is not None:
                closer()
    return readings, problems


def reading_line(reading: Reading) -> str:
    """One reading as a JSON line."""
    return msgspec.json.encode(reading).decode()
