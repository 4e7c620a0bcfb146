"""Property-based API testing with schemathesis against the app's own /openapi.json: whatever a client sends,
no 5xx, and every answer matches the documented schema (with a valid token; the rate limit is off here)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from tests.api_data import KEY, NOW, filled_store

TOKEN = {"Authorization": f"Bearer {create_token(KEY, plants=['plant-a'], lines=['line-1', 'line-2'])}"}


def build_app() -> FastAPI:
    # built at collection time (schemathesis' fixture loader does not work with pytest 9): the store is a temp dir
    directory = Path(tempfile.mkdtemp(prefix="pw-schemathesis-"))
    atexit.register(shutil.rmtree, directory, True)
    store = filled_store(directory / "db.duckdb")
    return create_app(DuckDBQueries(store), alerts=DuckDBAlerts(store), auth=LocalTokens(KEY), now=lambda: NOW)


schema = schemathesis.openapi.from_asgi("/openapi.json", build_app())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=TOKEN, checks=[not_a_server_error, response_schema_conformance])
