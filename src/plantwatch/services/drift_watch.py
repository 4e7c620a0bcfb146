"""Drift in memory: keep each line's hourly score summaries, judge the last day, trigger retraining.

The platform itself judges from stored summaries with the same rule and no state (``services/drift_reports.py``,
so a Lambda and a restarted local platform agree); this tracker is that rule for one process.
:meth:`DriftTracker.status` gives one :class:`DriftStatus` per line, or None before a full day;
``on_drift`` (for example: start the retraining job for that line) is called once per drift episode, when
``consecutive`` daily checks in a row have drifted, and again only after a check that did not.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping

from plantwatch.models.drift import DriftMonitor, DriftStatus, ScoreSummary, merge_summaries

log = logging.getLogger(__name__)


class DriftTracker:
    """Rolling per-line drift over the last ``window`` summaries (24 hourly ones = one daily cycle)."""

    def __init__(
        self,
        monitors: Mapping[str, DriftMonitor],
        *,
        window: int = 24,
        consecutive: int = 3,
        on_drift: Callable[[str, DriftStatus], None] | None = None,
    ) -> None:
        self.monitors = dict(monitors)
        self.window = window
        self.consecutive = consecutive
        self.on_drift = on_drift
        self._summaries: dict[str, deque[ScoreSummary]] = {}
        self._history: dict[str, deque[DriftStatus]] = {}
        self._triggered: set[str] = set()

    def observe(self, summary: ScoreSummary) -> DriftStatus | None:
        """Add one line's summary; once a full window is held, check it (and maybe trigger retraining)."""
        monitor = self.monitors.get(summary.line)
        if monitor is None:
            return None
        held = self._summaries.setdefault(summary.line, deque(maxlen=self.window))
        held.append(summary)
        if len(held) < self.window:
            return None
        status = monitor.check(merge_summaries(list(held)))
        history = self._history.setdefault(summary.line, deque(maxlen=self.consecutive))
        history.append(status)
        if not status.drifted:
            self._triggered.discard(summary.line)
        elif (
            monitor.should_retrain(list(history), consecutive=self.consecutive) and summary.line not in self._triggered
        ):
            self._triggered.add(summary.line)
            log.warning("drift: retraining requested", extra={"line": summary.line, "psi": status.psi})
            if self.on_drift is not None:
                self.on_drift(summary.line, status)
        return status

    def status(self, line: str) -> DriftStatus | None:
        """The latest daily check of ``line``."""
        history = self._history.get(line)
        return history[-1] if history else None
