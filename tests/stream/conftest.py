"""Fixtures for the stream processor, sinks and archive tests: a fixed clock and a moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stream_support import FixedClock
from tests.moto import moto_server


@pytest.fixture
def clock() -> FixedClock:
    """A clock one hour after the canned readings."""
    return FixedClock()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free port, for the whole session; boto3 is pointed at it through AWS_ENDPOINT_URL."""
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment that sends every boto3 client to the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint
