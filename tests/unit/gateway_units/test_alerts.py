"""The floor alert lifecycle: raise after N, one alert not one per reading, hysteresis, acknowledge, restore."""

from __future__ import annotations

import pytest

from plantwatch.contract.reading import Reading, ScoredReading, SensorRef
from plantwatch.domain.alerts import (
    DEFAULT_CLEAR_AFTER,
    DEFAULT_RAISE_AFTER,
    OFFLINE,
    AlertEngine,
    AlertStatus,
    Debounce,
    decode_event,
    encode_event,
    parse_ack,
)


def scored(value: float, ts: int, anomaly: bool, sensor_id: str = "t1") -> ScoredReading:
    reading = Reading(
        plant="p",
        line="l1",
        asset="a1",
        sensor_id=sensor_id,
        sensor_type="temperature",
        unit="degC",
        ts_ms=ts,
        value=value,
    )
    return ScoredReading(
        reading=reading, score=0.9 if anomaly else 0.0, anomaly=anomaly, reasons=("threshold.high",) * anomaly
    )


def feed(engine: AlertEngine, flags: str, start: int = 0, sensor_id: str = "t1") -> list[str]:
    """Feed a pattern like 'XX..X' (X anomalous) and return the events it produced."""
    out = []
    for i, flag in enumerate(flags):
        event = engine.observe(scored(99.0 if flag == "X" else 50.0, start + i, flag == "X", sensor_id))
        if event is not None:
            out.append(event.event)
    return out


def test_raises_once_after_n_consecutive_anomalies() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=3, clear_after=2)
    assert feed(engine, "XX.XX.") == []  # interrupted runs never reach 3
    assert feed(engine, "XXXXXXXX") == ["raised"]  # one alert, not one per reading
    assert [a.status for a in engine.active()] == [AlertStatus.ACTIVE]


def test_clears_only_after_enough_normal_readings() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=1, clear_after=3)
    assert feed(engine, "X..X..X...") == ["raised", "cleared"]
    assert engine.active() == []
    assert not engine.tracking


def test_acknowledge_then_clear_and_unknown_acks_are_ignored() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=1, clear_after=1)
    feed(engine, "X")
    [alert] = engine.active()
    assert engine.acknowledge("nope", by="x", now_ms=5) is None
    event = engine.acknowledge(alert.alert_id, by="op", now_ms=5)
    assert event is not None
    assert event.alert.status is AlertStatus.ACKNOWLEDGED
    assert engine.acknowledge(alert.alert_id, by="op", now_ms=6) is None  # already acknowledged
    assert feed(engine, ".", start=10) == ["cleared"]


def test_sensors_and_kinds_are_tracked_separately() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=2, clear_after=1)
    assert feed(engine, "X", sensor_id="t1") == []
    assert feed(engine, "X", sensor_id="t2") == []
    assert feed(engine, "X", sensor_id="t1") == ["raised"]
    ref = SensorRef(line="l1", asset="a1", sensor_id="t1", sensor_type="temperature", unit="degC")
    offline = engine.condition(ref, OFFLINE, True, 10)
    assert offline is not None
    assert offline.alert.kind == OFFLINE
    assert len(engine.active()) == 2
    cleared = engine.condition(ref, OFFLINE, False, 11)
    assert cleared is not None
    assert cleared.event == "cleared"


def test_snapshot_restores_state_and_events_round_trip() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=2, clear_after=2)
    feed(engine, "XX")
    copy = AlertEngine(gateway_id="gw", plant="p", raise_after=2, clear_after=2)
    copy.restore(engine.snapshot())
    assert copy.active() == engine.active()
    assert feed(copy, "..") == ["cleared"]
    event = copy.acknowledge("x", by="y", now_ms=0)
    assert event is None
    raised = AlertEngine(gateway_id="gw", plant="p", raise_after=1).observe(scored(99.0, 1, True))
    assert raised is not None
    assert decode_event(encode_event(raised)) == raised
    assert parse_ack(b'{"alert_id": "a", "by": "op"}') is not None
    assert parse_ack(b"not json") is None


def test_counts_the_operator_left_unset_follow_the_model_and_set_ones_stay() -> None:
    following = AlertEngine(gateway_id="gw", plant="p")
    assert (following.raise_after, following.clear_after) == (DEFAULT_RAISE_AFTER, DEFAULT_CLEAR_AFTER)
    assert following.follow(Debounce(raise_after=1, clear_after=7)) is True
    assert feed(following, "X") == ["raised"]  # the model's N = 1: the first anomalous reading raises
    assert feed(following, "......", start=1) == []  # and its M = 7: six normal readings do not clear
    assert feed(following, ".", start=7) == ["cleared"]
    assert following.follow(None) is True  # a model that names no counts: back to the defaults
    assert (following.raise_after, following.clear_after) == (DEFAULT_RAISE_AFTER, DEFAULT_CLEAR_AFTER)
    assert following.follow(None) is False
    pinned = AlertEngine(gateway_id="gw", plant="p", raise_after=2)  # the operator set N, not M
    assert pinned.follow(Debounce(raise_after=1, clear_after=7)) is True
    assert (pinned.raise_after, pinned.clear_after) == (2, 7)
    assert feed(pinned, "X") == []


def test_a_run_already_counted_carries_over_when_the_model_lowers_n() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p")
    assert feed(engine, "XX") == []  # two of the default three
    engine.follow(Debounce(raise_after=2, clear_after=5))
    assert feed(engine, "X", start=2) == ["raised"]  # the run continues: its third reading is past the new N


def test_counts_below_one_are_refused() -> None:
    for bad in ({"raise_after": 0}, {"clear_after": 0}, {"raise_after": -1}):
        with pytest.raises(ValueError, match="at least 1"):
            AlertEngine(gateway_id="gw", plant="p", **bad)
    with pytest.raises(ValueError, match="at least 1"):
        Debounce(raise_after=0, clear_after=5)
