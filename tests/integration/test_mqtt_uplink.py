"""Spool -> MQTT uplink -> real mosquitto -> bridge -> durable stream, including a broker outage."""

from __future__ import annotations

import threading
from pathlib import Path

from plantwatch.adapters.mqtt import MqttBridge, MqttEndpoint, MqttUplink
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.adapters.sqlite_stream import SqliteStream
from plantwatch.contract.topics import BATCH_TOPIC_FILTER, batch_topic
from tests.conftest import free_port, wait_for
from tests.mosquitto import mosquitto


def spool_batches(spool: SqliteSpool, n: int) -> list[int]:
    seqs = list(range(spool.next_seq(), spool.next_seq() + n))
    spool.put(batch_topic("gw-1"), [(seq, f"batch {seq}".encode()) for seq in seqs])
    return seqs


def test_every_spooled_batch_reaches_the_stream_across_a_broker_outage(tmp_path: Path) -> None:
    port = free_port()
    endpoint = MqttEndpoint(port=port, keepalive_s=5)
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    stream = SqliteStream(tmp_path / "stream.sqlite")
    lock = threading.Lock()

    def deliver(topic: str, payload: bytes) -> None:
        with lock:
            stream.append(topic, payload, 0)

    bridge = MqttBridge(deliver, endpoint, client_id="bridge", topics=[BATCH_TOPIC_FILTER])
    uplink = MqttUplink(spool, endpoint, client_id="gw-1", inflight=5)
    produced = spool_batches(spool, 40)

    def arrived() -> set[bytes]:
        return {r.data for r in stream.read("test", 10_000)}

    try:
        with mosquitto(tmp_path, port, persistent=True):
            bridge.start()
            assert bridge.wait_subscribed(10)
            uplink.start()
            wait_for(lambda: spool.depth() == 0, timeout=20, what="spool to drain")
        # broker down: new batches wait in the spool, nothing is lost; the broker keeps the bridge's session
        produced += spool_batches(spool, 25)
        uplink.nudge()
        wait_for(lambda: not uplink.connected, timeout=10, what="uplink to notice the outage")
        assert spool.depth() == 25
        with mosquitto(tmp_path, port, persistent=True):
            wait_for(lambda: spool.depth() == 0, timeout=30, what="spool to drain after the outage")
            wait_for(lambda: len(arrived()) == len(produced), timeout=30, what="bridge to deliver everything")
    finally:
        uplink.stop()
        bridge.stop()
    assert arrived() == {f"batch {seq}".encode() for seq in produced}
    assert produced == list(range(1, 66))


def test_spool_keeps_batches_and_sequence_across_reopen(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    spool_batches(spool, 3)
    spool.remove([spool.peek(1)[0].spool_id])
    spool.close()

    reopened = SqliteSpool(tmp_path / "spool.sqlite")
    assert [b.seq for b in reopened.peek(10)] == [2, 3]
    assert reopened.next_seq() == 4
    reopened.remove([b.spool_id for b in reopened.peek(10)])
    assert reopened.depth() == 0 and reopened.next_seq() == 4


def test_stream_checkpoints_survive_reopen(tmp_path: Path) -> None:
    stream = SqliteStream(tmp_path / "stream.sqlite")
    ids = [stream.append("t", f"r{i}".encode(), i) for i in range(5)]
    stream.commit("c", str(ids[2]))
    stream.close()

    reopened = SqliteStream(tmp_path / "stream.sqlite")
    assert [r.data for r in reopened.read("c", 10)] == [b"r3", b"r4"]
    assert reopened.backlog("c") == 2 and reopened.backlog("other") == 5
    assert reopened.trim("c", older_than_ms=10) == 3
    assert [r.data for r in reopened.read("other", 10)] == [b"r3", b"r4"]
