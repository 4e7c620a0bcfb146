"""Drift from the gateways' score summaries: store them, judge each line's last day, ask for retraining.

A summary (``contract/summaries.py``) carries the reference histogram of the model that scored it, so the
check needs no registry. Everything is computed from the stored summaries (DuckDB locally, DynamoDB in the
cloud), so a Lambda that keeps no state and a local platform that restarts judge alike:

- ``line_drift``: PSI of the line's last ``window`` summaries of its latest model, merged (24 hourly ones =
  one daily cycle); before a full window is held the same figure is served, marked ``complete=False``.
- retraining is asked for when ``consecutive`` checks in a row have drifted (the same rule as
  :class:`~plantwatch.services.drift_watch.DriftTracker`, replayed over the stored summaries), once per
  drift episode; the request is stored, and a re-delivered summary does not ask twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import ScoreSummaryMessage, decode_summary
from plantwatch.models.drift import DEFAULT_PSI_THRESHOLD, DriftMonitor, DriftStatus, ScoreSummary, merge_summaries
from plantwatch.ports import Archive, Clock, GatewayRegistry, Sink
from plantwatch.services.analytics import Scope
from plantwatch.services.gateway_binding import origin_problem
from plantwatch.services.quarantine import keep_refused

log = logging.getLogger(__name__)


class DriftConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How drift is judged: summaries per check, PSI threshold, scores needed, checks in a row to retrain."""

    window: int = 24
    threshold: float = DEFAULT_PSI_THRESHOLD
    min_scores: int = 500
    consecutive: int = 3


class RetrainRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A line's drift asked for retraining: when, by which summary, with which figures."""

    plant: str
    line: str
    model: ModelRef
    psi: float
    summary_key: str
    #: end of the drifted check's window (event time): retraining reads the archive up to here
    window_end_ms: int
    requested_at_ms: int


#: ``source`` of the event that asks the retraining job to retrain one line.
DRIFT_EVENT_SOURCE = "plantwatch.drift"


def retrain_event(request: RetrainRequest) -> dict[str, object]:
    """The retraining job's event for one drifted line: it names the plant and line (the job reads that plant's
    archive for that line only), and its archive window ends with the drifted window."""
    end = datetime.fromtimestamp(request.window_end_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    return {"source": DRIFT_EVENT_SOURCE, "detail-type": "drift", "end": end, **msgspec.to_builtins(request)}


class LineDrift(msgspec.Struct, frozen=True, kw_only=True):
    """The drift figures of one line's latest model, as the API serves them."""

    plant: str
    line: str
    model: ModelRef
    psi: float
    threshold: float
    drifted: bool
    scores: int
    start_ms: int
    end_ms: int
    windows: int
    window: int
    complete: bool
    retrain_requested_at_ms: int | None = None


class SummaryReader(Protocol):
    """What the API reads of the drift store."""

    def recent_summaries(self, plant: str, line: str, limit: int) -> list[ScoreSummaryMessage]:
        """The line's ``limit`` latest summaries (by window start), oldest first."""
        ...

    def summary_lines(self, scope: Scope) -> list[tuple[str, str]]:
        """(plant, line) of every line with summaries that ``scope`` may read."""
        ...

    def last_retrain_request(self, plant: str, line: str) -> RetrainRequest | None:
        """The line's latest retraining request, if any."""
        ...


class SummaryStore(SummaryReader, Protocol):
    """Where score summaries and retraining requests are kept (DuckDB locally, DynamoDB in the cloud)."""

    def record_summary(self, summary: ScoreSummaryMessage) -> None:
        """Store a summary; the same key stored again replaces it (idempotent)."""
        ...

    def record_retrain_request(self, request: RetrainRequest) -> None:
        """Keep the line's latest retraining request."""
        ...


def _of_latest_model(summaries: Sequence[ScoreSummaryMessage]) -> list[ScoreSummaryMessage]:
    """The summaries of the model that scored the latest window (another model's windows are not comparable)."""
    if not summaries:
        return []
    latest = summaries[-1].model
    return [s for s in summaries if s.model == latest]


def _plain(summary: ScoreSummaryMessage) -> ScoreSummary:
    return ScoreSummary(
        line=summary.line,
        start_ms=summary.start_ms,
        end_ms=summary.end_ms,
        counts=summary.counts,
        mean=summary.mean,
        p99=summary.p99,
    )


def _monitor(summary: ScoreSummaryMessage, config: DriftConfig) -> DriftMonitor:
    return DriftMonitor(reference=summary.reference, threshold=config.threshold, min_scores=config.min_scores)


def line_drift(
    summaries: Sequence[ScoreSummaryMessage], config: DriftConfig, request: RetrainRequest | None = None
) -> LineDrift | None:
    """The latest check of a line from its recent summaries (oldest first); partial before a full window."""
    held = _of_latest_model(summaries)[-config.window :]
    if not held:
        return None
    status = _monitor(held[-1], config).check(merge_summaries([_plain(s) for s in held]))
    last = held[-1]
    return LineDrift(
        plant=last.plant,
        line=last.line,
        model=last.model,
        psi=round(status.psi, 6),
        threshold=config.threshold,
        drifted=status.drifted,
        scores=status.scores,
        start_ms=status.start_ms,
        end_ms=status.end_ms,
        windows=len(held),
        window=config.window,
        complete=len(held) >= config.window,
        retrain_requested_at_ms=request.requested_at_ms if request is not None else None,
    )


def retrain_due(summaries: Sequence[ScoreSummaryMessage], config: DriftConfig) -> DriftStatus | None:
    """The check that asks for retraining now, if the latest summary completes a run of drifted checks.

    Give it the line's last ``window + consecutive`` summaries, oldest first. A check merges ``window``
    consecutive summaries; retraining is due when the latest ``consecutive`` checks drifted and the one before
    them (if held) did not: the run reaches ``consecutive`` exactly now (DriftTracker's rule, without state).
    """
    held = _of_latest_model(summaries)
    if not held:
        return None
    monitor = _monitor(held[-1], config)
    w, n = config.window, config.consecutive
    ends = range(max(w, len(held) - n), len(held) + 1)
    checks = [monitor.check(merge_summaries([_plain(s) for s in held[end - w : end]])) for end in ends]
    run = checks[-n:]
    if len(run) < n or not all(c.drifted for c in run):
        return None
    if len(checks) > n and checks[-n - 1].drifted:
        return None  # the run was already that long: asked before
    return run[-1]


def drift_report(store: SummaryReader, scope: Scope, config: DriftConfig) -> list[LineDrift]:
    """Drift of every line the caller may read that has summaries."""
    out = []
    for plant, line in store.summary_lines(scope):
        found = line_drift(
            store.recent_summaries(plant, line, config.window), config, store.last_retrain_request(plant, line)
        )
        if found is not None:
            out.append(found)
    return out


class DriftIngest:
    """Takes summaries off the summaries topic: validates, stores, checks, and asks for retraining once."""

    def __init__(
        self,
        *,
        store: SummaryStore,
        sink: Sink,
        archive: Archive,
        clock: Clock,
        config: DriftConfig | None = None,
        on_drift: Callable[[RetrainRequest], None] | None = None,
        registry: GatewayRegistry | None = None,
    ) -> None:
        self.store = store
        #: gateway -> plant; with it, a summary for another plant than its gateway's is quarantined
        self.registry = registry
        self.sink = sink
        self.archive = archive
        self.clock = clock
        self.config = config or DriftConfig()
        self.on_drift = on_drift
        self.stored = 0
        self.quarantined = 0
        self.requests = 0

    def handle(self, topic: str, payload: bytes) -> None:
        """Take one message; bad ones are quarantined; raises only if a store or ``on_drift`` fails (redeliver)."""
        try:
            summary = decode_summary(payload)
            problem = origin_problem(topic, summary.gateway_id, summary.plant, self.registry)
            if problem is not None:
                raise ValueError(problem)
        except ValueError as exc:
            keep_refused(self.archive, self.sink, self.clock, source=topic, payload=payload, reason=str(exc)[:500])
            self.quarantined += 1
            return
        self.store.record_summary(summary)
        self.stored += 1
        self._maybe_retrain(summary)

    def _maybe_retrain(self, summary: ScoreSummaryMessage) -> None:
        cfg = self.config
        recent = self.store.recent_summaries(summary.plant, summary.line, cfg.window + cfg.consecutive)
        if not recent or recent[-1].key != summary.key:
            return  # a late or re-delivered older window does not decide anything
        status = retrain_due(recent, cfg)
        if status is None:
            return
        previous = self.store.last_retrain_request(summary.plant, summary.line)
        if previous is not None and previous.summary_key == summary.key:
            return  # this summary already asked (a re-delivery)
        request = RetrainRequest(
            plant=summary.plant,
            line=summary.line,
            model=summary.model,
            psi=round(status.psi, 6),
            summary_key=summary.key,
            window_end_ms=status.end_ms,
            requested_at_ms=self.clock.now_ms(),
        )
        log.warning(
            "drift on %s/%s (model %s %s, PSI %.3f over %d checks): retraining requested",
            request.plant,
            request.line,
            request.model.name,
            request.model.version,
            request.psi,
            cfg.consecutive,
        )
        if self.on_drift is not None:
            self.on_drift(request)  # raises -> the summary is delivered again and asks again
        self.store.record_retrain_request(request)
        self.requests += 1
