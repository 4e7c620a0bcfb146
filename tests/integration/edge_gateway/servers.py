"""Real servers for the gateway's integration tests: pymodbus, asyncua, mosquitto (with test certificates)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, missing


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on loopback ``port``."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LoopThread:
    """An asyncio loop on a daemon thread, for servers that are asyncio-only."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextmanager
def modbus_server(holding: list[int], inputs: list[int], port: int) -> Iterator[None]:
    """A pymodbus TCP server on loopback with the given holding and input registers (device id 1)."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    bits = [SimData(address=0, count=1, values=False, datatype=DataType.BITS)]
    device = SimDevice(
        id=1,
        simdata=(
            bits,
            bits,
            [SimData(address=0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(address=0, values=inputs, datatype=DataType.REGISTERS)],
        ),
    )
    lt = LoopThread()

    async def start() -> Any:
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        return server

    server = lt.run(start())
    wait_for(lambda: port_open(port), 10, "the modbus server")
    try:
        yield
    finally:
        lt.run(server.shutdown())
        lt.close()


def make_pki(directory: Path, clients: list[str]) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost, and a client certificate per name (CN = name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plantwatch test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out = {"ca": directory / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        out[f"{name}.crt"] = directory / f"{name}.crt"
        out[f"{name}.key"] = directory / f"{name}.key"
        out[f"{name}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{name}.key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    leaf("server", True)
    for name in clients:
        leaf(name, False)
    return out


class Mosquitto:
    """A mosquitto broker of the test's own, on free ports, with its own config; stoppable and restartable."""

    def __init__(self, directory: Path, *, pki: dict[str, Path] | None = None, persistent: bool = False) -> None:
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if Path(p).exists()), None
        )
        if binary is None:
            missing("mosquitto (apt-get install mosquitto)")
        self.binary = str(binary)
        self.directory = directory
        self.port = free_port()
        self.tls_port = free_port() if pki else None
        directory.mkdir(parents=True, exist_ok=True)
        # persistence: sessions and queued QoS 1 messages survive a restart (saved on a clean shutdown)
        lines = ["per_listener_settings true", "log_dest stderr", "log_type error"]
        lines += [f"persistence true\npersistence_location {directory}/"] if persistent else ["persistence false"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # else mosquitto drops to user mosquitto and can't read the test's files
        lines += [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if pki:
            acl = directory / "acl"
            acl.write_text(
                "# each gateway writes only under its own thing name; the downstream reader reads everything\n"
                "user downstream\n"
                "topic read plantwatch/#\n"
                "pattern write plantwatch/gateways/%u/#\n"
                "pattern read plantwatch/gateways/%u/#\n"
            )
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {pki['ca']}",
                f"certfile {pki['server.crt']}",
                f"keyfile {pki['server.key']}",
                "require_certificate true",
                "use_identity_as_username true",
                f"acl_file {acl}",
            ]
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the broker and wait until its listeners accept connections."""
        with open(self.directory / "log", "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=log)
        wait_for(lambda: port_open(self.port) and (self.tls_port is None or port_open(self.tls_port)), 10, "mosquitto")

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the broker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain mosquitto on a free loopback port."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


class Downstream:
    """The cloud side of a test: a persistent QoS 1 subscriber that decodes batches and keeps alert events."""

    def __init__(self, port: int, *, client_id: str = "downstream", tls: dict[str, Any] | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.batches: list[tuple[str, int, int]] = []  # (gateway_id, seq, readings)
        self.alerts: list[bytes] = []
        self.received_at: list[float] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
        if tls:
            self.client.tls_set(**tls)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(
            [("plantwatch/gateways/+/batches", 1), ("plantwatch/gateways/+/alerts", 1)]
        )
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("downstream subscriber did not subscribe")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        from plantwatch.contract.decode import decode_payload

        payload = bytes(message.payload)
        with self._lock:
            if message.topic.endswith("/alerts"):
                self.alerts.append(payload)
                return
            result = decode_payload(payload, now_ms=time.time_ns() // 1_000_000, topic=message.topic)
            assert result.batch is not None, result.rejections
            self.batches.append((result.batch.gateway_id, result.batch.seq, len(result.batch.readings)))
            self.received_at.append(time.monotonic())

    def seqs(self, gateway_id: str) -> set[int]:
        """Distinct sequence numbers received from ``gateway_id`` (duplicates removed, as downstream does)."""
        with self._lock:
            return {seq for gw, seq, _ in self.batches if gw == gateway_id}

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
