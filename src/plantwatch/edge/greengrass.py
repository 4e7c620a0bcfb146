"""Composition root inside Greengrass: configuration from IPC (validated before accepted), then the gateway."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from plantwatch.edge.bootstrap import build_gateway
from plantwatch.edge.build import MODEL, MODEL_FILE
from plantwatch.edge.config import ConfigError, GatewayFile, parse_config
from plantwatch.edge.run import run_gateway
from plantwatch.services.model_swap import ModelLoader

log = logging.getLogger(__name__)


def model_sha256(client: Any) -> str | None:
    """The SHA-256 the deployed model component names for its artifact (its ``sha256`` configuration), or None
    when it names none (e.g. a model component built by hand) or the nucleus can't say."""
    try:
        value = client.get_configuration(component_name=MODEL, key_path=["sha256"]).value
    except Exception as exc:  # the nucleus answers ResourceNotFoundError when the key is absent
        log.info("the model component names no SHA-256 (%s): the artifact's own integrity check applies", exc)
        return None
    if isinstance(value, dict):  # the nucleus answers a single value as {key: value}
        value = value.get("sha256")
    return value if isinstance(value, str) and value else None


def gateway_config(
    document: dict[str, Any], *, thing_name: str, work_dir: str, model_dir: str | None = None
) -> GatewayFile:
    """The component's ``gateway`` configuration: thing name as gateway id, work dir for data, model component."""
    defaults: dict[str, Any] = {"gateway_id": thing_name, "data_dir": work_dir}
    if model_dir:
        defaults["model_path"] = f"{model_dir}/{MODEL_FILE}"
    merged = {**defaults, **document}
    if merged["gateway_id"] != thing_name:
        raise ConfigError(f"gateway_id must be the thing name {thing_name!r}: IoT policies confine it to its topics")
    return parse_config(merged)


def config_problem(configuration: dict[str, Any], *, thing_name: str, work_dir: str) -> str | None:
    """Why a proposed component configuration can't be used, or None (for validate-configuration events)."""
    try:
        gateway_config(configuration.get("gateway", {}), thing_name=thing_name, work_dir=work_dir)
    except (ConfigError, TypeError) as exc:
        return str(exc)
    return None


def main(client: Any = None, stop: threading.Event | None = None, model_loader: ModelLoader | None = None) -> int:
    """Run the gateway component until SIGTERM (the nucleus stops components with it).

    An accepted configuration update rebuilds the gateway from the new configuration; the spool (and so the
    sequence numbers, the backlog and the alert state) carries over, because it lives in the work dir.
    """
    from plantwatch.adapters.greengrass_ipc import ConfigurationValidator, default_client

    thing = os.environ["AWS_IOT_THING_NAME"]
    work = os.environ.get("PLANTWATCH_WORK_DIR", os.getcwd())
    model_dir = os.environ.get("PLANTWATCH_MODEL_DIR")
    client = client if client is not None else default_client()
    validator = ConfigurationValidator(client, lambda c: config_problem(c, thing_name=thing, work_dir=work))
    validator.start()
    reload = threading.Event()
    client.subscribe_to_configuration_update(
        key_path=["gateway"], on_stream_event=lambda event: reload.set(), on_stream_error=lambda error: False
    )
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        reload.clear()
        document = client.get_configuration(key_path=["gateway"]).value or {}
        config = gateway_config(document, thing_name=thing, work_dir=work, model_dir=model_dir)
        log.info("gateway %s starting in Greengrass", thing)
        runtime = build_gateway(
            config, ipc_client=client, model_loader=model_loader, model_sha256=lambda: model_sha256(client)
        )
        run_gateway(runtime, stop, reload=reload)
    close = getattr(client, "close", None)
    if close is not None:
        close()  # the one IPC connection, shared by every rebuild's transport and notifier
    return 0
