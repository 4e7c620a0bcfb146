"""Modbus TCP sensor source (pymodbus): polls a register map, reconnects with backoff, reports offline sensors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from plantwatch.contract.reading import Reading, SensorRef
from plantwatch.domain.registers import REGISTER_COUNT, decode_registers
from plantwatch.edge.config import ModbusSensor, ModbusSourceConfig, RegisterFunction

log = logging.getLogger(__name__)


class ModbusSource:
    """Reads each configured register when its poll interval is due; an unreachable device marks sensors offline."""

    def __init__(
        self,
        config: ModbusSourceConfig,
        *,
        plant: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.plant = plant
        self._monotonic = monotonic
        self._client = ModbusTcpClient(config.host, port=config.port, timeout=config.timeout_s, retries=0)
        self._due_ms: dict[str, int] = {}
        self._offline: set[str] = set()
        self._backoff_s = config.reconnect_min_s
        self._retry_at = 0.0
        self._refs = {s.sensor_id: self._ref(s) for s in config.sensors}

    def _ref(self, sensor: ModbusSensor) -> SensorRef:
        return SensorRef(
            line=sensor.line or self.config.line,
            asset=sensor.asset,
            sensor_id=sensor.sensor_id,
            sensor_type=sensor.sensor_type,
            unit=sensor.unit,
        )

    def sensors(self) -> list[SensorRef]:
        """Every sensor this source reads."""
        return list(self._refs.values())

    def offline(self) -> list[SensorRef]:
        """Sensors whose device did not answer their last read."""
        return [self._refs[s] for s in sorted(self._offline)]

    def poll(self, now_ms: int) -> list[Reading]:
        """Read every sensor whose poll interval has passed; never raises for a device that doesn't answer."""
        due = [s for s in self.config.sensors if self._due_ms.get(s.sensor_id, 0) <= now_ms]
        if not due or not self._connected():
            return []
        out: list[Reading] = []
        for sensor in due:
            self._due_ms[sensor.sensor_id] = now_ms + sensor.poll_interval_ms
            value = self._read(sensor) if self._client.connected else None
            if value is None:
                self._offline.add(sensor.sensor_id)
                continue
            self._offline.discard(sensor.sensor_id)
            ref = self._refs[sensor.sensor_id]
            out.append(ref.reading(plant=self.plant, ts_ms=now_ms, value=value * sensor.scale + sensor.offset))
        return out

    def _connected(self) -> bool:
        if self._client.connected:
            return True
        if self._monotonic() < self._retry_at:
            return False
        if self._client.connect():  # type: ignore[no-untyped-call]
            log.info("modbus %s:%s connected", self.config.host, self.config.port)
            self._backoff_s = self.config.reconnect_min_s
            return True
        self._disconnected(f"cannot connect to {self.config.host}:{self.config.port}")
        return False

    def _disconnected(self, why: str) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
        self._offline.update(self._refs)
        self._retry_at = self._monotonic() + self._backoff_s
        log.warning("modbus device offline (%s); retrying in %.1f s", why, self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_max_s)

    def _read(self, sensor: ModbusSensor) -> float | None:
        count = REGISTER_COUNT[sensor.data_type]
        read = (
            self._client.read_holding_registers
            if sensor.function == RegisterFunction.HOLDING
            else self._client.read_input_registers
        )
        try:
            response = read(sensor.address, count=count, device_id=self.config.device_id)
        except ModbusException as exc:
            self._disconnected(str(exc))
            return None
        if response.isError():
            log.warning("modbus read of %s (address %s) failed: %s", sensor.sensor_id, sensor.address, response)
            return None
        return decode_registers(
            response.registers, sensor.data_type, word_order=sensor.word_order, byte_order=sensor.byte_order
        )

    def close(self) -> None:
        """Close the connection."""
        self._client.close()  # type: ignore[no-untyped-call]
