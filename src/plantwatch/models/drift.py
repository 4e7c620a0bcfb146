"""Drift of a model's anomaly scores: per-window histograms, PSI against the training distribution, a trigger.

Gateways (or the stream processor) summarise the scores of each window as a :class:`ScoreSummary` (20 equal
bins over [0, 1], the same bins as the training histogram in the model's metadata). The population
stability index, PSI = sum((p - q) ln(p / q)), compares a window's fractions p with the training fractions
q; by the usual reading, under 0.1 is stable, 0.1-0.25 a moderate shift, over 0.25 a significant one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np

from plantwatch.models.datasets import FloatArray
from plantwatch.models.forest import ForestModel
from plantwatch.models.trainer import SCORE_BINS

#: Fractions are floored at this before the logarithm (an empty bin would give an infinite PSI).
PSI_FLOOR: Final = 1e-4
DEFAULT_PSI_THRESHOLD: Final = 0.25


class ScoreSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The anomaly scores of one window of one line: counts per bin, and a few moments."""

    line: str
    start_ms: int
    end_ms: int
    counts: list[int]
    mean: float
    p99: float

    @property
    def total(self) -> int:
        """Scores in the window."""
        return sum(self.counts)


class DriftStatus(msgspec.Struct, frozen=True, kw_only=True):
    """PSI of one window against the training distribution, and whether it crossed the threshold."""

    line: str
    start_ms: int
    end_ms: int
    psi: float
    drifted: bool
    scores: int


def summarise_scores(line: str, start_ms: int, end_ms: int, scores: FloatArray) -> ScoreSummary:
    """Summarise one window's anomaly scores."""
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))
    return ScoreSummary(
        line=line,
        start_ms=start_ms,
        end_ms=end_ms,
        counts=[int(c) for c in counts],
        mean=float(scores.mean()) if len(scores) else 0.0,
        p99=float(np.quantile(scores, 0.99)) if len(scores) else 0.0,
    )


def psi(reference: Sequence[float], counts: Sequence[int]) -> float:
    """Population stability index of observed ``counts`` against ``reference`` fractions (same bins)."""
    if len(reference) != len(counts):
        raise ValueError(f"{len(counts)} bins observed, the reference has {len(reference)}")
    total = max(sum(counts), 1)
    out = 0.0
    for q, c in zip(reference, counts, strict=True):
        p, qf = max(c / total, PSI_FLOOR), max(q, PSI_FLOOR)
        out += (p - qf) * math.log(p / qf)
    return out


class DriftMonitor:
    """Compares window summaries with the model's training score histogram; says when to retrain.

    The reference comes from ``model`` or, where only a gateway's report is at hand, from ``reference``.
    """

    def __init__(
        self,
        model: ForestModel | None = None,
        *,
        reference: Sequence[float] | None = None,
        threshold: float = DEFAULT_PSI_THRESHOLD,
        min_scores: int = 500,
    ) -> None:
        if model is not None:
            reference = model.info.training.get("score_histogram")
            if not reference:
                raise ValueError(f"model {model.info.name} v{model.info.version} records no training score histogram")
        if not reference:
            raise ValueError("a drift monitor needs a model or a reference histogram")
        self.reference = [float(x) for x in reference]
        self.threshold = threshold
        self.min_scores = min_scores

    def check(self, summary: ScoreSummary) -> DriftStatus:
        """The window's PSI; ``drifted`` only with enough scores to mean something."""
        value = psi(self.reference, summary.counts)
        return DriftStatus(
            line=summary.line,
            start_ms=summary.start_ms,
            end_ms=summary.end_ms,
            psi=value,
            drifted=summary.total >= self.min_scores and value > self.threshold,
            scores=summary.total,
        )

    def should_retrain(self, statuses: Sequence[DriftStatus], *, consecutive: int = 3) -> bool:
        """True when the last ``consecutive`` windows all drifted (one noisy window does not retrain)."""
        recent = list(statuses)[-consecutive:]
        return len(recent) == consecutive and all(s.drifted for s in recent)


def merge_summaries(summaries: Sequence[ScoreSummary]) -> ScoreSummary:
    """One summary of consecutive windows of a line (for example the last 24 hourly ones: a whole daily cycle).

    Compare whole daily cycles with the training distribution: one hour of a plant with a daily rhythm
    differs from the week it was trained on without anything having drifted.
    """
    if not summaries:
        raise ValueError("nothing to merge")
    counts = np.sum([s.counts for s in summaries], axis=0)
    totals = np.array([s.total for s in summaries], dtype=np.float64)
    weight = totals / max(totals.sum(), 1.0)
    return ScoreSummary(
        line=summaries[0].line,
        start_ms=min(s.start_ms for s in summaries),
        end_ms=max(s.end_ms for s in summaries),
        counts=[int(c) for c in counts],
        mean=float(np.dot(weight, [s.mean for s in summaries])),
        p99=max(s.p99 for s in summaries),
    )
