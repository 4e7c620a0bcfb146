"""mosquitto with mutual TLS, require_certificate and a per-gateway ACL: each gateway publishes only as itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantwatch.adapters.aws_iot import AwsIotTransport
from plantwatch.adapters.mqtt import MqttEndpoint, MqttUplink, PahoTransport
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.batch import BatchHeader, ModelRef, encode_batches
from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.contract.topics import batch_topic
from plantwatch.services.uplink import Uplink

from .servers import Downstream, Mosquitto, make_pki, wait_for

MODEL = ModelRef(name="original-thresholds", version="1")


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, Path]]]:
    pki = make_pki(tmp_path / "pki", ["gw-a", "gw-b", "downstream"])
    broker = Mosquitto(tmp_path / "broker", pki=pki)
    broker.start()
    yield broker, pki
    broker.stop()


def endpoint(broker: Mosquitto, pki: dict[str, Path], name: str) -> MqttEndpoint:
    return MqttEndpoint(
        host="127.0.0.1",
        port=broker.tls_port or 0,
        ca_file=str(pki["ca"]),
        cert_file=str(pki[f"{name}.crt"]),
        key_file=str(pki[f"{name}.key"]),
        mqtt_version=5,
    )


def downstream(broker: Mosquitto, pki: dict[str, Path]) -> Downstream:
    tls = {"ca_certs": str(pki["ca"]), "certfile": str(pki["downstream.crt"]), "keyfile": str(pki["downstream.key"])}
    return Downstream(broker.tls_port or 0, tls=tls)


def batches(gateway_id: str, first_seq: int, n: int) -> list[tuple[int, bytes]]:
    reading = Reading(
        plant="plant-1",
        line="line-1",
        asset="a1",
        sensor_id="a1-temp",
        sensor_type="temperature",
        unit="degC",
        ts_ms=1_764_000_000_000,
        value=50.0,
    )
    scored = [ScoredReading(reading=reading, score=0.0, anomaly=False)]
    header = BatchHeader(gateway_id=gateway_id, plant="plant-1", model=MODEL)
    return [
        (b.seq, b.payload)
        for seq in range(first_seq, first_seq + n)
        for b in encode_batches(header, scored, first_seq=seq)
    ]


def publish_and_wait(transport: Any, topic: str, payload: bytes) -> bool:
    done = threading.Event()
    result: list[bool] = []
    transport.publish(topic, payload, lambda ok: (result.append(ok), done.set()))
    assert done.wait(10), "no answer from the broker"
    return result[0]


def test_gateway_uplink_over_mutual_tls_delivers_its_spool(tls_broker: Any, tmp_path: Path) -> None:
    broker, pki = tls_broker
    down = downstream(broker, pki)
    spool = SqliteSpool(tmp_path / "gw-a.sqlite")
    spool.put(batch_topic("gw-a"), batches("gw-a", 1, 5), [1] * 5)
    uplink = MqttUplink(spool, endpoint(broker, pki, "gw-a"), client_id="gw-a")
    try:
        uplink.start()
        assert uplink.drain(20)
        wait_for(lambda: down.seqs("gw-a") == {1, 2, 3, 4, 5}, 10, "the batches downstream")
    finally:
        uplink.stop()
        spool.close()
        down.close()


def test_second_gateway_cannot_publish_to_the_first_gateways_topic(tls_broker: Any) -> None:
    broker, pki = tls_broker
    down = downstream(broker, pki)
    own = PahoTransport(endpoint(broker, pki, "gw-b"), client_id="gw-b")
    own.start(lambda: None)
    try:
        assert own.wait_connected(10)
        [(_, payload)] = batches("gw-b", 7, 1)
        # GIVEN gw-b publishes under its own thing name: accepted
        assert publish_and_wait(own, batch_topic("gw-b"), payload) is True
        # WHEN gw-b publishes to gw-a's topic, THEN the broker refuses it: MQTT 5 reason code 135, not authorized
        [(_, forged)] = batches("gw-a", 99, 1)
        assert publish_and_wait(own, batch_topic("gw-a"), forged) is False
        assert own.refused == [135]
        wait_for(lambda: down.seqs("gw-b") == {7}, 10, "gw-b's own batch downstream")
        assert down.seqs("gw-a") == set()
    finally:
        own.stop()
        down.close()


def test_a_client_without_a_certificate_is_refused(tls_broker: Any) -> None:
    broker, pki = tls_broker
    anonymous = PahoTransport(
        MqttEndpoint(host="127.0.0.1", port=broker.tls_port or 0, ca_file=str(pki["ca"]), mqtt_version=5),
        client_id="gw-a",
    )
    anonymous.start(lambda: None)
    try:
        assert not anonymous.wait_connected(2)  # the TLS handshake fails without a client certificate
    finally:
        anonymous.stop()


def test_awsiotsdk_transport_publishes_over_mutual_tls(tls_broker: Any) -> None:
    broker, pki = tls_broker
    down = downstream(broker, pki)
    transport = AwsIotTransport(
        host="127.0.0.1",
        port=broker.tls_port or 0,
        client_id="gw-a",
        ca_file=str(pki["ca"]),
        cert_file=str(pki["gw-a.crt"]),
        key_file=str(pki["gw-a.key"]),
    )
    transport.start(lambda: None)
    try:
        assert transport.wait_connected(15)
        [(_, payload)] = batches("gw-a", 3, 1)
        assert publish_and_wait(transport, batch_topic("gw-a"), payload) is True
        wait_for(lambda: down.seqs("gw-a") == {3}, 10, "the batch downstream")
    finally:
        transport.stop()
        down.close()


def test_awsiotsdk_uplink_survives_a_broker_restart(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", ["gw-a", "downstream"])
    with Mosquitto(tmp_path / "broker", pki=pki, persistent=True) as broker:
        drain_across_restart(tmp_path, broker, pki)


def drain_across_restart(tmp_path: Path, broker: Mosquitto, pki: dict[str, Path]) -> None:
    down = downstream(broker, pki)
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    transport = AwsIotTransport(
        host="127.0.0.1",
        port=broker.tls_port or 0,
        client_id="gw-a",
        ca_file=str(pki["ca"]),
        cert_file=str(pki["gw-a.crt"]),
        key_file=str(pki["gw-a.key"]),
        operation_timeout_s=5,
    )
    uplink = Uplink(spool, transport, inflight=5, max_publishes_per_s=20)
    try:
        uplink.start()
        assert transport.wait_connected(15)
        spool.put(batch_topic("gw-a"), batches("gw-a", 1, 40), [1] * 40)
        wait_for(lambda: len(down.seqs("gw-a")) >= 5, 10, "the first batches")
        # GIVEN the broker goes away mid-backlog and comes back
        broker.stop()
        wait_for(lambda: not uplink.connected, 10, "the uplink to notice")
        assert spool.depth() > 0
        broker.start()
        # THEN the backlog drains and every batch arrives
        assert uplink.drain(60)
        wait_for(lambda: down.seqs("gw-a") == set(range(1, 41)), 10, "every batch downstream")
    finally:
        uplink.stop()
        spool.close()
        down.close()
