"""Composition root of one gateway: picks sources, spool, uplink transport and floor notifiers from its config."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantwatch.contract.batch import ModelRef
from plantwatch.contract.topics import floor_ack_topic, floor_alert_topic
from plantwatch.domain.alerts import AlertEngine
from plantwatch.domain.decision import AnomalyDetector, ModelMismatchError
from plantwatch.domain.simulator import PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import THRESHOLD_MODEL, Band, ThresholdScorer
from plantwatch.edge.config import (
    GatewayFile,
    ModbusSourceConfig,
    MqttSensorsSourceConfig,
    OpcUaSourceConfig,
    SimulatorSourceConfig,
    SourceConfig,
)
from plantwatch.models import ForestModel
from plantwatch.ports import AlertNotifier, Scorer, SensorSource, Transport
from plantwatch.services.gateway import Gateway, GatewayConfig
from plantwatch.services.model_swap import ModelLoader, ModelSwapper
from plantwatch.services.uplink import Uplink

log = logging.getLogger(__name__)


def build_source(config: SourceConfig, *, plant: str, gateway_id: str, index: int) -> SensorSource:
    """The adapter for one configured source (imports only the driver that source needs)."""
    if isinstance(config, ModbusSourceConfig):
        from plantwatch.adapters.modbus import ModbusSource
        from plantwatch.adapters.threaded_source import ThreadedSource

        # Modbus reads block (up to timeout_s per unanswered device): poll on a thread of its own
        return ThreadedSource(ModbusSource(config, plant=plant), name=f"modbus-{config.host}:{config.port}")
    if isinstance(config, OpcUaSourceConfig):
        from plantwatch.adapters.opcua import OpcUaSource

        return OpcUaSource(config, plant=plant)
    if isinstance(config, MqttSensorsSourceConfig):
        from plantwatch.adapters.mqtt_sensors import MqttSensorsSource

        return MqttSensorsSource(config, plant=plant, client_id=f"{gateway_id}-sensors-{index}")
    if isinstance(config, SimulatorSourceConfig):
        from plantwatch.adapters.simulator_source import SimulatorSource

        simulator = PlantSimulator(
            SimulationConfig(
                plant=plant,
                lines=config.lines,
                assets_per_line=config.assets_per_line,
                seed=config.seed,
                sample_period_ms=config.sample_period_ms,
                anchor_ms=config.anchor_ms,
                fault_after_s=config.fault_after_s,
                fault_every_s=config.fault_every_s,
                fault_duration_s=config.fault_duration_s,
            )
        )
        return SimulatorSource(simulator, config.line)
    raise TypeError(f"unknown source {config!r}")


def build_scorer(config: GatewayFile) -> tuple[ThresholdScorer, ModelRef]:
    """The scorer without a model: the original thresholds plus the configured per-sensor-type limits."""
    limits = {kind: Band(low=b.get("low"), high=b.get("high")) for kind, b in config.limits.items()}
    return ThresholdScorer(limits=limits), THRESHOLD_MODEL


def forest_loader(
    config: GatewayFile,
    thresholds: ThresholdScorer,
    current: Callable[[], Scorer],
    *,
    expected_sha256: Callable[[], str | None] = lambda: None,
) -> ModelLoader:
    """Loads a ForestModel artifact into the forest decision, for :class:`ModelSwapper`.

    The model must pass its integrity check (and match ``expected_sha256()``, e.g. the SHA-256 the deployment
    names) and belong to the gateway's plant (models are named ``<plant>.<line>``); else ValueError with the
    reason, and the current scorer stays. While a forest scores, a model with the same feature specification
    continues its feature windows; the configured thresholds and limits keep applying to every reading.
    """

    def load(path: Path) -> tuple[Scorer, ModelRef]:
        model = ForestModel.load(path, sha256=expected_sha256())
        if not model.info.name.startswith(f"{config.plant}."):
            raise ValueError(
                f"model {model.info.name} {model.info.version} is not a model of plant {config.plant!r} "
                f"(its models are named {config.plant}.<line>)"
            )
        scorer = current()
        if isinstance(scorer, AnomalyDetector):
            return scorer.with_model(model), model.ref
        spec = model.feature_spec
        if spec is None:
            raise ModelMismatchError(f"model {model.info.name} {model.info.version} records no feature specification")
        return AnomalyDetector(spec=spec, thresholds=thresholds, model=model), model.ref

    return load


def build_transport(config: GatewayFile, *, ipc_client: Any = None) -> Transport | None:
    """The uplink transport the config names (None: spool only, nothing leaves)."""
    up = config.uplink
    if up.transport == "none":
        return None
    if up.transport == "greengrass":
        from plantwatch.adapters.greengrass_ipc import GreengrassTransport

        return GreengrassTransport(ipc_client)
    if up.transport == "iot-mtls":
        from plantwatch.adapters.aws_iot import AwsIotTransport

        if not (up.ca_file and up.cert_file and up.key_file):
            raise ValueError("uplink transport iot-mtls needs ca_file, cert_file and key_file")
        return AwsIotTransport(
            host=up.host,
            port=up.port,
            client_id=config.gateway_id,
            ca_file=up.ca_file,
            cert_file=up.cert_file,
            key_file=up.key_file,
        )
    from plantwatch.adapters.mqtt import MqttEndpoint, PahoTransport

    endpoint = MqttEndpoint(
        host=up.host,
        port=up.port,
        ca_file=up.ca_file,
        cert_file=up.cert_file,
        key_file=up.key_file,
        mqtt_version=up.mqtt_version,
    )
    return PahoTransport(endpoint, client_id=config.gateway_id, max_inflight=up.inflight)


def build_notifiers(config: GatewayFile, *, ipc_client: Any = None) -> list[AlertNotifier]:
    """Floor alert channels: the local broker or Greengrass local pub/sub, and an optional webhook."""
    al = config.alerts
    out: list[AlertNotifier] = []
    topic, ack = floor_alert_topic(config.gateway_id), floor_ack_topic(config.gateway_id)
    if al.floor == "mqtt":
        from plantwatch.adapters.mqtt import MqttAlertNotifier, MqttEndpoint

        out.append(
            MqttAlertNotifier(
                MqttEndpoint(host=al.floor_host, port=al.floor_port),
                client_id=f"{config.gateway_id}-floor",
                topic=topic,
                ack_topic=ack,
            )
        )
    elif al.floor == "greengrass":
        from plantwatch.adapters.greengrass_ipc import GreengrassAlertNotifier

        out.append(GreengrassAlertNotifier(ipc_client, topic=topic, ack_topic=ack))
    if al.webhook_url:
        from plantwatch.adapters.webhook import WebhookNotifier

        out.append(WebhookNotifier(al.webhook_url, retries=al.webhook_retries))
    return out


@dataclass
class GatewayRuntime:
    """A wired gateway with everything that must be started and stopped around it."""

    config: GatewayFile
    gateway: Gateway
    spool: Any
    uplink: Uplink | None
    sources: list[SensorSource]
    notifiers: list[AlertNotifier]
    swapper: ModelSwapper | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        """Start sources, floor notifiers and the uplink."""
        for part in (*self.sources, *self.notifiers):
            starter = getattr(part, "start", None)
            if starter is not None:
                starter()
        if self.uplink is not None:
            self.uplink.start()

    def stop(self, *, drain_s: float = 5.0) -> None:
        """Seal what is pending, give the uplink ``drain_s`` to empty the spool, then close everything."""
        self.gateway.stop()
        if self.uplink is not None:
            self.uplink.drain(drain_s)
            self.uplink.stop()
        for part in (*self.sources, *self.notifiers):
            closer = getattr(part, "close", None) or getattr(part, "stop", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()
        for close in self.closers:
            close()
        self.spool.close()


def build_gateway(
    config: GatewayFile,
    *,
    ipc_client: Any = None,
    scorer: Scorer | None = None,
    model: ModelRef | None = None,
    extra_notifiers: Sequence[AlertNotifier] = (),
    model_loader: ModelLoader | None = None,
    model_sha256: Callable[[], str | None] = lambda: None,
) -> GatewayRuntime:
    """Wire one gateway from its configuration (the scorer can be injected).

    With the config's ``model_path``, the Isolation Forest artifact there is loaded before the first reading is
    scored and watched for changes (:func:`forest_loader`, or ``model_loader``); ``model_sha256`` gives the
    SHA-256 the artifact must have, if known. Without a usable model the gateway scores with thresholds and
    limits, and says why in its log.
    """
    from plantwatch.adapters.sqlite_spool import SqliteSpool, fresh_seq

    path = config.spool_path()
    spool = SqliteSpool(
        Path(path),
        budget_bytes=config.spool.budget_bytes,
        when_full=config.spool.when_full.value,
        first_seq=fresh_seq(),
    )
    sources = [
        build_source(s, plant=config.plant, gateway_id=config.gateway_id, index=i) for i, s in enumerate(config.sources)
    ]
    thresholds, threshold_model = build_scorer(config)
    if scorer is None or model is None:
        scorer, model = thresholds, threshold_model
    transport = build_transport(config, ipc_client=ipc_client)
    uplink = (
        Uplink(
            spool,
            transport,
            name=f"uplink-{config.gateway_id}",
            inflight=config.uplink.inflight,
            max_bytes_per_s=config.uplink.max_bytes_per_s,
            max_publishes_per_s=config.uplink.max_publishes_per_s,
        )
        if transport is not None
        else None
    )
    notifiers = [*build_notifiers(config, ipc_client=ipc_client), *extra_notifiers]
    alerts = AlertEngine(
        gateway_id=config.gateway_id,
        plant=config.plant,
        raise_after=config.alerts.raise_after,
        clear_after=config.alerts.clear_after,
    )
    state = spool.alert_state()
    if state is not None:
        alerts.restore(state)
        log.info("restored %d active alerts", len(alerts.active()))
    gateway = Gateway(
        config=GatewayConfig(
            gateway_id=config.gateway_id,
            plant=config.plant,
            batch_interval_ms=config.batch_interval_ms,
            max_readings=config.max_readings,
            summary_window_ms=config.summary_window_ms,
        ),
        sources=sources,
        scorer=scorer,
        model=model,
        spool=spool,
        alerts=alerts,
        notifiers=notifiers,
        on_spooled=uplink.nudge if uplink is not None else None,
    )
    swapper = None
    if config.model_path:
        loader = model_loader or forest_loader(config, thresholds, lambda: gateway.scorer, expected_sha256=model_sha256)
        swapper = ModelSwapper(gateway, Path(config.model_path), loader)
        if not swapper.check() and swapper.loaded_digest is None:
            log.warning(
                "no usable model at %s: scoring with thresholds and limits until one is there", config.model_path
            )
    return GatewayRuntime(
        config=config,
        gateway=gateway,
        spool=spool,
        uplink=uplink,
        sources=sources,
        notifiers=notifiers,
        swapper=swapper,
    )
