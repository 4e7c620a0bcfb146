"""Drift from the gateways' score summaries: store them, judge each line's last day, ask for retraining.

A summary (``contract/summaries.py``) carries the reference histogram of the model that scored it, so the
check needs no registry. Everything is computed from the stored summaries (DuckDB locally, DynamoDB in the
cloud), so a Lambda that keeps no state and a local platform that restarts judge alike.

A check is chosen by time, not by count: a line's thing group may hold several gateways, each sending its own
summary of the same window. A check ending at a window merges every summary of the latest model whose window
starts within the ``window`` window lengths ending there (24 hourly windows = one daily cycle), whichever
gateway sent it; counts add up, so each gateway weighs by its scores.

- ``line_drift``: the check ending at the line's latest window; it is ``complete`` once all ``window`` window
  starts are held, and before that the same figure is served, marked ``complete=False``.
- retraining is asked for when the checks ending at the latest ``consecutive`` windows are complete and have
  drifted (the same rule as :class:`~plantwatch.services.drift_watch.DriftTracker`, replayed over the stored
  summaries), once per drift episode; the request is stored after the retrain function accepted it, so a
  re-delivered summary, or another gateway's summary of the same window handled after it, does not ask twice
  (one handled at the same moment on another shard may: a second retraining, never a lost request).
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
    """How drift is judged: windows per check, PSI threshold, scores needed, checks in a row to retrain."""

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

    def recent_summaries(self, plant: str, line: str, windows: int) -> list[ScoreSummaryMessage]:
        """Every summary (all gateways, all models) whose window starts no earlier than :func:`first_start` of the
        line's latest summary, oldest first: by window start, then gateway, then model version."""
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


def first_start(latest: ScoreSummaryMessage, windows: int) -> int:
    """The earliest window start of the ``windows`` window lengths that end with ``latest``'s window."""
    return latest.end_ms - windows * (latest.end_ms - latest.start_ms)


def _version_order(version: str) -> tuple[int, int, str]:
    """Registry versions by number, after anything else (such as ``baseline``)."""
    return (1, int(version), "") if version.isascii() and version.isdigit() else (0, 0, version)


def _current_run(summaries: Sequence[ScoreSummaryMessage]) -> tuple[ModelRef, int] | None:
    """The model the line is judged by, and the first window of its current run: of the models in the latest
    window, the one whose run of windows (unbroken among the windows reported) started last. A rollout, a swap or
    a rollback starts a run; a gateway still on the old model does not make it current again. Among runs that
    started in the same window, the highest version."""
    present: dict[int, set[ModelRef]] = {}
    for s in summaries:
        present.setdefault(s.start_ms, set()).add(s.model)
    if not present:
        return None
    windows = sorted(present, reverse=True)

    def run_start(model: ModelRef) -> int:
        start = windows[0]
        for window in windows:
            if model not in present[window]:
                break
            start = window
        return start

    model = max(present[windows[0]], key=lambda m: (run_start(m), _version_order(m.version)))
    return model, run_start(model)


def latest_model(summaries: Sequence[ScoreSummaryMessage]) -> ModelRef | None:
    """The model the line is judged by (see :func:`_current_run`)."""
    run = _current_run(summaries)
    return None if run is None else run[0]


def _of_latest_model(summaries: Sequence[ScoreSummaryMessage]) -> list[ScoreSummaryMessage]:
    """The summaries of the current run of the model the line is judged by: another model's windows are not
    comparable, and a model swapped in again (a rollback) starts a new series, as any swap does."""
    run = _current_run(summaries)
    return [] if run is None else [s for s in summaries if s.model == run[0] and s.start_ms >= run[1]]


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


def _check(
    monitor: DriftMonitor, held: Sequence[ScoreSummaryMessage], last: ScoreSummaryMessage, windows: int
) -> tuple[DriftStatus, int]:
    """The check ending at ``last``'s window: every held summary of the ``windows`` windows ending there, merged;
    and how many distinct windows it found."""
    first = first_start(last, windows)
    covered = [s for s in held if first <= s.start_ms <= last.start_ms]
    return monitor.check(merge_summaries([_plain(s) for s in covered])), len({s.start_ms for s in covered})


def line_drift(
    summaries: Sequence[ScoreSummaryMessage], config: DriftConfig, request: RetrainRequest | None = None
) -> LineDrift | None:
    """The latest check of a line from its recent summaries (oldest first); partial before a full window."""
    held = _of_latest_model(summaries)
    if not held:
        return None
    last = held[-1]
    status, windows = _check(_monitor(last, config), held, last, config.window)
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
        windows=windows,
        window=config.window,
        complete=windows >= config.window,
        retrain_requested_at_ms=request.requested_at_ms if request is not None else None,
    )


def lookback(config: DriftConfig) -> int:
    """Windows of summaries :func:`retrain_due` needs: the run of checks, and a full check before it even when a
    check's worth of windows in between is partial (an hour no gateway reported)."""
    return 2 * config.window + config.consecutive


def retrain_due(
    summaries: Sequence[ScoreSummaryMessage], config: DriftConfig, *, asked: RetrainRequest | None = None
) -> DriftStatus | None:
    """The check that asks for retraining now, if the latest window completes a run of drifted checks.

    Give it the line's summaries of its last :func:`lookback` windows, oldest first, and the line's last request
    (``asked``). There is one check per window (however many gateways reported it);
    retraining is due when the checks ending at the latest ``consecutive`` windows are complete and drifted, and
    the last complete check before them did not drift: the run reaches ``consecutive`` exactly now (DriftTracker's
    rule, without state). A partial check (a window no gateway reported) says nothing either way: with no complete
    check before the run, it is due unless this model asked within these windows (the same episode).
    """
    held = _of_latest_model(summaries)
    if not held:
        return None
    monitor = _monitor(held[-1], config)
    n = config.consecutive
    ends = list({s.start_ms: s for s in held}.values())  # one summary per window: its start and length
    checks = [_check(monitor, held, end, config.window) for end in ends]
    judged = [(windows >= config.window, status.drifted) for status, windows in checks]
    if len(judged) < n or not all(complete and drifted for complete, drifted in judged[-n:]):
        return None
    before = [drifted for complete, drifted in judged[:-n] if complete]
    if before[-1:] == [True]:
        return None  # the run was already that long: asked before
    recently = asked is not None and asked.model == held[-1].model and asked.window_end_ms > summaries[0].start_ms
    if not before and recently:
        return None  # nothing complete since this model's request, made within these windows: the same episode
    return checks[-1][0]


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
        recent = self.store.recent_summaries(summary.plant, summary.line, lookback(cfg))
        if not recent or (recent[-1].start_ms, latest_model(recent)) != (summary.start_ms, summary.model):
            return  # a late or re-delivered older window, or one of a model no longer judged, decides nothing
        previous = self.store.last_retrain_request(summary.plant, summary.line)
        status = retrain_due(recent, cfg, asked=previous)
        if status is None:
            return
        if previous is not None and (previous.model, previous.window_end_ms) == (summary.model, status.end_ms):
            return  # this check already asked (a re-delivery, or another gateway's summary of the window)
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
        # Asked first, recorded after: a request that was not sent is never taken for one that was (the summary is
        # delivered again and asks again). Two gateways' summaries of one hour handled at the same moment on two
        # shards may both ask: a second retraining of the line, which the registry judges like any other.
        if self.on_drift is not None:
            self.on_drift(request)
        self.store.record_retrain_request(request)
        self.requests += 1
