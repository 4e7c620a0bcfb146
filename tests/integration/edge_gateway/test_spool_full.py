"""Spool budget full: the configured policy holds, the counts are exact, and alerts still fire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plantwatch.adapters.simulator_source import SimulatorSource
from plantwatch.adapters.sqlite_spool import DROP_OLDEST, REJECT, SqliteSpool
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.reading import Reading
from plantwatch.domain.alerts import SPOOL_FULL, AlertEngine, decode_event
from plantwatch.domain.simulator import PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.services.gateway import Gateway, GatewayConfig

START_MS = 1_764_000_000_000
BUDGET = 24_000


class FloorCollector:
    """The floor channel as a list (the real local-broker channel is tested in the outage test)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def notify(self, payloads: list[bytes]) -> None:
        self.payloads.extend(payloads)


class Spike:
    """One sensor that reads far over the original temperature threshold at chosen times."""

    def __init__(self, at_ms: set[int]) -> None:
        self.at_ms = at_ms

    def poll(self, now_ms: int) -> list[Reading]:
        if now_ms not in self.at_ms:
            return []
        return [
            Reading(
                plant="plant-1",
                line="line-1",
                asset="oven-1",
                sensor_id="oven-1-temp",
                sensor_type="temperature",
                unit="degC",
                ts_ms=now_ms,
                value=120.0,
            )
        ]


def run_offline(tmp_path: Path, policy: str) -> tuple[Gateway, SqliteSpool, FloorCollector, int]:
    """A gateway with no uplink at all, fed for 60 simulated seconds, spooling into a small budget."""
    sim = PlantSimulator(SimulationConfig(lines=1, assets_per_line=4, sample_period_ms=100, fault_after_s=1e12))
    spool = SqliteSpool(tmp_path / f"{policy}.sqlite", budget_bytes=BUDGET, when_full=policy)
    floor = FloorCollector()
    spike_times = {START_MS + 50_000, START_MS + 50_100}
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw-full", plant="plant-1", batch_interval_ms=1000),
        sources=[SimulatorSource(sim, "line-1"), Spike(spike_times)],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
        alerts=AlertEngine(gateway_id="gw-full", plant="plant-1", raise_after=2, clear_after=2),
        notifiers=[floor],
    )
    for now in range(START_MS, START_MS + 60_000, 100):
        gateway.step(now)
    gateway.flush(START_MS + 60_000)
    return gateway, spool, floor, gateway.counters.readings


def stored_batches(spool: SqliteSpool) -> dict[int, int]:
    """seq -> readings of every batch waiting in the spool."""
    out = {}
    for item in spool.peek(100_000):
        if item.topic.endswith("/batches"):
            result = decode_payload(item.payload, now_ms=START_MS + 60_000)
            assert result.batch is not None
            out[result.batch.seq] = len(result.batch.readings)
    return out


@pytest.mark.parametrize("policy", [REJECT, DROP_OLDEST])
def test_full_spool_keeps_its_policy_counts_exactly_and_alerts_still_fire(tmp_path: Path, policy: str) -> None:
    gateway, spool, floor, produced = run_offline(tmp_path, policy)
    try:
        stats = spool.stats()
        stored = stored_batches(spool)
        # the budget holds
        assert 0 < stats.bytes <= BUDGET
        assert stats.bytes == sum(len(b.payload) for b in spool.peek(100_000) if b.seq)
        # every reading is accounted for, exactly: stored + refused + dropped == produced
        assert sum(stored.values()) + stats.rejected_readings + stats.dropped_readings == produced
        if policy == REJECT:
            assert stats.rejected_readings > 0
            assert stats.dropped_readings == 0
            # refused batches consumed no sequence numbers: what is stored is 1..n without gaps
            assert sorted(stored) == list(range(1, spool.next_seq()))
            assert min(stored) == 1  # the oldest data is what was kept
        else:
            assert stats.dropped_readings > 0
            assert stats.rejected_readings == 0
            dropped = {s for r in stats.dropped_ranges for s in range(r.first_seq, r.last_seq + 1)}
            assert sum(r.batches for r in stats.dropped_ranges) == stats.dropped_batches == len(dropped)
            assert sum(r.readings for r in stats.dropped_ranges) == stats.dropped_readings
            # stored and dropped together are every sequence number, once; the newest data is what was kept
            assert dropped.isdisjoint(stored)
            assert dropped | set(stored) == set(range(1, spool.next_seq()))
            assert max(stored) == spool.next_seq() - 1
        assert gateway.counters.rejected_readings == stats.rejected_readings
        assert gateway.counters.dropped_readings == stats.dropped_readings
        # alerts still fire: the spool-full condition, and the anomaly raised late in the run
        events = [decode_event(p) for p in floor.payloads]
        [full] = [e.alert for e in events if e.event == "raised" and e.alert.kind == SPOOL_FULL]
        assert (full.line, full.asset, full.sensor_id) == ("line-1", "gw-full", "spool.line-1")  # on the line
        assert any(e.event == "raised" and e.alert.sensor_id == "oven-1-temp" for e in events)
        # and they are spooled for the cloud even though the batch budget is used up, with loss notices that
        # add up to the spool's own counts (so the cloud can tell a policy drop from a lost batch)
        to_cloud = [json.loads(b.payload) for b in spool.peek(100_000) if b.topic.endswith("/alerts")]
        cloud = [decode_event(json.dumps(d).encode()) for d in to_cloud if d["schema"] == "plantwatch.alert.v1"]
        assert [e.alert.alert_id for e in cloud] == [e.alert.alert_id for e in events]
        losses = [d for d in to_cloud if d["schema"] == "plantwatch.spool-loss.v1"]
        assert sum(d["rejected_readings"] for d in losses) == stats.rejected_readings
        assert sum(r[3] for d in losses for r in d["dropped"]) == stats.dropped_readings
        assert [tuple(r[:2]) for d in losses for r in d["dropped"]] == [
            (r.first_seq, r.last_seq) for r in stats.dropped_ranges
        ]
    finally:
        spool.close()


def test_alert_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    spool = SqliteSpool(path)
    engine = AlertEngine(gateway_id="gw", plant="plant-1", raise_after=1, clear_after=2)
    floor = FloorCollector()
    gateway = Gateway(
        config=GatewayConfig(gateway_id="gw", plant="plant-1"),
        sources=[Spike({START_MS})],
        scorer=ThresholdScorer(),
        model=THRESHOLD_MODEL,
        spool=spool,
        alerts=engine,
        notifiers=[floor],
    )
    gateway.step(START_MS)
    [raised] = engine.active()
    spool.close()
    # GIVEN a restart: a new engine restored from the spool's stored state
    spool = SqliteSpool(path)
    try:
        restored = AlertEngine(gateway_id="gw", plant="plant-1", raise_after=1, clear_after=2)
        state = spool.alert_state()
        assert state is not None
        restored.restore(state)
        # THEN the alert is still active (not raised again) and can be acknowledged
        assert restored.active() == [raised]
        ack = restored.acknowledge(raised.alert_id, by="shift-lead", now_ms=START_MS + 5)
        assert ack is not None
        assert ack.alert.acknowledged_by == "shift-lead"
    finally:
        spool.close()
