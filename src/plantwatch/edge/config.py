"""The gateway configuration file (TOML or JSON): identity, sources, spool, uplink and floor alerting."""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import msgspec

from plantwatch.contract.reading import IDENT_PATTERN, SENSOR_TYPE_PATTERN, UNIT_PATTERN
from plantwatch.domain.registers import DataType, Order


class SensorSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a sensor sits and what it measures (the line defaults to its source's)."""

    asset: str
    sensor_id: str
    sensor_type: str
    unit: str
    line: str | None = None

    def __post_init__(self) -> None:
        """Refuse identifiers that readings could not carry."""
        _check(self.asset, IDENT_PATTERN, "asset")
        _check(self.sensor_id, IDENT_PATTERN, "sensor_id")
        _check(self.sensor_type, SENSOR_TYPE_PATTERN, "sensor_type")
        _check(self.unit, UNIT_PATTERN, "unit")
        if self.line is not None:
            _check(self.line, IDENT_PATTERN, "line")


class RegisterFunction(StrEnum):
    """Which Modbus table a register is read from."""

    HOLDING = "holding"
    INPUT = "input"


class ModbusSensor(SensorSpec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One sensor's register: address (0-based), table, data type, word/byte order, scaling and poll interval."""

    address: int
    function: RegisterFunction = RegisterFunction.HOLDING
    data_type: DataType = DataType.FLOAT32
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    scale: float = 1.0
    offset: float = 0.0
    poll_interval_ms: int = 1000


class ModbusSourceConfig(msgspec.Struct, frozen=True, kw_only=True, tag="modbus", tag_field="kind"):
    """A Modbus TCP device polled register by register."""

    host: str
    line: str
    sensors: list[ModbusSensor]
    port: int = 502
    device_id: int = 1
    timeout_s: float = 1.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


class OpcUaNode(SensorSpec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A node id whose data changes become readings of one sensor."""

    node_id: str
    scale: float = 1.0
    offset: float = 0.0


class OpcUaSourceConfig(msgspec.Struct, frozen=True, kw_only=True, tag="opcua", tag_field="kind"):
    """An OPC UA server whose nodes the gateway subscribes to (data-change notifications)."""

    endpoint: str
    line: str
    nodes: list[OpcUaNode]
    publishing_interval_ms: int = 500
    timeout_s: float = 5.0
    reconnect_max_s: float = 30.0


class SimulatorSourceConfig(msgspec.Struct, frozen=True, kw_only=True, tag="simulator", tag_field="kind"):
    """The deterministic simulated plant, one line of it."""

    line: str = "line-1"
    lines: int = 1
    assets_per_line: int = 4
    seed: int = 7
    sample_period_ms: int = 1000
    anchor_ms: int = 0
    fault_after_s: float = 20.0
    fault_every_s: float = 300.0
    fault_duration_s: float = 60.0


class MqttSensorsSourceConfig(msgspec.Struct, frozen=True, kw_only=True, tag="mqtt", tag_field="kind"):
    """Sensors that publish the original raw reading themselves to a broker the gateway subscribes to."""

    host: str = "127.0.0.1"
    port: int = 1883
    topic_filter: str = "manufacturing/sensors/+/data"
    asset: str = "unassigned"
    once_wait_s: float = 5.0


SourceConfig = ModbusSourceConfig | OpcUaSourceConfig | SimulatorSourceConfig | MqttSensorsSourceConfig


class FullPolicy(StrEnum):
    """What the spool does when its disk budget is used up."""

    REJECT = "reject"
    DROP_OLDEST = "drop_oldest"


class SpoolConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The durable spool: where, how big (payload bytes), and what happens when full."""

    path: str = "spool.sqlite"
    budget_bytes: int = 256 * 1024 * 1024
    when_full: FullPolicy = FullPolicy.DROP_OLDEST


class UplinkConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How batches leave: MQTT (embedded/local broker, optional mutual TLS), AWS IoT mTLS, Greengrass, or none."""

    transport: Literal["mqtt", "iot-mtls", "greengrass", "none"] = "mqtt"
    host: str = "127.0.0.1"
    port: int = 1883
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    max_bytes_per_s: int = 512 * 1024
    max_publishes_per_s: int = 100
    inflight: int = 20
    #: 4 = MQTT 3.1.1 (the embedded broker), 5 = MQTT 5 (publish reason codes); transport "mqtt" only.
    mqtt_version: Literal[4, 5] = 4


class AlertConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Floor alerting: lifecycle counts and where alerts go on the floor."""

    #: Anomaly alerts raise at the N-th consecutive anomalous reading and clear after M normal ones. Unset (the
    #: default), each is the scoring model's tuned count (its threshold was tuned and evaluated with it; never
    #: below 3 / 5, the counts without a model). Set, it is the operator's and no model changes it.
    raise_after: int | None = None
    clear_after: int | None = None
    floor: Literal["mqtt", "greengrass", "none"] = "mqtt"
    floor_host: str = "127.0.0.1"
    floor_port: int = 1883
    webhook_url: str | None = None
    webhook_retries: int = 3


class GatewayFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything one gateway runs from."""

    gateway_id: str
    plant: str
    sources: list[SourceConfig]
    data_dir: str = "."
    batch_interval_ms: int = 5000
    max_readings: int = 2000
    #: event-time window of the forest score summaries sent for drift (an hour); 0 sends none
    summary_window_ms: int = 3_600_000
    step_interval_ms: int = 50
    spool: SpoolConfig = msgspec.field(default_factory=SpoolConfig)
    uplink: UplinkConfig = msgspec.field(default_factory=UplinkConfig)
    alerts: AlertConfig = msgspec.field(default_factory=AlertConfig)
    limits: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    #: A model file checked every ``model_check_s`` and swapped in when it changes (refused ones are logged).
    model_path: str | None = None
    model_check_s: float = 5.0

    def __post_init__(self) -> None:
        """Refuse identifiers that topics and readings could not carry."""
        _check(self.gateway_id, IDENT_PATTERN, "gateway_id")
        _check(self.plant, IDENT_PATTERN, "plant")
        # A source's line (or a raw-MQTT source's asset) is every reading's unless a sensor sets its own: one the
        # cloud refuses would lose them all there. A sensor id names one sensor: readings, alert ids and the API's
        # sensor lookups rely on it.
        seen: set[str] = set()
        for source in self.sources:
            if isinstance(source, MqttSensorsSourceConfig):
                _check(source.asset, IDENT_PATTERN, "asset")
            else:
                _check(source.line, IDENT_PATTERN, "line")
            specs = source.sensors if isinstance(source, ModbusSourceConfig) else getattr(source, "nodes", [])
            for spec in specs:
                if spec.sensor_id in seen:
                    raise ValueError(f"sensor_id {spec.sensor_id!r} is configured twice: each sensor needs its own id")
                seen.add(spec.sensor_id)

    def spool_path(self) -> Path:
        """The spool file, relative to ``data_dir`` unless absolute."""
        return Path(self.data_dir) / self.spool.path


def _check(value: str, pattern: str, name: str) -> None:
    if not re.match(pattern, value):
        raise ValueError(f"{name} {value!r} is not valid (pattern {pattern})")


class ConfigError(ValueError):
    """A configuration file that can't be used, with the reason."""


def parse_config(document: dict[str, Any]) -> GatewayFile:
    """Validate a decoded configuration document."""
    try:
        return msgspec.convert(document, GatewayFile)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"invalid gateway configuration: {exc}") from exc


def load_config(path: Path) -> GatewayFile:
    """Read and validate a TOML (``.toml``) or JSON configuration file."""
    text = path.read_bytes()
    try:
        document = tomllib.loads(text.decode()) if path.suffix == ".toml" else msgspec.json.decode(text)
    except (tomllib.TOMLDecodeError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the configuration must be a table/object")
    return parse_config(document)
