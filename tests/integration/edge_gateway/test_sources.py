"""The real sensor sources against real servers on loopback: pymodbus TCP and asyncua."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from plantwatch.adapters.modbus import ModbusSource
from plantwatch.adapters.opcua import OpcUaSource
from plantwatch.edge.config import ModbusSensor, ModbusSourceConfig, OpcUaNode, OpcUaSourceConfig

from .servers import LoopThread, free_port, modbus_server, wait_for

VALUES = {"int16": -1234, "uint16": 54321, "int32": -123456789, "uint32": 3_000_000_000, "float32": 123.456}
PYMODBUS_TYPE = {
    "int16": ModbusTcpClient.DATATYPE.INT16,
    "uint16": ModbusTcpClient.DATATYPE.UINT16,
    "int32": ModbusTcpClient.DATATYPE.INT32,
    "uint32": ModbusTcpClient.DATATYPE.UINT32,
    "float32": ModbusTcpClient.DATATYPE.FLOAT32,
}


def device_registers(value: float, data_type: str, word_order: str, byte_order: str) -> list[int]:
    """What a device holds, encoded by pymodbus itself (byte-swapped registers swapped by hand)."""
    regs = ModbusTcpClient.convert_to_registers(value, PYMODBUS_TYPE[data_type], word_order=word_order)  # type: ignore[arg-type]
    if byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


def register_map() -> tuple[list[ModbusSensor], list[int], dict[str, float]]:
    """One sensor per data type x word order x byte order, laid out one after another in holding registers."""
    sensors, holding, expected = [], [], {}
    for data_type, value in VALUES.items():
        for word_order in ("big", "little"):
            for byte_order in ("big", "little"):
                sensor_id = f"s-{data_type}-{word_order[0]}{byte_order[0]}"
                sensors.append(
                    ModbusSensor(
                        asset="press-1",
                        sensor_id=sensor_id,
                        sensor_type="pressure",
                        unit="kPa",
                        address=len(holding),
                        data_type=data_type,  # type: ignore[arg-type]
                        word_order=word_order,  # type: ignore[arg-type]
                        byte_order=byte_order,  # type: ignore[arg-type]
                        poll_interval_ms=100,
                    )
                )
                holding.extend(device_registers(value, data_type, word_order, byte_order))
                expected[sensor_id] = value
    return sensors, holding, expected


def test_modbus_reads_every_data_type_word_and_byte_order() -> None:
    sensors, holding, expected = register_map()
    # an input register with scaling: raw 2345 (uint16) * 0.1 - 10 = 224.5
    sensors.append(
        ModbusSensor(
            asset="press-1",
            sensor_id="s-input-scaled",
            sensor_type="temperature",
            unit="degC",
            address=1,
            function="input",  # type: ignore[arg-type]
            data_type="uint16",  # type: ignore[arg-type]
            scale=0.1,
            offset=-10.0,
        )
    )
    expected["s-input-scaled"] = 2345 * 0.1 - 10.0
    port = free_port()
    config = ModbusSourceConfig(host="127.0.0.1", port=port, line="line-1", sensors=sensors)
    with modbus_server(holding, [7, 2345], port):
        source = ModbusSource(config, plant="plant-1")
        try:
            readings = {r.sensor_id: r for r in source.poll(1_700_000_000_000)}
        finally:
            source.close()
    assert set(readings) == set(expected)
    for sensor_id, value in expected.items():
        assert readings[sensor_id].value == pytest.approx(value, rel=1e-6), sensor_id
        assert readings[sensor_id].line == "line-1"
        assert readings[sensor_id].ts_ms == 1_700_000_000_000
    # a known vector, independent of any encoder: 123.456 as float32 big-endian is 0x42F6E979
    assert holding[sensors[16].address : sensors[16].address + 2] == [0x42F6, 0xE979]
    assert struct.unpack(">f", bytes.fromhex("42F6E979"))[0] == pytest.approx(123.456, rel=1e-6)


def test_modbus_device_that_stops_answering_is_offline_not_a_crash_and_comes_back() -> None:
    port = free_port()
    sensor = ModbusSensor(
        asset="a1",
        sensor_id="t1",
        sensor_type="temperature",
        unit="degC",
        address=0,
        data_type="int16",  # type: ignore[arg-type]
    )
    config = ModbusSourceConfig(
        host="127.0.0.1", port=port, line="line-1", sensors=[sensor], reconnect_min_s=0.05, timeout_s=0.5
    )
    source = ModbusSource(config, plant="plant-1")
    try:
        # GIVEN no device yet: no readings, the sensor is offline, nothing raises
        assert source.poll(1_000) == []
        assert [s.sensor_id for s in source.offline()] == ["t1"]
        # WHEN the device appears, THEN the source reconnects (after its backoff) and reads
        with modbus_server([42], [0], port):
            now = 2_000
            got: list[Any] = []

            def read() -> bool:
                nonlocal now
                now += 1000
                got.extend(source.poll(now))
                return bool(got)

            wait_for(read, 10, "a reading after the device came up")
            assert got[0].value == 42
            assert source.offline() == []
        # WHEN it goes away again, THEN the sensor is offline again
        now += 1000
        assert source.poll(now) == []
        assert [s.sensor_id for s in source.offline()] == ["t1"]
    finally:
        source.close()


def test_gateway_once_prints_the_register_map_as_json_lines(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gw.toml"
    config.write_text(
        f"""
gateway_id = "gw-test"
plant = "plant-1"

[[sources]]
kind = "modbus"
host = "127.0.0.1"
port = {port}
line = "line-1"

[[sources.sensors]]
asset = "oven-1"
sensor_id = "oven-1-temp"
sensor_type = "temperature"
unit = "degC"
address = 0
data_type = "float32"
word_order = "little"

[[sources.sensors]]
asset = "oven-1"
sensor_id = "oven-1-missing"
sensor_type = "temperature"
unit = "degC"
address = 50
data_type = "int16"
"""
    )
    with modbus_server(device_registers(71.25, "float32", "little", "big"), [0], port):
        done = subprocess.run(
            [sys.executable, "-m", "plantwatch.cli", "gateway", "--config", str(config), "--once"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["sensor_id"], r["value"]) for r in lines] == [("oven-1-temp", 71.25)]
    assert "oven-1-missing did not answer" in done.stderr
    assert done.returncode == 1  # a register map with a sensor that does not answer is not right yet


# --- OPC UA ------------------------------------------------------------------------------------------------
OPC_VALUES: dict[str, tuple[str, Any]] = {
    "double": ("Double", 12.5),
    "float": ("Float", 2.25),
    "int16": ("Int16", -300),
    "uint16": ("UInt16", 65000),
    "int32": ("Int32", -70000),
    "uint32": ("UInt32", 4_000_000_000),
    "int64": ("Int64", -(2**40)),
    "bool": ("Boolean", True),
}


@pytest.fixture
def opcua_server() -> Any:
    """An asyncua server on loopback with one variable per data type, in namespace 2."""
    from asyncua import Server, ua

    port = free_port()
    lt = LoopThread()
    variables: dict[str, Any] = {}

    async def start() -> Any:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plantwatch/")
        idx = await server.register_namespace("urn:plantwatch:test")
        line = await server.nodes.objects.add_object(idx, "line-1")
        for name, (vtype, value) in OPC_VALUES.items():
            variables[name] = await line.add_variable(
                ua.NodeId(name, idx), name, value, varianttype=getattr(ua.VariantType, vtype)
            )
        await server.start()
        return server, idx

    server, idx = lt.run(start())

    def write(name: str, value: Any) -> None:
        vtype = getattr(ua.VariantType, OPC_VALUES[name][0])
        lt.run(variables[name].write_value(ua.Variant(value, vtype)))

    yield f"opc.tcp://127.0.0.1:{port}/plantwatch/", idx, write
    lt.run(server.stop())
    lt.close()


def test_opcua_subscription_delivers_every_data_type_and_changes(opcua_server: Any) -> None:
    endpoint, idx, write = opcua_server
    nodes = [
        OpcUaNode(
            asset="mixer-1", sensor_id=f"n-{name}", sensor_type="vibration", unit="mm/s", node_id=f"ns={idx};s={name}"
        )
        for name in OPC_VALUES
    ]
    source = OpcUaSource(
        OpcUaSourceConfig(endpoint=endpoint, line="line-1", nodes=nodes, publishing_interval_ms=50), plant="plant-1"
    )
    try:
        # while the first connection is being made (every gateway start and rollout restart) nothing is offline:
        # no offline alert per node at each start
        source.start()
        assert source.offline() == []
        initial = {r.sensor_id: r.value for r in source.read_once(timeout_s=15)}
        assert initial == {f"n-{name}": float(value) for name, (_, value) in OPC_VALUES.items()}
        assert source.offline() == []
        # a data change arrives as a notification, without polling the server
        write("double", 99.0)
        write("int32", 5)
        got: dict[str, float] = {}

        def changed() -> bool:
            got.update({r.sensor_id: r.value for r in source.poll(0)})
            return got.get("n-double") == 99.0 and got.get("n-int32") == 5.0

        wait_for(changed, 10, "data-change notifications")
    finally:
        source.close()


def test_opcua_server_unreachable_at_start_marks_sensors_offline_after_the_first_failed_attempt() -> None:
    node = OpcUaNode(asset="a1", sensor_id="t1", sensor_type="temperature", unit="degC", node_id="ns=2;s=temp")
    config = OpcUaSourceConfig(
        endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plantwatch/", line="line-1", nodes=[node], timeout_s=1.0
    )
    source = OpcUaSource(config, plant="plant-1")
    try:
        source.start()
        wait_for(lambda: [s.sensor_id for s in source.offline()] == ["t1"], 15, "the sensor to be offline")
    finally:
        source.close()


def test_opcua_server_that_goes_away_marks_sensors_offline_and_resubscribes_when_back() -> None:
    from asyncua import Server, ua

    port = free_port()
    lt = LoopThread()

    async def start() -> tuple[Any, Any]:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plantwatch/")
        idx = await server.register_namespace("urn:plantwatch:test")
        line = await server.nodes.objects.add_object(idx, "line-1")
        var = await line.add_variable(ua.NodeId("temp", idx), "temp", 40.0, varianttype=ua.VariantType.Double)
        await server.start()
        return server, var

    server, var = lt.run(start())
    node = OpcUaNode(asset="a1", sensor_id="t1", sensor_type="temperature", unit="degC", node_id="ns=2;s=temp")
    source = OpcUaSource(
        OpcUaSourceConfig(
            endpoint=f"opc.tcp://127.0.0.1:{port}/plantwatch/", line="line-1", nodes=[node], timeout_s=1.0,
            reconnect_max_s=1.0,
        ),
        plant="plant-1",
    )  # fmt: skip
    try:
        assert [r.value for r in source.read_once(timeout_s=15)] == [40.0]
        # WHEN the server stops, THEN its sensors are offline (no crash)
        lt.run(server.stop())
        wait_for(lambda: [s.sensor_id for s in source.offline()] == ["t1"], 15, "the sensor to go offline")
        # WHEN it is back, THEN the source resubscribes and values flow again
        server, var = lt.run(start())
        got: list[float] = []
        wait_for(
            lambda: (got.extend(r.value for r in source.poll(0)), source.offline() == [] and 40.0 in got)[1],
            20,
            "values again",
        )
        lt.run(var.write_value(41.5))
        wait_for(lambda: (got.extend(r.value for r in source.poll(0)), 41.5 in got)[1], 10, "a change after reconnect")
    finally:
        source.close()
        lt.run(server.stop())
        lt.close()


def test_raw_mqtt_sensors_publishing_the_original_reading(mosquitto: Any) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from plantwatch.adapters.mqtt_sensors import MqttSensorsSource
    from plantwatch.edge.config import MqttSensorsSourceConfig

    source = MqttSensorsSource(
        MqttSensorsSourceConfig(port=mosquitto.port, asset="line-4-misc"), plant="plant-1", client_id="gw-raw"
    )
    source.start()
    sensor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sensor-1")
    sensor.connect("127.0.0.1", mosquitto.port)
    sensor.loop_start()
    try:
        stamp = datetime.now(UTC).replace(microsecond=250_000) - timedelta(minutes=1)
        good = {"sensor_id": "temp-17", "production_line": "line-4", "type": "temperature", "value": 71.5,
                "timestamp": stamp.isoformat().replace("+00:00", "Z")}  # fmt: skip
        got: list[Any] = []

        def heard() -> bool:
            # the subscription may still be settling: publish until the reading comes through
            sensor.publish("manufacturing/sensors/temp-17/data", json.dumps(good), qos=1).wait_for_publish(5)
            got.extend(source.poll(0))
            return bool(got)

        wait_for(heard, 10, "the raw reading")
        reading = got[0]
        assert (reading.sensor_id, reading.line, reading.asset, reading.unit, reading.value) == (
            "temp-17", "line-4", "line-4-misc", "degC", 71.5
        )  # fmt: skip
        assert reading.ts_ms == int(stamp.timestamp() * 1000)
        before = source.rejected
        sensor.publish("manufacturing/sensors/temp-17/data", b"{not json", qos=1).wait_for_publish(5)
        sensor.publish(
            "manufacturing/sensors/temp-17/data", json.dumps({**good, "value": "hot"}), qos=1
        ).wait_for_publish(5)
        wait_for(lambda: source.rejected == before + 2, 10, "both bad readings rejected, not crashed on")
    finally:
        sensor.loop_stop()
        sensor.disconnect()
        source.close()


def test_a_hanging_modbus_device_does_not_stall_the_gateway(tmp_path: Path) -> None:
    import socket
    import threading
    import time

    from plantwatch.domain.alerts import decode_event
    from plantwatch.edge.bootstrap import build_gateway
    from plantwatch.edge.config import parse_config
    from plantwatch.edge.run import run_gateway

    # a device that accepts the connection and never answers
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(4)
    config = parse_config(
        {
            "gateway_id": "gw-stall",
            "plant": "plant-1",
            "data_dir": str(tmp_path),
            "sources": [
                {
                    "kind": "modbus", "host": "127.0.0.1", "port": black_hole.getsockname()[1], "line": "line-1",
                    "timeout_s": 3.0,
                    "sensors": [
                        {"asset": "a1", "sensor_id": "hung", "sensor_type": "pressure", "unit": "kPa", "address": 0}
                    ],
                },
                {"kind": "simulator", "assets_per_line": 1, "sample_period_ms": 100, "fault_after_s": 1e12},
            ],
            "uplink": {"transport": "none"},
            "alerts": {"floor": "none", "raise_after": 2},
            "limits": {"temperature": {"high": 0.0}},  # every temperature reading is anomalous
        }
    )  # fmt: skip
    events: list[tuple[float, Any]] = []

    class Floor:
        def notify(self, payloads: list[bytes]) -> None:
            events.extend((time.monotonic(), decode_event(p)) for p in payloads)

    runtime = build_gateway(config, extra_notifiers=[Floor()])
    stop = threading.Event()
    started = time.monotonic()
    thread = threading.Thread(target=run_gateway, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(e.alert.kind == "offline" for _, e in events), 15, "the hung device to be offline")
    finally:
        stop.set()
        thread.join(20)
        black_hole.close()
    anomaly_at = next(t for t, e in events if e.alert.kind == "anomaly")
    offline_at = next(t for t, e in events if e.alert.kind == "offline")
    # the simulator's alert came while the Modbus read was still hanging (its timeout is 3 s)
    assert anomaly_at - started < 2.0
    assert anomaly_at < offline_at
