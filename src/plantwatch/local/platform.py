"""Composition root of the local platform (``plantwatch up``).

broker (amqtt) <- gateways (simulator source, threshold scoring, floor alerts, SQLite spool, MQTT uplink)
broker -> bridge (MQTT subscriber) -> durable local stream (SQLite) -> stream processor -> DuckDB + archive
DuckDB -> HTTP API (FastAPI on uvicorn)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import uvicorn

from plantwatch.adapters.amqtt_broker import EmbeddedBroker
from plantwatch.adapters.archive_staging import RollingArchive
from plantwatch.adapters.clock import SystemClock
from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.adapters.mqtt import MqttAlertNotifier, MqttBridge, MqttEndpoint, MqttUplink
from plantwatch.adapters.object_store import LocalObjectStore
from plantwatch.adapters.simulator_source import SimulatorSource
from plantwatch.adapters.sqlite_spool import SqliteSpool, fresh_seq
from plantwatch.adapters.sqlite_stream import SqliteStream
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token, load_or_create_key
from plantwatch.api.ratelimit import RateLimiter
from plantwatch.cloud.stream_handler import StreamHandler, kinesis_event
from plantwatch.contract.legacy import LEGACY_TOPIC_FILTER, LegacyDefaults
from plantwatch.contract.topics import (
    ALERT_TOPIC_FILTER,
    BATCH_TOPIC_FILTER,
    SUMMARY_TOPIC_FILTER,
    floor_ack_topic,
    floor_alert_topic,
)
from plantwatch.domain.alerts import AlertEngine
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.local.drift import LocalDrift
from plantwatch.models.forest import ForestModel
from plantwatch.models.registry import ModelRegistry
from plantwatch.models.trainer import TrainConfig
from plantwatch.services.alert_ingest import AlertIngest
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.model_watch import ModelWatch, RegistryModelSource
from plantwatch.services.stream_processing import ProcessReport, StreamProcessor

log = logging.getLogger(__name__)
CONSUMER = "stream-processor"
STREAM_RETENTION_MS = 24 * 3600 * 1000


class PlatformOptions(msgspec.Struct, kw_only=True):
    """Everything ``plantwatch up`` takes."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    mqtt_port: int = 1883
    duration_s: float | None = None
    simulation: SimulationConfig = msgspec.field(default_factory=SimulationConfig)
    progress_every_s: float = 2.0
    api_rate_per_s: float = 50.0
    #: baseline models ``{plant}.{line}.pwf``; a line without one scores with thresholds and limits alone
    models_dir: Path = Path("models")
    #: the gateways' score-summary window (an hour on a real gateway; short here, so drift shows in minutes)
    summary_window_s: float = 60.0
    #: summaries per drift check (24 hourly ones = a day on a real plant)
    drift_window: int = 5


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _simulation(options: PlatformOptions, clock: SystemClock) -> SimulationConfig:
    """The simulation of this data dir: its anchor (start of the fault schedule) is kept across runs."""
    path = options.data_dir / "simulation.json"
    if path.exists():
        saved = msgspec.json.decode(path.read_bytes(), type=SimulationConfig)
        return msgspec.structs.replace(options.simulation, anchor_ms=saved.anchor_ms)
    config = msgspec.structs.replace(options.simulation, anchor_ms=clock.now_ms())
    path.write_bytes(msgspec.json.format(msgspec.json.encode(config)))
    return config


class _Worker:
    """A named background loop that calls ``step`` until stopped, logging (not dying on) failures."""

    def __init__(self, name: str, step: Callable[[], bool], idle_s: float = 0.2) -> None:
        self.name = name
        self.step = step
        self.idle_s = idle_s
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                busy = self.step()
                backoff = 0.5
            except Exception:
                log.exception("%s failed; retrying in %.1f s", self.name, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if not busy:
                self.wake.wait(self.idle_s)
                self.wake.clear()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        self.thread.join(timeout=10)


class LocalPlatform:
    """Builds and runs every part of the local platform in one process."""

    def __init__(self, options: PlatformOptions, *, out: Callable[[str], None] = print) -> None:
        self.options = options
        self.out = out
        self.clock = SystemClock()
        data = options.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.simulation = _simulation(options, self.clock)
        self.simulator = PlantSimulator(self.simulation)
        (data / "faults.json").write_text(
            json.dumps(
                [
                    msgspec.to_builtins(f)
                    for f in self.simulator.faults_between(self.simulation.anchor_ms, self.clock.now_ms() + 86_400_000)
                ],
                indent=1,
            )
        )
        self.endpoint = MqttEndpoint(host=options.host, port=options.mqtt_port)
        self.stream = SqliteStream(data / "stream.sqlite")
        self.store = DuckDBStore(data / "plantwatch.duckdb")
        self.archive = RollingArchive(
            FilesystemArchive(data / "archive", clock=self.clock), data / "archive-staging.log", clock=self.clock
        )
        self.totals = ProcessReport()
        # score summaries -> drift per line (in the cloud: the same handler, DynamoDB, the retrain Lambda)
        self.drift = LocalDrift(
            self.store,
            sink=self.store,
            archive=self.archive,
            clock=self.clock,
            window=options.drift_window,
            archive_dir=data / "archive",
        )
        self.processor = StreamProcessor(
            sink=self.store,
            archive=self.archive,
            clock=self.clock,
            legacy_defaults=LegacyDefaults(plant=self.simulation.plant),
            summaries=self.drift.ingest,
        )
        # the stream-processor Lambda's handler, fed Kinesis-shaped events from the local stream
        self.handler = StreamHandler(self.processor, on_report=self.totals.add)
        self.gateways: list[Gateway] = []
        self.uplinks: list[MqttUplink] = []
        self.spools: list[SqliteSpool] = []
        self.floors: list[MqttAlertNotifier] = []
        thresholds = ThresholdScorer(limits=SIMULATED_PLANT_LIMITS)
        # promoted models (plantwatch train --from-archive DATA_DIR/archive) are picked up from the registry
        registry = ModelRegistry(LocalObjectStore(data / "registry"))
        self.watches: dict[str, ModelWatch] = {}
        for line in self.simulator.lines:
            gateway_id = f"gw-{line}"
            scorer = self._scorer(line, thresholds)
            name = f"{self.simulation.plant}.{line}"
            self.watches[gateway_id] = ModelWatch(scorer, RegistryModelSource(registry, name))
            spool = SqliteSpool(data / "gateways" / f"{gateway_id}.spool.sqlite", first_seq=fresh_seq())
            uplink = MqttUplink(spool, self.endpoint, client_id=gateway_id)
            # floor alerts go straight to the local broker, whether or not the uplink is up
            floor = MqttAlertNotifier(
                self.endpoint,
                client_id=f"{gateway_id}-floor",
                topic=floor_alert_topic(gateway_id),
                ack_topic=floor_ack_topic(gateway_id),
            )
            alerts = AlertEngine(gateway_id=gateway_id, plant=self.simulation.plant)
            state = spool.alert_state()
            if state is not None:
                alerts.restore(state)
            self.spools.append(spool)
            self.uplinks.append(uplink)
            self.floors.append(floor)
            self.gateways.append(
                Gateway(
                    config=GatewayConfig(
                        gateway_id=gateway_id,
                        plant=self.simulation.plant,
                        summary_window_ms=int(options.summary_window_s * 1000),
                    ),
                    sources=[SimulatorSource(self.simulator, line)],
                    scorer=scorer,
                    model=scorer.model_ref if isinstance(scorer, AnomalyDetector) else THRESHOLD_MODEL,
                    spool=spool,
                    alerts=alerts,
                    notifiers=[floor],
                    on_spooled=uplink.nudge,
                )
            )
        self.bridge = MqttBridge(
            self._deliver,
            self.endpoint,
            client_id="plantwatch-bridge",
            topics=[BATCH_TOPIC_FILTER, LEGACY_TOPIC_FILTER, ALERT_TOPIC_FILTER, SUMMARY_TOPIC_FILTER],
        )
        # the gateways' alert topic (in the cloud: a topic rule into SNS), stored for the API and dashboard
        self.alert_ingest = AlertIngest(store=self.store, sink=self.store, archive=self.archive, clock=self.clock)
        self.consumer = _Worker("stream-processor", self._consume)
        self.gateway_worker = _Worker("gateways", self._gateways_step, idle_s=0.1)
        self.model_worker = _Worker("model-watch", self._poll_models, idle_s=5.0)
        self.broker = EmbeddedBroker(host=options.host, port=options.mqtt_port)
        # API security (api branch): tokens signed with the data dir's key, a local rate limit
        self.token_key = load_or_create_key(data)
        self.alerts = DuckDBAlerts(self.store)
        self.app = create_app(
            DuckDBQueries(self.store),
            auth=LocalTokens(self.token_key),
            alerts=self.alerts,
            status=self.status,
            rate_limit=RateLimiter(rate=options.api_rate_per_s, burst=int(2 * options.api_rate_per_s)),
            drift=self.drift.store,
            drift_config=self.drift.config,
        )
        self._last_trim_ms = 0

    # --- loops -------------------------------------------------------------------------------------------
    def _deliver(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/alerts") and topic.startswith("plantwatch/gateways/"):
            self.alert_ingest.handle(topic, payload)  # stored before the bridge acknowledges it
            return
        self.stream.append(topic, payload, self.clock.now_ms())
        self.consumer.wake.set()

    def _consume(self) -> bool:
        """Run the stream-processor handler over the next records; commit up to the first one it hands back."""
        records = self.stream.read(CONSUMER, 500)
        if not records:
            self.archive.roll_if_due()
            return False
        response = self.handler.handle(kinesis_event(records))
        retry = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        done = next((i for i, r in enumerate(records) if r.record_id in retry), len(records))
        if done:
            self.stream.commit(CONSUMER, records[done - 1].record_id)
        if retry:
            raise RuntimeError(f"{len(records) - done} stream records were not fully written; retrying them")
        now = self.clock.now_ms()
        if now - self._last_trim_ms > 60_000:
            self.stream.trim(CONSUMER, now - STREAM_RETENTION_MS)
            self._last_trim_ms = now
        return True

    def _scorer(self, line: str, thresholds: ThresholdScorer) -> AnomalyDetector:
        """The line's forest decision with its baseline model, or with none (thresholds and limits alone) until the
        registry has a champion for the line: either way its model watch swaps in what the registry promotes."""
        path = self.options.models_dir / f"{self.simulation.plant}.{line}.pwf"
        model = ForestModel.load(path) if path.exists() else None
        if model is None:
            log.warning("no model at %s: %s scores with thresholds and limits until one is promoted", path, line)
        elif model.feature_spec is None:
            log.warning("model %s records no feature specification: %s scores with thresholds only", path, line)
            model = None
        # without a baseline, champions trained with plantwatch train's default features can be swapped in
        spec = model.feature_spec if model is not None and model.feature_spec else TrainConfig().spec
        return AnomalyDetector(spec=spec, thresholds=thresholds, model=model)

    def _poll_models(self) -> bool:
        """Load and verify newly promoted models off the scoring path; they are swapped in between batches."""
        for watch in self.watches.values():
            watch.poll()
        return False

    def _gateways_step(self) -> bool:
        now = self.clock.now_ms()
        for gateway in self.gateways:
            watch = self.watches.get(gateway.config.gateway_id)
            if watch is not None:
                watch.apply(gateway)
            gateway.step(now)
        return False

    def status(self) -> dict[str, Any]:
        """Live figures for the health endpoint and the progress line."""
        return {
            "stream_backlog": self.stream.backlog(CONSUMER),
            "spooled_batches": sum(s.depth() for s in self.spools),
            "gateways_connected": sum(u.connected for u in self.uplinks),
            "readings_scored": sum(g.counters.readings for g in self.gateways),
            "alerts_active": sum(len(g.alerts.active()) for g in self.gateways),
            "readings_written": self.totals.written,
            "duplicate_batches": self.totals.duplicate_batches,
            "quarantined": self.totals.quarantined,
        }

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, report progress until ``stop`` is set or the duration ends, then stop cleanly."""
        opts = self.options
        for name, port in (("MQTT", opts.mqtt_port), ("HTTP", opts.port)):
            if not _port_free(opts.host, port):
                flag = "--mqtt-port" if name == "MQTT" else "--port"
                raise SystemExit(f"plantwatch: {name} port {port} on {opts.host} is in use; choose another with {flag}")
        await self.broker.start()
        server = uvicorn.Server(
            uvicorn.Config(self.app, host=opts.host, port=opts.port, log_level="warning", lifespan="off")
        )
        server_task = asyncio.create_task(server.serve())
        try:
            self.bridge.start()
            await asyncio.to_thread(self.bridge.wait_subscribed, 10)
            self.consumer.thread.start()
            for uplink in self.uplinks:
                uplink.start()
            for floor in self.floors:
                floor.start()
            self.gateway_worker.thread.start()
            self.model_worker.thread.start()
            while not server.started:
                if server_task.done():
                    raise SystemExit("plantwatch: the HTTP API failed to start")
                await asyncio.sleep(0.05)
            self.out(
                f"plantwatch is up: API http://{opts.host}:{opts.port} (OpenAPI /openapi.json, docs /docs), "
                f"MQTT {opts.host}:{opts.mqtt_port}, data in {opts.data_dir}"
            )
            token = create_token(self.token_key, plants=[self.simulation.plant], subject="demo")
            self.out(f"API token for {self.simulation.plant} (send as 'Authorization: Bearer <token>'): {token}")
            self.out(f"dashboard: http://{opts.host}:{opts.port}/#token={token}")
            await self._report_until(stop)
        finally:
            await asyncio.to_thread(self._shutdown)
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await server_task
            await self.broker.stop()
            self.archive.close()
            self.store.close()
            self.stream.close()
            for spool in self.spools:
                spool.close()
            self.out("plantwatch stopped cleanly")

    async def _report_until(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        last_t, last_n = started, 0
        deadline = started + self.options.duration_s if self.options.duration_s is not None else None
        while not stop.is_set():
            timeout = self.options.progress_every_s
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=timeout)
            now = time.monotonic()
            s = self.status()
            # readings arrive in the store in 5 s batches; the gateways' scoring rate is the steady figure
            rate = (s["readings_scored"] - last_n) / max(now - last_t, 1e-6)
            last_t, last_n = now, s["readings_scored"]
            anomalies = sum(g.counters.anomalies for g in self.gateways)
            self.out(
                f"{rate:7.1f} readings/s scored | {s['readings_written']} stored | {anomalies} anomalies | "
                f"{s['quarantined']} quarantined | backlog {s['stream_backlog']} records, "
                f"{s['spooled_batches']} spooled batches"
            )
            if deadline is not None and now >= deadline:
                return

    def _shutdown(self) -> None:
        """Stop in data-flow order, so what was read is spooled, published, streamed and stored if it can be."""
        self.model_worker.stop()
        self.gateway_worker.stop()
        for gateway in self.gateways:
            gateway.stop()
        for uplink in self.uplinks:
            uplink.drain(timeout_s=5)
            uplink.stop()
        for floor in self.floors:
            floor.stop()
        # let the bridge take what the broker still delivers, then drain the stream into the store
        deadline = time.monotonic() + 5
        last = -1
        while time.monotonic() < deadline and self.bridge.received != last:
            last = self.bridge.received
            time.sleep(0.3)
        self.bridge.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.stream.backlog(CONSUMER):
            time.sleep(0.1)
        self.consumer.stop()
