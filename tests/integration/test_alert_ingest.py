"""The gateways' alert topic into the real DuckDB store and archive: events stored by id, losses kept visible."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.adapters.fs_archive import FilesystemArchive
from plantwatch.contract.reading import ScoredReading
from plantwatch.contract.topics import alert_topic
from plantwatch.domain.alerts import AlertEngine, SpoolLoss, encode_event, encode_loss
from plantwatch.services.alert_ingest import AlertIngest
from tests.helpers import NOW_MS, reading


class FixedClock:
    def now_ms(self) -> int:
        return NOW_MS


@pytest.fixture
def parts(tmp_path: Path) -> tuple[AlertIngest, DuckDBStore]:
    store = DuckDBStore(tmp_path / "db.duckdb")
    ingest = AlertIngest(store=store, sink=store, archive=FilesystemArchive(tmp_path / "archive"), clock=FixedClock())
    return ingest, store


def scored(i: int, anomalous: bool) -> ScoredReading:
    value = 95.0 if anomalous else 50.0
    return ScoredReading(
        reading=reading(0, value=value, ts_ms=NOW_MS + i * 1000),
        score=0.9 if anomalous else 0.0,
        anomaly=anomalous,
        reasons=("threshold.high",) if anomalous else (),
    )


def test_raised_then_cleared_alert_is_one_row_with_its_lifecycle(parts: tuple[AlertIngest, DuckDBStore]) -> None:
    ingest, store = parts
    engine = AlertEngine(gateway_id="gw-line-1", plant="plant-1", raise_after=2, clear_after=2)
    pattern = [True, True, True, False, False]
    events = [e for i, bad in enumerate(pattern) for e in engine.observe(scored(i, bad))]
    assert [e.event for e in events] == ["raised", "cleared"]

    ingest.handle(alert_topic("gw-line-1"), encode_event(events[0]))
    row = store.cursor().execute("SELECT state, cleared_at_ms, reasons, gateway_id FROM alerts").fetchall()
    assert row == [("open", None, ["threshold.high"], "gw-line-1")]
    for event in events:  # re-delivery of the whole history changes nothing
        ingest.handle(alert_topic("gw-line-1"), encode_event(event))
    rows = store.cursor().execute("SELECT alert_id, state, raised_at_ms, cleared_at_ms FROM alerts").fetchall()
    assert rows == [(events[0].alert.alert_id, "cleared", events[0].alert.raised_ms, events[1].alert.updated_ms)]
    assert ingest.stored == 3 and ingest.quarantined == 0


def test_spool_loss_and_junk_are_kept_with_the_quarantine(parts: tuple[AlertIngest, DuckDBStore]) -> None:
    ingest, store = parts
    loss = SpoolLoss(
        gateway_id="gw-line-1", at_ms=NOW_MS, policy="drop_oldest", dropped=[(4, 9, 6, 600)], rejected_readings=0
    )
    ingest.handle(alert_topic("gw-line-1"), encode_loss(loss))
    ingest.handle(alert_topic("gw-line-1"), b'{"schema": "something.else"}')
    ingest.handle(alert_topic("gw-line-1"), b"\xff not json")

    reasons = [r[0] for r in store.cursor().execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()]
    assert len(reasons) == 3 and ingest.quarantined == 3
    assert any("dropped 6 batches / 600 readings (seq 4-9)" in r for r in reasons)
    assert any("not an alert event" in r for r in reasons)
    assert any("does not decode" in r for r in reasons)
    assert store.cursor().execute("SELECT count(*) FROM alerts").fetchall() == [(0,)]


@pytest.mark.parametrize("bad_id", ["", "gw-line-1/../x", "gw line 1:s:anomaly:1", "g" * 201])
def test_an_alert_the_api_could_not_address_is_quarantined_not_stored(
    parts: tuple[AlertIngest, DuckDBStore], bad_id: str
) -> None:
    """An alert id is how operators acknowledge an alert (``POST /v1/alerts/{alert_id}/acknowledge``): one the API's
    path rule refuses would be an alert no one could acknowledge, so it is kept with its reason instead."""
    ingest, store = parts
    engine = AlertEngine(gateway_id="gw-line-1", plant="plant-1", raise_after=1, clear_after=1)
    [event] = engine.observe(scored(0, True))
    ingest.handle(alert_topic("gw-line-1"), encode_event(event))  # the engine's own id is addressable
    forged = msgspec.structs.replace(event, alert=msgspec.structs.replace(event.alert, alert_id=bad_id))
    ingest.handle(alert_topic("gw-line-1"), encode_event(forged))
    assert store.cursor().execute("SELECT alert_id FROM alerts").fetchall() == [(event.alert.alert_id,)]
    [(reason,)] = store.cursor().execute("SELECT reason FROM quarantine").fetchall()
    assert "alert_id" in reason and "is not 1-200 characters" in reason
    assert (ingest.stored, ingest.quarantined) == (1, 1)
