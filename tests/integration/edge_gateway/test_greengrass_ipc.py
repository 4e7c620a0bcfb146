"""The Greengrass IPC adapters and component entrypoint, against a fake nucleus client.

``GreengrassCoreIPCClientV2()`` needs a nucleus socket, absent here. The fake enforces what the nucleus and
IoT Core document: the recipe's accessControl (operations and topics under the thing name, else
UnauthorizedError), the 128 KB IoT Core payload limit, and futures that resolve when the nucleus answers.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import yaml
from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    ConfigurationUpdateEvent,
    ConfigurationUpdateEvents,
    GetConfigurationResponse,
    ResourceNotFoundError,
    SubscriptionResponseMessage,
    UnauthorizedError,
    ValidateConfigurationUpdateEvent,
    ValidateConfigurationUpdateEvents,
)
from paho.mqtt.client import topic_matches_sub

from plantwatch.adapters.greengrass_ipc import ConfigurationValidator, GreengrassAlertNotifier, GreengrassTransport
from plantwatch.adapters.sqlite_spool import SqliteSpool
from plantwatch.contract.decode import decode_payload
from plantwatch.domain.alerts import decode_event
from plantwatch.edge import greengrass
from plantwatch.models import artifact_sha256

from .servers import wait_for

ROOT = Path(__file__).resolve().parents[3]
THING = "gw-line-7"


def recipe_access() -> dict[str, list[str]]:
    """operation -> allowed resources, from the gateway recipe's accessControl."""
    recipe = yaml.safe_load((ROOT / "edge/components/com.plantwatch.Gateway/recipe.yaml").read_text())
    allowed: dict[str, list[str]] = {}
    for policies in recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"].values():
        for policy in policies.values():
            for op in policy["operations"]:
                allowed.setdefault(op, []).extend(policy["resources"])
    return allowed


def authorized(operation: str, resource: str, topic: str) -> bool:
    """The nucleus's matching: MQTT wildcards (+, #) for IoT Core topics, `*` (any characters) for local ones.
    Recipe variables are not interpolated (the nucleus does so only with interpolateComponentConfiguration on)."""
    if operation.endswith("IoTCore"):
        return topic_matches_sub(resource, topic)
    return fnmatch.fnmatchcase(topic, resource.replace("[", "[[]"))


class FakeNucleus:
    """A GreengrassCoreIPCClientV2 stand-in that enforces the recipe's authorization and IoT Core's limits."""

    def __init__(
        self,
        configuration: dict[str, Any],
        *,
        fail_publishes: int = 0,
        model_configuration: dict[str, Any] | None = None,
    ) -> None:
        self.allowed = recipe_access()
        self.configuration = configuration
        self.model_configuration = model_configuration  # com.plantwatch.Model's, if deployed
        self.closed = False
        self.fail_publishes = fail_publishes
        self.iot_core: list[tuple[str, bytes]] = []
        self.local: list[tuple[str, bytes]] = []
        self.reports: list[Any] = []
        self.subscriptions: dict[str, Any] = {}
        self.validator: Any = None

    def _authorize(self, operation: str, topic: str) -> None:
        if self.closed:
            raise RuntimeError("the IPC connection is closed")  # what a closed GreengrassCoreIPCClientV2 does
        if not any(authorized(operation, r, topic) for r in self.allowed.get(operation, [])):
            raise UnauthorizedError(message=f"{operation} on {topic} is not authorized")

    def close(self) -> None:
        self.closed = True

    def publish_to_iot_core_async(self, *, topic_name: str, qos: str, payload: bytes) -> Future[Any]:
        future: Future[Any] = Future()
        self._authorize("aws.greengrass#PublishToIoTCore", topic_name)
        assert qos == "1"
        if len(payload) > 128 * 1000:
            future.set_exception(RuntimeError("PAYLOAD_LIMIT_EXCEEDED"))
        elif self.fail_publishes > 0:
            self.fail_publishes -= 1
            future.set_exception(RuntimeError("nucleus spooler full"))
        else:
            self.iot_core.append((topic_name, payload))
            threading.Timer(0.001, future.set_result, args=(object(),)).start()
        return future

    def publish_to_topic_async(self, *, topic: str, publish_message: Any) -> Future[Any]:
        self._authorize("aws.greengrass#PublishToTopic", topic)
        self.local.append((topic, publish_message.binary_message.message))
        future: Future[Any] = Future()
        future.set_result(object())
        return future

    def subscribe_to_topic(self, *, topic: str, on_stream_event: Any, on_stream_error: Any) -> tuple[Any, Any]:
        self._authorize("aws.greengrass#SubscribeToTopic", topic)
        self.subscriptions[topic] = on_stream_event
        return object(), object()

    def get_configuration(self, *, key_path: list[str], component_name: str | None = None) -> GetConfigurationResponse:
        if self.closed:
            raise RuntimeError("the IPC connection is closed")
        component = component_name or "com.plantwatch.Gateway"
        value: Any = self.configuration if component == "com.plantwatch.Gateway" else self.model_configuration
        for key in key_path:
            if not isinstance(value, dict) or key not in value:
                raise ResourceNotFoundError(message=f"{component} has no configuration at {key_path}")
            value = value[key]
        if not isinstance(value, dict):  # as the nucleus answers a single value: {its key: the value}
            value = {key_path[-1]: value}
        return GetConfigurationResponse(component_name=component, value=value)

    def subscribe_to_configuration_update(
        self, *, key_path: list[str], on_stream_event: Any, on_stream_error: Any
    ) -> Any:
        self.on_update = on_stream_event
        return object(), object()

    def update_configuration(self, gateway: dict[str, Any]) -> None:
        """A deployment changed the configuration (after validation accepted it)."""
        self.configuration = {"gateway": gateway}
        self.on_update(
            ConfigurationUpdateEvents(configuration_update_event=ConfigurationUpdateEvent(key_path=["gateway"]))
        )

    def subscribe_to_validate_configuration_updates(self, *, on_stream_event: Any, on_stream_error: Any) -> Any:
        self.validator = on_stream_event
        return object(), object()

    def send_configuration_validity_report(self, *, configuration_validity_report: Any) -> None:
        self.reports.append(configuration_validity_report)


def test_transport_publishes_to_iot_core_and_reports_failures() -> None:
    nucleus = FakeNucleus({}, fail_publishes=1)
    transport = GreengrassTransport(nucleus)
    transport.start(lambda: None)
    results: list[bool] = []
    done = threading.Event()

    def record(ok: bool) -> None:
        results.append(ok)
        if len(results) == 2:
            done.set()

    transport.publish(f"plantwatch/gateways/{THING}/batches", b"x", record)
    transport.publish(f"plantwatch/gateways/{THING}/batches", b"y", record)
    assert done.wait(5)
    assert sorted(results) == [False, True]  # the failed one stays spooled and is resent by the uplink
    # a topic outside the gateway topics is refused by the recipe's accessControl: reported as not acknowledged
    # (another gateway's topics pass the local policy, which can't name the thing, and IoT Core's policy refuses
    # them: tests/infra and the mosquitto ACL tests check that side)
    refused: list[bool] = []
    transport.publish(f"plantwatch/gateways/{THING}/commands", b"z", refused.append)
    transport.publish("manufacturing/sensors/temp-001/data", b"z", refused.append)
    assert refused == [False, False]


def test_floor_notifier_uses_local_pubsub_and_takes_acknowledgements() -> None:
    nucleus = FakeNucleus({})
    topic, ack = f"plantwatch/floor/{THING}/alerts", f"plantwatch/floor/{THING}/alerts/ack"
    notifier = GreengrassAlertNotifier(nucleus, topic=topic, ack_topic=ack)
    notifier.start()
    notifier.notify([b'{"e":1}'])
    assert nucleus.local == [(topic, b'{"e":1}')]
    nucleus.subscriptions[ack](
        SubscriptionResponseMessage(binary_message=BinaryMessage(message=b'{"alert_id":"a1","by":"op"}'))
    )
    assert notifier.take_acks() == [b'{"alert_id":"a1","by":"op"}']
    with pytest.raises(UnauthorizedError):
        GreengrassAlertNotifier(nucleus, topic=topic, ack_topic=f"plantwatch/floor/{THING}/commands").start()
    # stopping the notifier closes its subscription, never the client the component shares
    notifier.stop()
    assert not nucleus.closed


def test_configuration_updates_are_validated_before_they_are_accepted() -> None:
    nucleus = FakeNucleus({})
    validator = ConfigurationValidator(
        nucleus,
        lambda c: greengrass.config_problem(c, thing_name=THING, work_dir="/tmp/w"),
    )
    validator.start()

    def propose(configuration: dict[str, Any]) -> Any:
        nucleus.validator(
            ValidateConfigurationUpdateEvents(
                validate_configuration_update_event=ValidateConfigurationUpdateEvent(
                    configuration=configuration, deployment_id="d-1"
                )
            )
        )
        return nucleus.reports[-1]

    good = {"gateway": {"plant": "plant-1", "sources": [{"kind": "simulator"}]}}
    assert propose(good).status == "ACCEPTED"
    bad_source = {"gateway": {"plant": "plant-1", "sources": [{"kind": "modbus", "host": "x"}]}}
    report = propose(bad_source)
    assert report.status == "REJECTED"
    assert "line" in report.message  # says what is missing
    other_thing = {"gateway": {"gateway_id": "gw-other", "plant": "plant-1", "sources": []}}
    assert "thing name" in propose(other_thing).message
    assert report.deployment_id == "d-1"


def test_component_main_runs_the_gateway_through_ipc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_IOT_THING_NAME", THING)
    monkeypatch.setenv("PLANTWATCH_WORK_DIR", str(tmp_path))
    recipe = yaml.safe_load((ROOT / "edge/components/com.plantwatch.Gateway/recipe.yaml").read_text())
    gateway = dict(recipe["ComponentConfiguration"]["DefaultConfiguration"]["gateway"])
    gateway["sources"] = [{"kind": "simulator", "sample_period_ms": 50}]
    gateway["batch_interval_ms"] = 100
    gateway["limits"] = {"temperature": {"high": 0.0}}  # every temperature reading is anomalous: alerts fire
    nucleus = FakeNucleus({"gateway": gateway})
    stop = threading.Event()
    thread = threading.Thread(target=greengrass.main, kwargs={"client": nucleus, "stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(nucleus.iot_core) >= 3 and nucleus.local, 20, "batches and a floor alert via IPC")
        # WHEN a deployment changes the configuration, THEN the gateway is rebuilt with it, spool carried over
        nucleus.update_configuration({**gateway, "plant": "plant-2"})

        def plant_2() -> bool:
            batches = [decode_payload(p, now_ms=time.time_ns() // 1_000_000).batch for t, p in list(nucleus.iot_core)]
            return any(b is not None and b.plant == "plant-2" for b in batches)

        wait_for(plant_2, 20, "batches scored under the new configuration")
    finally:
        stop.set()
        thread.join(20)
    seqs = [
        decode_payload(p, now_ms=time.time_ns() // 1_000_000).batch.seq  # type: ignore[union-attr]
        for t, p in nucleus.iot_core
        if t.endswith("/batches")
    ]
    spool = SqliteSpool(tmp_path / "spool.sqlite")
    first = spool.first_seq()
    spool.close()
    assert first > 1  # a new spool numbers from the wall clock (sqlite_spool.fresh_seq), not from 1
    assert sorted(set(seqs)) == list(range(first, max(seqs) + 1))  # one sequence across the rebuild, no gaps
    batch_topics = {t for t, _ in nucleus.iot_core if t.endswith("/batches")}
    assert batch_topics == {f"plantwatch/gateways/{THING}/batches"}
    first = next(p for t, p in nucleus.iot_core if t.endswith("/batches"))
    decoded = decode_payload(first, now_ms=time.time_ns() // 1_000_000)
    assert decoded.batch is not None
    assert decoded.batch.gateway_id == THING
    raised = [decode_event(p) for _, p in nucleus.local]
    assert raised[0].event == "raised"
    assert (tmp_path / "spool.sqlite").exists()


def _run_component(nucleus: FakeNucleus, until: Any, what: str) -> list[Any]:
    """Run the component's main against ``nucleus`` until ``until(batches)`` holds; the decoded batches."""

    def batches() -> list[Any]:
        now = time.time_ns() // 1_000_000
        decoded = [decode_payload(p, now_ms=now).batch for t, p in list(nucleus.iot_core) if t.endswith("/batches")]
        return [b for b in decoded if b is not None]

    stop = threading.Event()
    thread = threading.Thread(target=greengrass.main, kwargs={"client": nucleus, "stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: until(batches()), 30, what)
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    return batches()


def _deployed_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The model component's artifact directory, as the nucleus names it in PLANTWATCH_MODEL_DIR."""
    monkeypatch.setenv("AWS_IOT_THING_NAME", THING)
    monkeypatch.setenv("PLANTWATCH_WORK_DIR", str(tmp_path / "work"))
    artifacts = tmp_path / "artifacts" / "com.plantwatch.Model" / "1.0.3"
    artifacts.mkdir(parents=True)
    shutil.copy2(ROOT / "models" / "plant-1.line-1.pwf", artifacts / "model.pwf")
    monkeypatch.setenv("PLANTWATCH_MODEL_DIR", str(artifacts))
    return artifacts / "model.pwf"


def _recipe_gateway() -> dict[str, Any]:
    """The recipe's default gateway configuration (plant-1, simulated line-1), sped up for a test."""
    recipe = yaml.safe_load((ROOT / "edge/components/com.plantwatch.Gateway/recipe.yaml").read_text())
    gateway = dict(recipe["ComponentConfiguration"]["DefaultConfiguration"]["gateway"])
    gateway["batch_interval_ms"] = 100
    return gateway


def _forest_scored(batch: Any) -> bool:
    """Readings inside every threshold band (no reason) with a score above 0: only the forest gives those."""
    return any(r.score > 0 and not r.reasons for r in batch.readings)


def test_the_component_scores_with_the_deployed_model_across_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the model component deployed with line-1's baseline and its SHA-256 in its configuration
    model = _deployed_model(tmp_path, monkeypatch)
    gateway = _recipe_gateway()
    nucleus = FakeNucleus({"gateway": gateway}, model_configuration={"sha256": artifact_sha256(model)})

    at_update: list[int] = []

    def rebuilt_and_forest_scored(batches: list[Any]) -> bool:
        if len(batches) >= 3 and not at_update:
            at_update.append(len(batches))
            nucleus.update_configuration({**gateway, "batch_interval_ms": 150})  # a deployment: rebuild
        after = batches[at_update[0] :] if at_update else []
        return len(after) >= 4 and any(map(_forest_scored, after))

    # WHEN the component runs, and a configuration update rebuilds the gateway midway
    batches = _run_component(nucleus, rebuilt_and_forest_scored, "forest-scored batches after a rebuild")
    # THEN every batch names the model and the forest scores, also after the rebuild, which needed the IPC
    # connection still open (the fake refuses calls on a closed one) and continued the sequence
    assert {(b.model.name, b.model.version) for b in batches} == {("plant-1.line-1", "baseline")}
    assert nucleus.closed, "main closes the connection once, when it stops"
    seqs = [b.seq for b in batches]
    spool = SqliteSpool(tmp_path / "work" / "spool.sqlite")
    first = spool.first_seq()
    spool.close()
    assert sorted(seqs) == list(range(first, max(seqs) + 1))


def test_a_model_that_is_not_the_deployed_one_is_refused_and_thresholds_keep_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an artifact whose SHA-256 is not the one the model component's configuration names
    _deployed_model(tmp_path, monkeypatch)
    nucleus = FakeNucleus({"gateway": _recipe_gateway()}, model_configuration={"sha256": "0" * 64})
    # WHEN the component runs
    with caplog.at_level(logging.ERROR, logger="plantwatch.services.model_swap"):
        batches = _run_component(nucleus, lambda b: len(b) >= 5, "batches")
    # THEN the model is refused with the reason, and the original thresholds score every reading
    assert {b.model.name for b in batches} == {"original-thresholds"}
    assert not any(map(_forest_scored, batches))
    assert any("refused" in r.getMessage() and "0" * 64 in r.getMessage() for r in caplog.records)
