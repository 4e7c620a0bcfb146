"""Alert ingestion: events from the gateways' alert topic become stored alerts that the API and dashboard list.

A gateway publishes every alert event (raised, acknowledged on the floor, cleared) and every spool-loss
notice on ``plantwatch/gateways/{gateway_id}/alerts`` through its spool. Events are stored by ``alert_id``
(a later event of an alert replaces the earlier state, so re-delivery is harmless). A spool-loss notice is a
drop the gateway had to make: it is kept with the quarantine, counted, never silently forgotten. Anything
else on the topic is quarantined with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec

from plantwatch.contract.alerts import Alert as StoredAlert
from plantwatch.contract.alerts import alert_id_problem
from plantwatch.domain.alerts import ALERT_SCHEMA, LOSS_SCHEMA, AlertEvent, AlertStatus, SpoolLoss
from plantwatch.ports import Archive, Clock, GatewayRegistry, Sink
from plantwatch.services.gateway_binding import origin_problem
from plantwatch.services.quarantine import keep_refused

log = logging.getLogger(__name__)


#: How an acknowledgement made on the floor (at the gateway) is told from one made through the API.
FLOOR_ACK_PREFIX: Final = "floor:"


class AlertRefusedError(Exception):
    """The store refuses an alert for good (retrying the same write can't succeed): it is quarantined instead."""


class AlertStore(Protocol):
    """Where alerts are kept for the API."""

    def record_alerts(self, alerts: Sequence[StoredAlert]) -> int:
        """Insert or update alerts by id; raises :class:`AlertRefusedError` for an alert the store can never take."""
        ...


def stored_alert(event: AlertEvent) -> StoredAlert:
    """The stored form of an alert as of ``event``; one acknowledged on the floor says by whom (``floor:<by>``)
    and when (the acknowledged event, and every later event of the alert, carry it)."""
    alert = event.alert
    cleared = alert.status is AlertStatus.CLEARED
    floor_ack = alert.acknowledged_by is not None
    return StoredAlert(
        alert_id=alert.alert_id,
        plant=alert.plant,
        line=alert.line,
        asset=alert.asset,
        sensor_id=alert.sensor_id,
        kind=alert.kind,
        state="cleared" if cleared else "open",
        raised_at_ms=alert.raised_ms,
        cleared_at_ms=alert.updated_ms if cleared else None,
        reasons=alert.reasons,
        score=alert.score or 0.0,
        gateway_id=alert.gateway_id,
        acknowledged_by=f"{FLOOR_ACK_PREFIX}{alert.acknowledged_by}" if floor_ack else None,
        # a gateway from before acknowledged_ms: the event's time, at most later than the acknowledgement
        acknowledged_at_ms=(alert.acknowledged_ms or alert.updated_ms) if floor_ack else None,
    )


def loss_reason(loss: SpoolLoss) -> str:
    """What a spool-loss notice says, in words."""
    batches = sum(r[2] for r in loss.dropped)
    readings = sum(r[3] for r in loss.dropped)
    ranges = ", ".join(f"{first}-{last}" for first, last, _, _ in loss.dropped) or "none"
    return (
        f"gateway {loss.gateway_id} spool full (policy {loss.policy}): dropped {batches} batches / {readings} "
        f"readings (seq {ranges}), refused {loss.rejected_readings} readings"
    )


class AlertIngest:
    """Stores alert events, and keeps spool-loss notices and bad alert payloads with the quarantine."""

    def __init__(
        self, *, store: AlertStore, sink: Sink, archive: Archive, clock: Clock, registry: GatewayRegistry | None = None
    ) -> None:
        self.store = store
        #: gateway -> plant; with it, an alert for another plant than its gateway's is quarantined
        self.registry = registry
        self.sink = sink
        self.archive = archive
        self.clock = clock
        self.stored = 0
        self.quarantined = 0

    def handle(self, topic: str, payload: bytes) -> None:
        """Take one message from an alert topic; raises only if the store or archive fails for now (redeliver).

        An alert the store refuses for good (:class:`AlertRefusedError`) is quarantined with the store's reason, so it
        neither blocks the shard's readings behind endless retries nor disappears."""
        try:
            document: Any = msgspec.json.decode(payload)
            schema = document.get("schema") if isinstance(document, dict) else None
            if schema == ALERT_SCHEMA:
                event = msgspec.convert(document, AlertEvent)
                problem = alert_id_problem(event.alert.alert_id) or origin_problem(
                    topic, event.alert.gateway_id, event.alert.plant, self.registry
                )
                if problem is None:
                    try:
                        self.store.record_alerts([stored_alert(event)])
                    except AlertRefusedError as exc:
                        problem = f"alert store refused alert {event.alert.alert_id}: {exc}"
                        log.error("%s", problem)
                    else:
                        self.stored += 1
                        return
                reason = problem
            elif schema == LOSS_SCHEMA:
                reason = loss_reason(msgspec.convert(document, SpoolLoss))
                log.warning("%s", reason)
            else:
                reason = (
                    f"not an alert event: schema {str(schema)[:40]!r}, expected {ALERT_SCHEMA!r} or {LOSS_SCHEMA!r}"
                )
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"alert payload does not decode: {exc}"
        self._quarantine(topic, payload, reason)

    def _quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        keep_refused(self.archive, self.sink, self.clock, source=topic, payload=payload, reason=reason)
        self.quarantined += 1
