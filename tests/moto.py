"""A moto server in its own process for tests: a free port, a readiness wait, and a clean stop."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantwatch.adapters.dynamo_alerts import DynamoAlerts, table_definitions
from tests.conftest import free_port, missing

# moto_server's own entry point, except that werkzeug serves one request at a time. DynamoDB applies every
# conditional write and transaction atomically; moto checks a condition and then writes without a lock, so
# only a server that never runs two requests at once keeps that promise for tests of concurrent writers.
_ONE_AT_A_TIME = """
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app), threaded=False,
           request_handler=MotoRequestHandler)
"""


@contextlib.contextmanager
def moto_server(*, one_request_at_a_time: bool = False) -> Iterator[str]:
    """Run a moto server on loopback and yield its URL; ``one_request_at_a_time`` makes every request atomic."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(binary).exists():
        missing("moto_server (pip install 'moto[server]')")
    port = free_port()
    command = (
        [sys.executable, "-c", _ONE_AT_A_TIME, "127.0.0.1", str(port)]
        if one_request_at_a_time
        else [binary, "-H", "127.0.0.1", "-p", str(port)]
    )
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto_server did not start")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def dynamodb_client(endpoint: str) -> Any:
    """A boto3 DynamoDB client of the moto server at ``endpoint`` (test credentials, one fixed region)."""
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def alert_tables(endpoint: str) -> DynamoAlerts:
    """A DynamoDB alert store over a fresh pair of tables, created as the adapter declares them."""
    client = dynamodb_client(endpoint)
    suffix = uuid.uuid4().hex[:8]
    store = DynamoAlerts(client, alerts_table=f"alerts-{suffix}", audit_table=f"audit-{suffix}")
    for definition in table_definitions(store.alerts_table, store.audit_table):
        client.create_table(**definition)
    return store
