"""The floor alert lifecycle: raise after N, one alert not one per reading, hysteresis, acknowledge, restore."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from plantwatch.contract.reading import Reading, ScoredReading, SensorRef
from plantwatch.domain.alerts import (
    ANOMALY,
    ASSET_ANOMALY,
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
        out += [
            e.event for e in engine.observe(scored(99.0 if flag == "X" else 50.0, start + i, flag == "X", sensor_id))
        ]
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
    [raised] = AlertEngine(gateway_id="gw", plant="p", raise_after=1).observe(scored(99.0, 1, True))
    assert decode_event(encode_event(raised)) == raised
    assert parse_ack(b'{"alert_id": "a", "by": "op"}') is not None
    assert parse_ack(b"not json") is None


def test_counts_the_operator_left_unset_take_the_models_where_larger_and_set_ones_stay() -> None:
    following = AlertEngine(gateway_id="gw", plant="p")
    assert (following.raise_after, following.clear_after) == (DEFAULT_RAISE_AFTER, DEFAULT_CLEAR_AFTER)
    # a model tuned with less debouncing than the defaults changes nothing: the floor never alerts faster
    assert following.follow(Debounce(raise_after=1, clear_after=2)) is False
    assert feed(following, "XX") == []
    assert following.follow(Debounce(raise_after=4, clear_after=7)) is True  # one tuned with more: its counts
    assert feed(following, "XX", start=2) == ["raised"]  # the run already counted carries over: 4 in a row
    assert feed(following, "......", start=4) == []  # and its M = 7: six normal readings do not clear
    assert feed(following, ".", start=10) == ["cleared"]
    assert following.follow(None) is True  # a model that names no counts: back to the defaults
    assert (following.raise_after, following.clear_after) == (DEFAULT_RAISE_AFTER, DEFAULT_CLEAR_AFTER)
    assert following.follow(None) is False
    pinned = AlertEngine(gateway_id="gw", plant="p", raise_after=2)  # the operator set N, not M
    assert pinned.follow(Debounce(raise_after=6, clear_after=7)) is True
    assert (pinned.raise_after, pinned.clear_after) == (2, 7)
    assert feed(pinned, "XX") == ["raised"]


def _alert_spans(flags: str, raise_after: int, clear_after: int) -> list[tuple[int, int]]:
    """(raised at, cleared at) of every alert over a pattern like 'XX..X'; one still active ends after the last."""
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=raise_after, clear_after=clear_after)
    out: list[tuple[int, int]] = []
    for i, flag in enumerate(flags):
        for event in engine.observe(scored(99.0 if flag == "X" else 50.0, i, flag == "X")):
            if event.event == "raised":
                out.append((i, len(flags)))
            elif event.event == "cleared":
                out[-1] = (out[-1][0], i)
    return out


def test_more_debouncing_never_raises_an_alert_that_less_did_not() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        flags = "".join("X" if x else "." for x in rng.random(int(rng.integers(5, 60))) < rng.uniform(0.2, 0.8))
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        more_n, more_m = n + int(rng.integers(0, 4)), m + int(rng.integers(0, 4))

        fewer, more = _alert_spans(flags, n, m), _alert_spans(flags, more_n, more_m)
        case = (flags, n, m, more_n, more_m)
        assert len(more) <= len(fewer), case
        # each alert raised with more debouncing is raised while one raised with less is active, never outside
        assert all(any(start <= raised < end for start, end in fewer) for raised, _ in more), case


def test_counts_below_one_are_refused() -> None:
    for bad in ({"raise_after": 0}, {"clear_after": 0}, {"raise_after": -1}):
        with pytest.raises(ValueError, match="at least 1"):
            AlertEngine(gateway_id="gw", plant="p", **bad)
    with pytest.raises(ValueError, match="at least 1"):
        Debounce(raise_after=0, clear_after=5)


TYPES = ("temperature", "vibration", "pressure")


def verdict(ts: int, sensor_type: str, *, model: bool, rule: bool = False) -> ScoredReading:
    """A reading of asset a1's ``sensor_type`` sensor, carrying the model's verdict on the asset and a rule's."""
    reasons = ("threshold.high",) * rule + ("model.iforest",) * model
    reading = Reading(
        plant="p", line="l1", asset="a1", sensor_id=f"a1-{sensor_type[:4]}", sensor_type=sensor_type,
        unit="u", ts_ms=ts, value=1.0,
    )  # fmt: skip
    return ScoredReading(reading=reading, score=0.8 if model or rule else 0.1, anomaly=model or rule, reasons=reasons)


def test_a_model_episode_raises_one_alert_for_the_asset_not_one_per_sensor() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=3, clear_after=2, model_clock="temperature")
    events = []
    for tick, flagged in enumerate([True] * 5 + [False] * 2):
        for sensor_type in ("vibration", "temperature", "pressure"):  # any arrival order: one count per tick
            events += engine.observe(verdict(tick * 1000, sensor_type, model=flagged))
    assert [(e.event, e.alert.kind, e.alert.raised_ms) for e in events] == [
        ("raised", ASSET_ANOMALY, 2000),
        ("cleared", ASSET_ANOMALY, 2000),
    ]
    raised = events[0].alert
    assert (raised.line, raised.asset, raised.sensor_id, raised.sensor_type) == ("l1", "a1", "l1.a1", "asset")
    assert raised.reasons == ("model.iforest",) and raised.value is None
    assert raised.alert_id == "gw:l1.a1:asset_anomaly:2000"
    assert events[1].alert.updated_ms == 6000 and not engine.tracking


def test_rules_alert_on_their_sensor_and_the_model_on_the_asset_each_with_its_own_reasons() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=2, clear_after=1, model_clock="temperature")
    events = []
    for tick in range(2):  # vibration breaks its threshold while the model flags the asset
        for sensor_type in TYPES:
            events += engine.observe(verdict(tick, sensor_type, model=True, rule=sensor_type == "vibration"))
    assert sorted((e.alert.kind, e.alert.sensor_id, e.alert.reasons) for e in events) == [
        (ANOMALY, "a1-vibr", ("threshold.high",)),
        (ASSET_ANOMALY, "l1.a1", ("model.iforest",)),
    ]
    # without a model clock (a scorer without feature windows) a model verdict still alerts, per sensor
    plain = AlertEngine(gateway_id="gw", plant="p", raise_after=1, clear_after=1)
    [event] = plain.observe(verdict(0, "pressure", model=True))
    assert (event.alert.kind, event.alert.sensor_id, event.alert.reasons) == (ANOMALY, "a1-pres", ("model.iforest",))


def test_the_asset_alert_raises_and_clears_where_the_evaluation_counts_one() -> None:
    """The evaluation (``alert_runs``) counts an asset's alerts over its verdicts, one per tick: the floor's
    asset alert follows it exactly, whatever order the sensors arrive in and whatever the rules say meanwhile."""
    from plantwatch.models.evaluation import alert_runs

    rng = np.random.default_rng(11)
    for _ in range(200):
        flags = rng.random(int(rng.integers(1, 60))) < rng.uniform(0.1, 0.9)
        n, m = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        engine = AlertEngine(gateway_id="gw", plant="p", raise_after=n, clear_after=m, model_clock="pressure")
        runs: list[tuple[int, int | None]] = []
        for tick, flag in enumerate(flags.tolist()):
            for sensor_type in rng.permutation(TYPES).tolist():
                for event in engine.observe(verdict(tick, sensor_type, model=flag, rule=bool(rng.random() < 0.3))):
                    if event.alert.kind != ASSET_ANOMALY:
                        continue
                    if event.event == "raised":
                        runs.append((tick, None))
                    else:
                        runs[-1] = (runs[-1][0], tick)
        assert runs == alert_runs(flags, n, m)


def test_an_asset_alert_holds_while_the_model_gives_no_verdict_and_clears_when_no_model_scores() -> None:
    """No verdict (windows filling after an outage or a restart) is not a normal verdict: the alert holds. When no
    model scores any more (a failed load, a fall back to thresholds), nothing would step the alert again: it clears
    at the next reading, also when it was restored from a snapshot."""
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=2, clear_after=2, model_clock="temperature")
    raised = [e for t in range(2) for e in engine.observe(verdict(t, "temperature", model=True))]
    assert [e.event for e in raised] == ["raised"]
    unjudged = [e for t in range(2, 40) for e in engine.observe(verdict(t, "temperature", model=False), judged=False)]
    assert unjudged == [] and [a.kind for a in engine.active()] == [ASSET_ANOMALY]
    snapshot = engine.snapshot()
    engine.model_clock = None
    [cleared] = engine.observe(verdict(40, "vibration", model=False))
    assert (cleared.event, cleared.alert.kind, cleared.alert.updated_ms) == ("cleared", ASSET_ANOMALY, 40)
    assert engine.active() == [] and not engine.tracking
    restarted = AlertEngine(gateway_id="gw", plant="p")  # restored by a gateway that starts without a model
    restarted.restore(snapshot)
    assert [e.event for e in restarted.observe(verdict(41, "pressure", model=False))] == ["cleared"]


def test_two_lines_that_name_an_asset_alike_have_an_asset_alert_each() -> None:
    engine = AlertEngine(gateway_id="gw", plant="p", raise_after=3, clear_after=2, model_clock="temperature")
    events = []
    for tick in range(6):  # line l1's a1 is flagged, line l2's a1 is healthy, in the same calls
        for line, flagged in (("l1", True), ("l2", False)):
            events += engine.observe(msgspec.structs.replace(
                verdict(tick, "temperature", model=flagged),
                reading=msgspec.structs.replace(verdict(tick, "temperature", model=flagged).reading, line=line),
            ))  # fmt: skip
    assert [(e.event, e.alert.line, e.alert.sensor_id) for e in events] == [("raised", "l1", "l1.a1")]
