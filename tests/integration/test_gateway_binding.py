"""A gateway's data is taken only for its own plant: batches, alerts and score summaries whose payload claims
another plant (or another gateway than the topic's) are quarantined with the reason, and good data in the same
delivery is stored. The cloud registry (the thing attribute ``plant``) runs against moto server's IoT registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.adapters.iot_registry import IotThingRegistry
from plantwatch.contract import BatchHeader, encode_batches
from plantwatch.ports import StreamRecord
from plantwatch.services.alert_ingest import AlertIngest
from plantwatch.services.gateway_binding import origin_problem
from plantwatch.services.stream_processing import StreamProcessor
from tests.conftest import require_module
from tests.helpers import HEADER, NOW_MS, alert_event, scored


class FixedClock:
    def now_ms(self) -> int:
        return NOW_MS


class Registry:
    """gateway -> plant, counting lookups; ``down`` makes it fail like an unreachable service."""

    def __init__(self, plants: dict[str, str], *, down: bool = False) -> None:
        self.plants = plants
        self.down = down

    def plant_of(self, gateway_id: str) -> str | None:
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.plants.get(gateway_id)


class Alerts:
    def __init__(self) -> None:
        self.stored: list[Any] = []

    def record_alerts(self, alerts: Any) -> int:
        self.stored.extend(alerts)
        return len(alerts)


REGISTRY = Registry({"gw-line-1": "plant-1", "gw-1": "plant-a"})
TOPIC = "plantwatch/gateways/gw-line-1/batches"


def record(i: int, payload: bytes, topic: str = TOPIC) -> StreamRecord:
    return StreamRecord(record_id=str(i), data=payload, arrival_ms=NOW_MS, topic=topic)


def batch(header: BatchHeader = HEADER, seq: int = 1) -> bytes:
    readings = [scored(i) for i in range(5)]
    readings = [
        msgspec.structs.replace(r, reading=msgspec.structs.replace(r.reading, plant=header.plant)) for r in readings
    ]
    [b] = encode_batches(header, readings, first_seq=seq)
    return b.payload


def test_origin_rules() -> None:
    assert origin_problem(TOPIC, "gw-line-1", "plant-1", REGISTRY) is None
    assert origin_problem(TOPIC, "gw-line-1", "plant-1", None) is None
    claims_other = origin_problem(TOPIC, "gw-line-2", "plant-1", None)
    assert claims_other is not None and "gw-line-2" in claims_other and "gw-line-1" in claims_other
    other_plant = origin_problem(TOPIC, "gw-line-1", "plant-2", REGISTRY)
    assert other_plant is not None and "belongs to plant 'plant-1'" in other_plant
    unknown = origin_problem("plantwatch/gateways/gw-9/batches", "gw-9", "plant-1", REGISTRY)
    assert unknown is not None and "not registered" in unknown
    # Without a gateway topic (a local stream), the claimed gateway is looked up.
    assert origin_problem(None, "gw-line-1", "plant-2", REGISTRY) is not None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "db.duckdb")
    yield s
    s.close()


def test_a_batch_for_another_plant_is_quarantined_and_the_good_ones_stored(store: DuckDBStore, tmp_path: Path) -> None:
    processor = StreamProcessor(
        sink=store, archive=FilesystemArchive(tmp_path / "a"), clock=FixedClock(), registry=REGISTRY
    )
    foreign = BatchHeader(gateway_id="gw-line-1", plant="plant-2", model=HEADER.model)
    impostor = BatchHeader(gateway_id="gw-line-2", plant="plant-1", model=HEADER.model)
    report = processor.process(
        [
            record(1, batch(seq=1)),
            record(2, batch(foreign, seq=2)),
            record(3, batch(impostor, seq=3)),
            record(4, batch(seq=4)),
        ]
    )
    assert (report.written, report.quarantined, report.failed_from) == (10, 2, None)
    reasons = sorted(r[0] for r in store.cursor().execute("SELECT reason FROM quarantine").fetchall())
    assert "belongs to plant 'plant-1', the payload claims 'plant-2'" in reasons[0]
    assert "claims gateway 'gw-line-2'" in reasons[1]
    plants = store.cursor().execute("SELECT DISTINCT plant FROM readings").fetchall()
    assert plants == [("plant-1",)]


def test_an_unreachable_registry_retries_from_that_record(store: DuckDBStore, tmp_path: Path) -> None:
    processor = StreamProcessor(
        sink=store, archive=FilesystemArchive(tmp_path / "a"), clock=FixedClock(), registry=Registry({}, down=True)
    )
    report = processor.process([record(1, b"\x00poison"), record(2, batch(seq=1))])
    assert report.failed_from == "2" and report.written == 0 and report.quarantined == 1


def test_an_alert_for_another_plant_is_quarantined(store: DuckDBStore, tmp_path: Path) -> None:
    alerts = Alerts()
    ingest = AlertIngest(
        store=alerts, sink=store, archive=FilesystemArchive(tmp_path / "a"), clock=FixedClock(), registry=REGISTRY
    )
    ingest.handle("plantwatch/gateways/gw-1/alerts", alert_event("a-1", "active", plant="plant-a"))
    ingest.handle("plantwatch/gateways/gw-1/alerts", alert_event("a-2", "active", plant="plant-b"))
    assert [a.alert_id for a in alerts.stored] == ["a-1"]
    assert ingest.quarantined == 1
    [(reason,)] = store.cursor().execute("SELECT reason FROM quarantine").fetchall()
    assert "belongs to plant 'plant-a', the payload claims 'plant-b'" in reason


def test_the_iot_registry_reads_the_thing_attribute_on_moto_server() -> None:
    require_module("boto3")
    import boto3

    from tests.moto import moto_server

    with moto_server() as url:
        client = boto3.client(
            "iot", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        client.create_thing(
            thingName="gw-line-1", attributePayload={"attributes": {"plant": "plant-1", "line": "line-1"}}
        )
        client.create_thing(thingName="gw-bare")
        clock = [0.0]
        registry = IotThingRegistry(client, ttl_s=300, unknown_ttl_s=60, monotonic=lambda: clock[0])
        assert registry.plant_of("gw-line-1") == "plant-1"
        assert registry.plant_of("gw-bare") is None
        assert registry.plant_of("gw-nowhere") is None
        assert registry.lookups == 3
        assert registry.plant_of("gw-line-1") == "plant-1" and registry.lookups == 3  # cached
        client.update_thing(thingName="gw-bare", attributePayload={"attributes": {"plant": "plant-2"}})
        clock[0] = 61.0  # unknown answers expire after a minute, known ones after five
        assert registry.plant_of("gw-bare") == "plant-2"
        assert registry.plant_of("gw-line-1") == "plant-1" and registry.lookups == 4
