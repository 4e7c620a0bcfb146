"""OPC UA sensor source (asyncua): subscribes to node ids and turns data-change notifications into readings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.object_ids import ObjectIds

from plantwatch.adapters.reading_queue import ReadingQueue
from plantwatch.contract.reading import Reading, SensorRef
from plantwatch.edge.config import OpcUaNode, OpcUaSourceConfig

log = logging.getLogger(__name__)


def _epoch_ms(stamp: datetime | None) -> int | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


class OpcUaSource:
    """Runs an asyncua client on its own thread; notifications queue up until the gateway polls them."""

    def __init__(self, config: OpcUaSourceConfig, *, plant: str) -> None:
        self.config = config
        self.plant = plant
        self._by_node = {ua.NodeId.from_string(n.node_id): n for n in config.nodes}
        self._queue = ReadingQueue()
        self._seen: set[str] = set()
        self._online = threading.Event()
        #: a connection attempt failed or the session dropped: until then a source that is still connecting
        #: (every gateway start, every model rollout's restart) is not offline
        self._failed = threading.Event()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"opcua-{config.endpoint}", daemon=True)

    def sensors(self) -> list[SensorRef]:
        """Every sensor this source subscribes to."""
        return [self._ref(n) for n in self.config.nodes]

    def _ref(self, node: OpcUaNode) -> SensorRef:
        return SensorRef(
            line=node.line or self.config.line,
            asset=node.asset,
            sensor_id=node.sensor_id,
            sensor_type=node.sensor_type,
            unit=node.unit,
        )

    def start(self) -> None:
        """Connect and subscribe in the background (reconnecting with backoff)."""
        self._thread.start()

    def offline(self) -> list[SensorRef]:
        """All sensors while the server is unreachable: once a connection attempt failed or the session dropped,
        until it is back (not while the first connection is still being made)."""
        return self.sensors() if self._failed.is_set() and not self._online.is_set() else []

    def poll(self, now_ms: int) -> list[Reading]:
        """Readings from the notifications received since the last poll."""
        return self._queue.drain()

    def read_once(self, timeout_s: float) -> list[Reading]:
        """Start, wait until every node has reported its value (or ``timeout_s`` passes), and return them."""
        if not self._thread.is_alive():
            self.start()
        deadline = time.monotonic() + timeout_s
        wanted = {n.sensor_id for n in self.config.nodes}
        while time.monotonic() < deadline and not wanted <= self._seen:
            time.sleep(0.02)
        latest: dict[str, Reading] = {}
        for reading in self.poll(0):
            latest[reading.sensor_id] = reading
        return list(latest.values())

    def close(self) -> None:
        """Disconnect and stop the client thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.config.timeout_s + 2)

    # --- asyncua side (its own thread and event loop) -----------------------------------------------------
    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        """asyncua callback: queue one reading; never raises."""
        try:
            spec = self._by_node.get(node.nodeid)
            value = _as_float(val)
            if spec is None or value is None:
                log.warning("opcua: ignoring value %r of node %s", val, node.nodeid)
                return
            dv = data.monitored_item.Value
            ts = _epoch_ms(dv.SourceTimestamp) or _epoch_ms(dv.ServerTimestamp) or time.time_ns() // 1_000_000
            ref = self._ref(spec)
            self._queue.put(ref.reading(plant=self.plant, ts_ms=ts, value=value * spec.scale + spec.offset))
            self._seen.add(spec.sensor_id)
        except Exception:
            log.exception("opcua notification handling failed")

    def _run(self) -> None:
        asyncio.run(self._supervise())

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                await self._session()
                backoff = 0.5
            except Exception as exc:
                self._online.clear()
                self._failed.set()
                log.warning("opcua %s offline (%s); retrying in %.1f s", self.config.endpoint, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_s)

    async def _session(self) -> None:
        client = Client(self.config.endpoint, timeout=self.config.timeout_s)
        await client.connect()
        try:
            subscription = await client.create_subscription(self.config.publishing_interval_ms, self)
            await subscription.subscribe_data_change([client.get_node(n) for n in self._by_node])
            self._online.set()
            state = client.get_node(ObjectIds.Server_ServerStatus_State)
            while not self._stop.is_set():
                await asyncio.sleep(0.5)
                await state.read_value()  # raises when the server stops answering
        finally:
            self._online.clear()
            with contextlib.suppress(Exception):
                await client.disconnect()
