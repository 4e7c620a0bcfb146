"""Floor alert lifecycle per (asset, sensor, kind): raise after N anomalous windows, clear with hysteresis, ack.

An alert is one object with a lifecycle, not one message per anomalous reading. The engine is pure: it turns
observations into :class:`AlertEvent` values, and its state can be snapshotted and restored across restarts.

What a rule says (thresholds, configured limits) is about one sensor: it alerts as ``anomaly`` on that sensor.
What the model says (``model.*`` reasons: the forest, the envelope) is about the asset's window of every sensor:
it alerts once per asset as ``asset_anomaly``, counted once per tick on the readings of one sensor type (the
``model_clock``), as the model was evaluated. Per sensor, one forest episode would raise an alert on each of
the asset's sensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Final

import msgspec

from plantwatch.contract.alerts import alert_id
from plantwatch.contract.reading import ScoredReading, SensorRef

ALERT_SCHEMA: Final = "plantwatch.alert.v1"
LOSS_SCHEMA: Final = "plantwatch.spool-loss.v1"
#: Kinds of alert: a sensor's reading outside a rule, an asset's window the model judges anomalous, a sensor
#: that stopped answering, a spool out of disk budget.
ANOMALY: Final = "anomaly"
ASSET_ANOMALY: Final = "asset_anomaly"
#: Reasons that start with this are the model's verdict on the asset (``model.iforest``, ``model.envelope``).
MODEL_REASON_PREFIX: Final = "model."
#: The sensor type an asset alert carries (its ``sensor_id`` is ``<line>.<asset>``).
ASSET_SENSOR_TYPE: Final = "asset"
#: Ends the tracker key of an asset alert; no sensor id holds it, so never a sensor's tracker.
_ASSET_MARK: Final = "\x1f\x1e" + ASSET_ANOMALY
OFFLINE: Final = "offline"
SPOOL_FULL: Final = "spool_full"
#: The anomaly lifecycle's counts until the scoring model names its own, and for a model that names none.
DEFAULT_RAISE_AFTER: Final = 3
DEFAULT_CLEAR_AFTER: Final = 5


class Debounce(msgspec.Struct, frozen=True, kw_only=True):
    """An anomaly alert's lifecycle counts: raised at the ``raise_after``-th consecutive anomalous reading,
    cleared after ``clear_after`` consecutive normal ones."""

    raise_after: int
    clear_after: int

    def __post_init__(self) -> None:
        if self.raise_after < 1 or self.clear_after < 1:
            raise ValueError("raise_after and clear_after must be at least 1")


class AlertStatus(StrEnum):
    """Where an alert is in its lifecycle."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert: which sensor, what kind, since when, and what raised it."""

    alert_id: str
    gateway_id: str
    plant: str
    line: str
    asset: str
    sensor_id: str
    sensor_type: str
    kind: str
    status: AlertStatus
    raised_ms: int
    updated_ms: int
    value: float | None = None
    score: float | None = None
    reasons: tuple[str, ...] = ()
    acknowledged_by: str | None = None
    #: when it was acknowledged on the floor (later events of the alert keep it)
    acknowledged_ms: int | None = None


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A change in an alert's lifecycle, as published on the floor and to the cloud."""

    schema: str = ALERT_SCHEMA
    event: str  # raised | acknowledged | cleared
    alert: Alert


class SpoolLoss(msgspec.Struct, frozen=True, kw_only=True):
    """What a full spool cost, sent on the alert topic so the cloud can tell a policy drop from a lost batch."""

    schema: str = LOSS_SCHEMA
    gateway_id: str
    at_ms: int
    policy: str
    #: [first_seq, last_seq, batches, readings] per dropped range (drop_oldest)
    dropped: list[tuple[int, int, int, int]]
    #: readings refused without a sequence number (reject)
    rejected_readings: int


class _Tracker(msgspec.Struct, kw_only=True):
    bad: int = 0
    good: int = 0
    alert: Alert | None = None


class AlertSnapshot(msgspec.Struct, kw_only=True):
    """The engine's persistent state: alerts not yet cleared, and the counters leading to them."""

    trackers: dict[str, _Tracker]


class AlertAck(msgspec.Struct, frozen=True, kw_only=True):
    """An acknowledgement from the floor: which alert, and who acknowledged it."""

    alert_id: str
    by: str = "floor"


_encoder = msgspec.json.Encoder()


def parse_ack(payload: bytes) -> AlertAck | None:
    """An acknowledgement message, or None if it is not one (never raises)."""
    try:
        return msgspec.json.decode(payload, type=AlertAck)
    except msgspec.DecodeError:
        return None


def encode_event(event: AlertEvent) -> bytes:
    """The JSON an alert event is published as."""
    return _encoder.encode(event)


def encode_loss(loss: SpoolLoss) -> bytes:
    """The JSON a spool-loss notice is published as."""
    return _encoder.encode(loss)


def decode_event(payload: bytes) -> AlertEvent:
    """Parse a published alert event."""
    return msgspec.json.decode(payload, type=AlertEvent)


class AlertEngine:
    """Turns scored readings and conditions into alert events; one tracker per (asset, sensor, kind)."""

    def __init__(
        self,
        *,
        gateway_id: str,
        plant: str,
        raise_after: int | None = None,
        clear_after: int | None = None,
        model_clock: str | None = None,
    ) -> None:
        """``raise_after`` / ``clear_after`` given here are the operator's and stay; one left None is
        :data:`DEFAULT_RAISE_AFTER` / :data:`DEFAULT_CLEAR_AFTER`, or the scoring model's tuned count where that
        is larger (:meth:`follow`). ``model_clock``: the sensor type whose readings step an asset's
        ``asset_anomaly`` tracker (the model's first feature type; the gateway sets it from its scorer); None
        alerts model verdicts per sensor, like rules."""
        if any(count is not None and count < 1 for count in (raise_after, clear_after)):
            raise ValueError("raise_after and clear_after must be at least 1")
        self.gateway_id = gateway_id
        self.plant = plant
        self._pinned = (raise_after, clear_after)
        self.raise_after = raise_after or DEFAULT_RAISE_AFTER
        self.clear_after = clear_after or DEFAULT_CLEAR_AFTER
        self._trackers: dict[str, _Tracker] = {}
        self._by_id: dict[str, str] = {}
        self.model_clock = model_clock

    def follow(self, tuned: Debounce | None) -> bool:
        """For each count the operator left unset: the scoring model's tuned count (``tuned``; None: a model that
        names none, or no model), never less than the default.

        Models are tuned with counts no lower than the defaults (``evaluation.RAISE_AFTER_CANDIDATES``), so a
        model's own counts are what this gives: the floor alerts as the model was evaluated. A model tuned lower
        (before that rule) is debounced more than evaluated, never less: the floor stays as quiet as 3 / 5 on a
        single stray reading. Returns whether a count changed. Runs of anomalous readings already counted carry
        over a change."""
        pinned_raise, pinned_clear = self._pinned
        raise_after = pinned_raise or max(DEFAULT_RAISE_AFTER, tuned.raise_after if tuned is not None else 0)
        clear_after = pinned_clear or max(DEFAULT_CLEAR_AFTER, tuned.clear_after if tuned is not None else 0)
        changed = (raise_after, clear_after) != (self.raise_after, self.clear_after)
        self.raise_after, self.clear_after = raise_after, clear_after
        return changed

    @property
    def tracking(self) -> bool:
        """Whether any sensor has an alert or a run of anomalous readings (else normal readings change nothing)."""
        return bool(self._trackers)

    def active(self) -> list[Alert]:
        """Alerts raised and not yet cleared."""
        return [t.alert for t in self._trackers.values() if t.alert is not None]

    @property
    def model_clock(self) -> str | None:
        """The sensor type whose readings step an asset's ``asset_anomaly`` tracker; None: no model scores."""
        return self._model_clock

    @model_clock.setter
    def model_clock(self, clock: str | None) -> None:
        self._model_clock = clock
        self._orphaned = clock is None and any(_ASSET_MARK in key for key in self._trackers)

    def observe(self, scored: ScoredReading, *, judged: bool = True) -> tuple[AlertEvent, ...]:
        """Feed one scored reading: its rule reasons into its sensor's ``anomaly`` tracker and, for a reading of
        the model clock's type whose asset the model judged in this call (``judged``: not while its windows
        fill, nor across an outage), the model's verdict into its asset's ``asset_anomaly`` tracker.

        With no model scoring any more (``model_clock`` None), asset alerts it raised are cleared at the next
        reading: nothing would ever step them again."""
        r = scored.reading
        reasons = scored.reasons
        clock = self._model_clock
        events: tuple[AlertEvent, ...] = self._clear_assets(r.ts_ms) if self._orphaned else ()
        model_reasons: tuple[str, ...] = ()
        if reasons and clock is not None:
            model_reasons = tuple(x for x in reasons if x.startswith(MODEL_REASON_PREFIX))
            if model_reasons:
                reasons = tuple(x for x in reasons if not x.startswith(MODEL_REASON_PREFIX))
        # a reading flagged without any reason is the sensor's: nothing flagged goes unheard
        bad = bool(reasons) or (scored.anomaly and not model_reasons)
        key = f"{r.asset}\x1f{r.sensor_id}\x1f{ANOMALY}"
        tracker = self._trackers.get(key)
        if tracker is not None or bad:  # a normal reading of a quiet sensor costs one lookup
            if tracker is None:
                tracker = self._trackers[key] = _Tracker()
            event = self._step(
                key, tracker, bad, r.sensor, ANOMALY, r.ts_ms, r.value, scored.score, reasons,
                self.raise_after, self.clear_after,
            )  # fmt: skip
            if event is not None:
                events = (*events, event)
        if r.sensor_type != clock or not judged:
            return events
        key = f"{r.line}\x1f{r.asset}{_ASSET_MARK}"  # keyed by line too: two lines may name an asset alike
        tracker = self._trackers.get(key)
        if tracker is None and not model_reasons:
            return events
        if tracker is None:
            tracker = self._trackers[key] = _Tracker()
        asset = SensorRef(
            line=r.line, asset=r.asset, sensor_id=f"{r.line}.{r.asset}", sensor_type=ASSET_SENSOR_TYPE, unit=""
        )
        event = self._step(
            key, tracker, bool(model_reasons), asset, ASSET_ANOMALY, r.ts_ms, None, scored.score, model_reasons,
            self.raise_after, self.clear_after,
        )  # fmt: skip
        return events if event is None else (*events, event)

    def _clear_assets(self, ts_ms: int) -> tuple[AlertEvent, ...]:
        """Clear every asset alert (and run) at once: the model that raised them no longer scores."""
        self._orphaned = False
        out = []
        for key in [k for k in self._trackers if _ASSET_MARK in k]:
            alert = self._trackers.pop(key).alert
            if alert is not None:
                self._by_id.pop(alert.alert_id, None)
                cleared = msgspec.structs.replace(alert, status=AlertStatus.CLEARED, updated_ms=ts_ms)
                out.append(AlertEvent(event="cleared", alert=cleared))
        return tuple(out)

    def condition(self, sensor: SensorRef, kind: str, present: bool, now_ms: int) -> AlertEvent | None:
        """Feed a condition (offline, spool full): raised at once when present, cleared at once when gone."""
        key = f"{sensor.asset}\x1f{sensor.sensor_id}\x1f{kind}"
        tracker = self._trackers.get(key)
        if tracker is None:
            if not present:
                return None
            tracker = self._trackers[key] = _Tracker()
        return self._step(key, tracker, present, sensor, kind, now_ms, None, None, (), 1, 1)

    def acknowledge(self, alert_id: str, *, by: str, now_ms: int) -> AlertEvent | None:
        """Acknowledge an active alert from the floor; unknown or cleared alerts are ignored."""
        key = self._by_id.get(alert_id)
        tracker = self._trackers.get(key) if key else None
        if tracker is None or tracker.alert is None or tracker.alert.status is not AlertStatus.ACTIVE:
            return None
        tracker.alert = msgspec.structs.replace(
            tracker.alert,
            status=AlertStatus.ACKNOWLEDGED,
            updated_ms=now_ms,
            acknowledged_by=by,
            acknowledged_ms=now_ms,
        )
        return AlertEvent(event="acknowledged", alert=tracker.alert)

    def _step(
        self,
        key: str,
        tracker: _Tracker,
        bad: bool,
        sensor: SensorRef,
        kind: str,
        ts_ms: int,
        value: float | None,
        score: float | None,
        reasons: Sequence[str],
        raise_after: int,
        clear_after: int,
    ) -> AlertEvent | None:
        if bad:
            tracker.bad += 1
            tracker.good = 0
            if tracker.alert is None and tracker.bad >= raise_after:
                tracker.alert = Alert(
                    alert_id=alert_id(self.gateway_id, sensor.sensor_id, kind, ts_ms),
                    gateway_id=self.gateway_id,
                    plant=self.plant,
                    line=sensor.line,
                    asset=sensor.asset,
                    sensor_id=sensor.sensor_id,
                    sensor_type=sensor.sensor_type,
                    kind=kind,
                    status=AlertStatus.ACTIVE,
                    raised_ms=ts_ms,
                    updated_ms=ts_ms,
                    value=value,
                    score=score,
                    reasons=tuple(reasons),
                )
                self._by_id[tracker.alert.alert_id] = key
                return AlertEvent(event="raised", alert=tracker.alert)
            return None
        tracker.good += 1
        tracker.bad = 0
        if tracker.alert is None:
            del self._trackers[key]
            return None
        if tracker.good >= clear_after:
            cleared = msgspec.structs.replace(tracker.alert, status=AlertStatus.CLEARED, updated_ms=ts_ms)
            self._by_id.pop(cleared.alert_id, None)
            del self._trackers[key]
            return AlertEvent(event="cleared", alert=cleared)
        return None

    def snapshot(self) -> bytes:
        """The engine's state as bytes, to be stored with the events that changed it."""
        return _encoder.encode(AlertSnapshot(trackers=self._trackers))

    def restore(self, state: bytes) -> None:
        """Continue from a snapshot (after a restart)."""
        snap = msgspec.json.decode(state, type=AlertSnapshot)
        self._trackers = snap.trackers
        self._by_id = {t.alert.alert_id: k for k, t in self._trackers.items() if t.alert is not None}
        self.model_clock = self._model_clock  # asset alerts restored with no model to step them are cleared
