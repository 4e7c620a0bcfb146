"""Benchmark: the whole gateway pipeline on one core, against the original design's per-reading publish.

source (replayed simulator readings) -> features + score (by default the gateway's AnomalyDetector: feature
windows per asset, the portable Isolation Forest, thresholds and limits; ``--scorer thresholds`` for thresholds
alone) -> floor alerts -> encode -> SQLite spool (WAL, synchronous=FULL: fsync per
batch) -> QoS 1 publish to mosquitto on loopback -> acknowledged and removed from the spool.

Baseline, measured in the same run: the original design, where every reading is published by itself as raw
JSON with QoS 1. Rate caps are lifted for the local broker (IoT Core's caps are reported separately).

    .venv/bin/python benchmarks/gateway_pipeline.py --readings 600000 --core 0 [--scorer forest|thresholds]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.adapters.mqtt import MqttEndpoint, MqttUplink
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.reading import Reading
from plantwatch.domain.alerts import AlertEngine
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.features import FeatureSpec
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.models.trainer import SCORE_BINS, with_training
from plantwatch.models.training import train_simulated_plant
from plantwatch.ports import Scorer
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.uplink import IOT_CORE_BYTES_PER_S, IOT_CORE_PUBLISHES_PER_S


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = directory / "mosquitto.conf"
    lines = ([] if os.geteuid() else ["user root"]) + [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.02)
    raise SystemExit("mosquitto did not start")


def make_readings(n: int) -> list[Reading]:
    """``n`` simulator readings of one line with 50 assets (150 sensors), faults included."""
    sim = PlantSimulator(
        SimulationConfig(lines=1, assets_per_line=50, sample_period_ms=1000, fault_after_s=60, fault_every_s=600)
    )
    out: list[Reading] = []
    ts = 1_764_000_000_000
    while len(out) < n:
        out.extend(sim.readings("line-1", ts))
        ts += 1000
    return out[:n]


class Replay:
    """Hands out pre-made readings in chunks, as a source would after a poll."""

    def __init__(self, readings: list[Reading], chunk: int) -> None:
        self._chunks: Iterator[list[Reading]] = (readings[i : i + chunk] for i in range(0, len(readings), chunk))
        self.done = False

    def poll(self, now_ms: int) -> list[Reading]:
        chunk = next(self._chunks, None)
        if chunk is None:
            self.done = True
            return []
        return chunk


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_scorer(kind: str) -> Scorer:
    """The scorer under test: the forest decision (trained here on the simulator's healthy hours) or thresholds."""
    thresholds = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
    if kind == "thresholds":
        return thresholds
    simulator = PlantSimulator(SimulationConfig(lines=1, assets_per_line=4, anchor_ms=1_763_000_000_000))
    spec = FeatureSpec()
    model = train_simulated_plant(simulator, spec, hours=1.0, n_estimators=100, seed=0)
    # A training score histogram makes the gateway keep its forest scores and spool hourly drift summaries, as
    # with a model from `plantwatch train`; its values don't change the cost measured here.
    model = with_training(model, {"score_histogram": [1.0 / SCORE_BINS] * SCORE_BINS})
    return AnomalyDetector(spec=spec, thresholds=thresholds, model=model)


def run_pipeline(readings: list[Reading], port: int, directory: Path, scorer: Scorer) -> dict[str, float]:
    spool = SqliteSpool(directory / "spool.sqlite")
    uplink = MqttUplink(
        spool,
        MqttEndpoint(port=port),
        client_id="bench-gw",
        inflight=100,
        max_bytes_per_s=1e12,
        max_publishes_per_s=1e9,
    )
    source = Replay(readings, chunk=2000)
    gateway = Gateway(
        config=GatewayConfig(gateway_id="bench-gw", plant="plant-1", batch_interval_ms=1000, max_readings=2000),
        sources=[source],
        scorer=scorer,
        model=scorer.model_ref if isinstance(scorer, AnomalyDetector) else THRESHOLD_MODEL,
        spool=spool,
        alerts=AlertEngine(gateway_id="bench-gw", plant="plant-1"),
        on_spooled=uplink.nudge,
    )
    uplink.start()
    assert uplink.transport.wait_connected(10)  # type: ignore[attr-defined]
    wall0, cpu0 = time.perf_counter(), cpu_s()
    now = 0
    while not source.done:
        gateway.step(now)
        now += 1
    gateway.flush()
    assert uplink.drain(120), "the uplink did not drain"
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    published = uplink.published
    uplink.stop()
    assert spool.depth() == 0
    spool.close()
    return {
        "readings": len(readings),
        "wall_s": wall,
        "cpu_s": cpu,
        "readings_per_s": len(readings) / wall,
        "batches": gateway.counters.batches,
        "published": published,
        "alert_events": gateway.counters.alert_events,
    }


def bytes_per_reading(readings: list[Reading]) -> float:
    """Wire bytes per reading of sealed batches (gzip columnar JSON), from the same encoder the gateway uses."""
    from plantwatch.contract.batch import BatchHeader, encode_batches

    scorer = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
    sample = readings[:200_000]
    header = BatchHeader(gateway_id="bench-gw", plant="plant-1", model=THRESHOLD_MODEL)
    encoded = encode_batches(header, scorer.score_many(sample), first_seq=1)
    return sum(len(e.payload) for e in encoded) / len(sample)


def run_baseline(readings: list[Reading], port: int) -> dict[str, float]:
    """The original design: each reading published on its own as raw JSON, QoS 1, every ack awaited."""
    done = threading.Event()
    acked = [0]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-legacy")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)

    def on_publish(*args: object) -> None:
        acked[0] += 1
        if acked[0] == len(readings):
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    raw_bytes = 0
    wall0, cpu0 = time.perf_counter(), cpu_s()
    for r in readings:
        payload = json.dumps(
            {
                "sensor_id": r.sensor_id,
                "production_line": r.line,
                "type": r.sensor_type,
                "value": r.value,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r.ts_ms / 1000))
                + f".{r.ts_ms % 1000:03d}Z",
            }
        ).encode()
        raw_bytes += len(payload)
        client.publish(f"manufacturing/sensors/{r.sensor_id}/data", payload, qos=1)
    assert done.wait(120), "baseline publishes not acknowledged"
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    client.disconnect()
    client.loop_stop()
    return {
        "readings": len(readings),
        "wall_s": wall,
        "cpu_s": cpu,
        "readings_per_s": len(readings) / wall,
        "bytes_per_reading": raw_bytes / len(readings),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=600_000)
    parser.add_argument("--baseline-readings", type=int, default=30_000)
    parser.add_argument("--core", type=int, default=0, help="CPU to pin this process (gateway + uplink) to")
    parser.add_argument("--scorer", choices=["forest", "thresholds"], default="forest")
    args = parser.parse_args()
    scorer = make_scorer(args.scorer)
    os.sched_setaffinity(0, {args.core})
    readings = make_readings(args.readings)
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_mosquitto(Path(tmp))
        try:
            pipeline = run_pipeline(readings, port, Path(tmp), scorer)
            baseline = run_baseline(readings[: args.baseline_readings], port)
        finally:
            broker.terminate()
            broker.wait(10)
    wire = bytes_per_reading(readings)
    ratio = pipeline["readings_per_s"] / baseline["readings_per_s"]
    iot_core_readings_per_s = min(IOT_CORE_BYTES_PER_S / wire, IOT_CORE_PUBLISHES_PER_S * 2000)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"cpu: pinned to core {args.core} of {os.cpu_count()}; python {sys.version.split()[0]}; scorer {args.scorer}")
    print("| path | readings | wall s | cpu s | readings/s | bytes/reading on the wire |")
    print("|---|---|---|---|---|---|")
    print(
        f"| gateway pipeline (score, alerts, spool fsync, QoS 1 publish, ack) | {pipeline['readings']:,} | "
        f"{pipeline['wall_s']:.2f} | {pipeline['cpu_s']:.2f} | {pipeline['readings_per_s']:,.0f} | {wire:.2f} |"
    )
    print(
        f"| baseline: original per-reading raw JSON publish, QoS 1 | {baseline['readings']:,} | "
        f"{baseline['wall_s']:.2f} | {baseline['cpu_s']:.2f} | {baseline['readings_per_s']:,.0f} | "
        f"{baseline['bytes_per_reading']:.1f} |"
    )
    print(f"ratio pipeline / baseline: {ratio:.1f}x")
    print(
        f"batches {pipeline['batches']:.0f}, publishes acknowledged {pipeline['published']:.0f}, "
        f"alert events {pipeline['alert_events']:.0f}"
    )
    print(
        f"one IoT Core connection (512 KiB/s, 100 publishes/s) carries about {iot_core_readings_per_s:,.0f} readings/s"
    )
    target = 100_000
    print(f"target >= {target:,} readings/s: {'met' if pipeline['readings_per_s'] >= target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
