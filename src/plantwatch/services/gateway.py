"""The edge gateway pipeline: read sources, score every reading, alert on the floor, batch, and spool durably."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from plantwatch.contract.batch import DEFAULT_MAX_READINGS, BatchHeader, ModelRef, encode_batches
from plantwatch.contract.reading import ScoredReading, SensorRef
from plantwatch.contract.summaries import encode_summary
from plantwatch.contract.topics import alert_topic, batch_topic, summary_topic
from plantwatch.domain.alerts import (
    OFFLINE,
    SPOOL_FULL,
    AlertEngine,
    AlertEvent,
    SpoolLoss,
    encode_event,
    encode_loss,
    parse_ack,
)
from plantwatch.domain.features import FeatureSpec
from plantwatch.models.forest import ForestModel
from plantwatch.ports import AlertNotifier, Scorer, SensorSource, Spool
from plantwatch.services.score_windows import DEFAULT_SUMMARY_WINDOW_MS, ScoreWindows

log = logging.getLogger(__name__)

#: The spool's state entry that keeps open score-summary windows from a stop (or a crash) to the next start.
WINDOWS_STATE: Final = "score_windows"
#: How often, in gateway time, the open score-summary windows are kept in the spool while they grow: a crash
#: loses at most this much of a window's scores (and closing a window keeps them with its summary, at once).
WINDOWS_CHECKPOINT_MS: Final = 60_000


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Identity and batching of one gateway."""

    gateway_id: str
    plant: str
    batch_interval_ms: int = 5000
    max_readings: int = DEFAULT_MAX_READINGS
    #: event-time window of the forest score summaries (drift input); 0 sends none
    summary_window_ms: int = DEFAULT_SUMMARY_WINDOW_MS


class GatewayCounters(msgspec.Struct, kw_only=True):
    """What a gateway has done since it started."""

    readings: int = 0
    anomalies: int = 0
    batches: int = 0
    alert_events: int = 0
    rejected_readings: int = 0
    dropped_readings: int = 0
    summaries: int = 0


class Gateway:
    """Polls its sources, scores readings, raises floor alerts, and seals numbered batches into the spool.

    Alert events go to the floor notifiers first (they need no cloud), then into the spool for the cloud's
    alert topic together with the alert state, so an alert raised offline still reaches the cloud later.
    """

    def __init__(
        self,
        *,
        config: GatewayConfig,
        sources: Sequence[SensorSource],
        scorer: Scorer,
        model: ModelRef,
        spool: Spool,
        alerts: AlertEngine | None = None,
        notifiers: Sequence[AlertNotifier] = (),
        on_spooled: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.sources = list(sources)
        self.scorer = scorer
        self.spool = spool
        self.header = BatchHeader(gateway_id=config.gateway_id, plant=config.plant, model=model)
        self.topic = batch_topic(config.gateway_id)
        self.alert_topic = alert_topic(config.gateway_id)
        self.summary_topic = summary_topic(config.gateway_id)
        self.windows = (
            ScoreWindows(gateway_id=config.gateway_id, plant=config.plant, window_ms=config.summary_window_ms)
            if config.summary_window_ms > 0
            else None
        )
        # The kept windows stay in the spool: every later checkpoint replaces them, and a window that closes is
        # summarised and checkpointed in one transaction, so a crash at any point continues each window once.
        kept = spool.state(WINDOWS_STATE) if self.windows is not None else None
        if self.windows is not None and kept is not None and (restored := self.windows.restore(kept)):
            log.info("continued open score-summary windows with %d scores", restored)
        self._windows_changed = False
        self._windows_kept_ms: int | None = None
        self.alerts = alerts or AlertEngine(gateway_id=config.gateway_id, plant=config.plant)
        self._follow_model()
        self.notifiers = list(notifiers)
        self.on_spooled = on_spooled
        self.counters = GatewayCounters()
        self._pending: list[ScoredReading] = []
        self._events: list[AlertEvent] = []
        #: alert-topic payloads the floor has had and the spool has not yet taken (a failed write)
        self._unspooled: list[bytes] = []
        self._offline: set[SensorRef] = set()
        self._last_flush_ms: int | None = None
        #: the lines whose readings this gateway has spooled: a full spool loses data of each, so each line's
        #: operators get the spool_full alert (one per line, on the line, not on a made-up one)
        self._spool_lines: set[str] = set()
        self._legacy_spool_ref = SensorRef(
            line="gateway", asset=config.gateway_id, sensor_id="spool", sensor_type="spool", unit="bytes"
        )

    def set_model(self, scorer: Scorer, model: ModelRef) -> None:
        """Score with a new model from now on (pending readings keep the model that scored them)."""
        self.seal()
        self.adopt(scorer, model)

    def seal(self) -> None:
        """Before a model swap: seal the pending readings and summarise the scores kept so far (the old scorer's
        forest scores still count). It writes to the spool, so it may raise; :meth:`adopt` does not."""
        self.flush()
        self._summarise()

    def adopt(self, scorer: Scorer, model: ModelRef) -> None:
        """Score with ``scorer`` and stamp batches with ``model`` from now on, with its alert counts (no I/O: call
        :meth:`seal` first)."""
        self.scorer = scorer
        self.header = msgspec.structs.replace(self.header, model=model)
        self._follow_model()

    def _follow_model(self) -> None:
        """Alert with the counts the scoring model was tuned and evaluated with (never below the defaults), where
        the operator set none (:meth:`AlertEngine.follow`): its threshold and its counts were chosen together.
        The model's verdicts alert per asset, once per tick of its first feature type (``model_clock``)."""
        spec = getattr(self.scorer, "spec", None)
        model = getattr(self.scorer, "model", None)
        clock = spec.sensor_types[0] if isinstance(spec, FeatureSpec) else None
        self.alerts.model_clock = clock if isinstance(model, ForestModel) else None
        tuned = model.debounce if isinstance(model, ForestModel) else None
        if self.alerts.follow(tuned):
            log.info(
                "anomaly alerts now raise after %d and clear after %d readings (the model's tuned counts: %s)",
                self.alerts.raise_after,
                self.alerts.clear_after,
                "none" if tuned is None else f"{tuned.raise_after} and {tuned.clear_after}",
            )

    def stop(self) -> None:
        """Seal pending readings, spool finished summaries and keep the open summary windows for the next start."""
        self.flush()
        self.publish_alerts()  # events the floor has had that a failed write kept from the spool
        self._summarise()
        if self.windows is not None:
            self.spool.put_state(WINDOWS_STATE, self.windows.snapshot())

    def step(self, now_ms: int) -> None:
        """Poll every source, score and alert on what arrived, and seal a batch when the interval has passed."""
        self._take_acks(now_ms)
        score_many = self.scorer.score_many
        observe = self.alerts.observe
        events = self._events
        pending = self._pending
        alerts = self.alerts
        for source in self.sources:
            readings = source.poll(now_ms)
            if not readings:
                continue
            self.counters.readings += len(readings)
            scored_readings = score_many(readings)
            pending.extend(scored_readings)
            judged = getattr(self.scorer, "judged", None)  # assets the model judged in this call, if it says
            for scored in scored_readings:
                if scored.anomaly:
                    self.counters.anomalies += 1
                elif not alerts.tracking:
                    continue
                r = scored.reading
                events.extend(observe(scored, judged=judged is None or (r.line, r.asset) in judged))
        self._check_offline(now_ms)
        self.publish_alerts()
        self._summarise()
        self._checkpoint_windows(now_ms)
        if self._last_flush_ms is None:
            self._last_flush_ms = now_ms
        if now_ms - self._last_flush_ms >= self.config.batch_interval_ms or len(pending) >= self.config.max_readings:
            self.flush(now_ms)
            self._last_flush_ms = now_ms

    def _summarise(self) -> None:
        """Spool a summary of every closed window of forest scores (a scorer without a forest gives none)."""
        take = getattr(self.scorer, "take_model_scores", None)
        if self.windows is None or take is None:
            return
        for model, scores in take():
            self.windows.add(model, scores)
            self._windows_changed = True
        closed = self.windows.closed()
        if closed:
            # outside the batch budget, like alert events: small, and drift evidence must not be lost; the
            # windows still open are kept in the same transaction, so a crash can't summarise these twice
            self.spool.put_alerts(
                self.summary_topic,
                [encode_summary(s) for s in closed],
                self.windows.snapshot(without=closed),
                state_name=WINDOWS_STATE,
            )
            self.windows.release(closed)  # only once stored: a failed write summarises them again next step
            self.counters.summaries += len(closed)
            self._windows_changed = False

    def _checkpoint_windows(self, now_ms: int) -> None:
        """Keep the open score-summary windows in the spool every :data:`WINDOWS_CHECKPOINT_MS` they changed."""
        if self.windows is None:
            return
        if self._windows_kept_ms is None:
            self._windows_kept_ms = now_ms
        if self._windows_changed and now_ms - self._windows_kept_ms >= WINDOWS_CHECKPOINT_MS:
            self.spool.put_state(WINDOWS_STATE, self.windows.snapshot())
            self._windows_changed = False
            self._windows_kept_ms = now_ms

    def _spool_ref(self, line: str) -> SensorRef:
        """What a line's spool_full alert is about: this gateway's spool, for that line's readings."""
        return SensorRef(
            line=line, asset=self.config.gateway_id, sensor_id=f"spool.{line}", sensor_type="spool", unit="bytes"
        )

    def _check_offline(self, now_ms: int) -> None:
        offline: set[SensorRef] = set()
        for source in self.sources:
            probe = getattr(source, "offline", None)
            if probe is not None:
                offline.update(probe())
        for sensor in offline ^ self._offline:
            event = self.alerts.condition(sensor, OFFLINE, sensor in offline, now_ms)
            if event is not None:
                self._events.append(event)
        self._offline = offline

    def _take_acks(self, now_ms: int) -> None:
        """Apply acknowledgements that floor channels received (those that can receive any)."""
        for notifier in self.notifiers:
            take = getattr(notifier, "take_acks", None)
            for payload in take() if take is not None else ():
                ack = parse_ack(payload)
                if ack is not None:
                    self.acknowledge(ack.alert_id, by=ack.by, now_ms=now_ms)

    def acknowledge(self, alert_id: str, *, by: str, now_ms: int) -> bool:
        """Acknowledge an alert from the floor; returns whether it was active."""
        event = self.alerts.acknowledge(alert_id, by=by, now_ms=now_ms)
        if event is None:
            return False
        self._events.append(event)
        self.publish_alerts()
        return True

    def publish_alerts(self) -> None:
        """Send alert events to the floor at once, then spool them (with the alert state) for the cloud.

        The floor hears each event once. What the spool refused (a failing disk) stays in memory and is spooled
        on the next call, before anything newer, so the cloud still gets every event in order."""
        if self._events:
            events, self._events = self._events, []
            payloads = [encode_event(e) for e in events]
            for notifier in self.notifiers:
                try:
                    notifier.notify(payloads)
                except Exception:  # one floor channel failing must not stop the others or the pipeline
                    log.exception("floor alert notifier %s failed", type(notifier).__name__)
            self._unspooled.extend(payloads)
            self.counters.alert_events += len(events)
            for event in events:
                log.info(
                    "alert %s: %s %s on %s", event.event, event.alert.kind, event.alert.alert_id, event.alert.asset
                )
        if self._unspooled:
            self.spool.put_alerts(self.alert_topic, self._unspooled, self.alerts.snapshot())
            self._unspooled = []

    def flush(self, now_ms: int | None = None) -> int:
        """Seal pending readings into batches in the spool; returns how many batches were stored."""
        pending = self._pending
        if not pending:
            return 0
        encoded = encode_batches(
            self.header, pending, first_seq=self.spool.next_seq(), max_readings=self.config.max_readings
        )
        # the readings leave memory only once the spool has them (a failing disk keeps them for the next try)
        outcome = self.spool.put(self.topic, [(e.seq, e.payload) for e in encoded], [e.count for e in encoded])
        self._pending = []
        self.counters.batches += outcome.stored
        self.counters.rejected_readings += outcome.rejected_readings
        self.counters.dropped_readings += sum(r.readings for r in outcome.dropped)
        full = bool(outcome.rejected_batches or outcome.dropped)
        at_ms = now_ms if now_ms is not None else pending[-1].reading.ts_ms
        if full:
            log.error(
                "spool full: %s readings refused, %s dropped (sequence ranges %s)",
                outcome.rejected_readings,
                sum(r.readings for r in outcome.dropped),
                [(r.first_seq, r.last_seq) for r in outcome.dropped],
            )
            loss = SpoolLoss(
                gateway_id=self.config.gateway_id,
                at_ms=at_ms,
                policy="drop_oldest" if outcome.dropped else "reject",
                dropped=[(r.first_seq, r.last_seq, r.batches, r.readings) for r in outcome.dropped],
                rejected_readings=outcome.rejected_readings,
            )
            self._unspooled.append(encode_loss(loss))
        lines = {scored.reading.line for scored in pending}
        self._spool_lines |= lines
        refs = [self._spool_ref(line) for line in sorted(lines if full else self._spool_lines)]
        if not full:  # one raised before spool alerts were per line (restored with the alert state) clears too
            refs.append(self._legacy_spool_ref)
        for ref in refs:
            event = self.alerts.condition(ref, SPOOL_FULL, full, at_ms)
            if event is not None:
                self._events.append(event)
        self.publish_alerts()
        if self.on_spooled:
            self.on_spooled()
        return outcome.stored
