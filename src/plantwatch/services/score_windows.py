"""Per-window score summaries on the gateway: the forest's scores of each line, cut into event-time windows.

Windows are aligned to multiples of ``window_ms`` of event time (an hour by default). A window is closed,
and its summary handed out, once a score of a later window has arrived for the gateway. Windows still open
when the gateway stops are kept (:meth:`ScoreWindows.snapshot`, stored in the spool; the gateway also keeps
them every minute and with each closed window's summary) and continued after the next start
(:meth:`ScoreWindows.restore`), so a restart, such as a model rollout, or a crash neither loses an hour of drift
evidence nor sends a mislabelled partial summary. Scores of a model swapped in mid-window go to a summary of
their own, against that model's reference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

import msgspec
import numpy as np

from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import SUMMARY_BINS, ScoreSummaryMessage
from plantwatch.models.drift import summarise_scores
from plantwatch.models.forest import ForestModel

log = logging.getLogger(__name__)

DEFAULT_SUMMARY_WINDOW_MS: Final = 3_600_000


class _OpenWindow(msgspec.Struct, frozen=True):
    start_ms: int
    line: str
    model: ModelRef
    #: the window's scores so far, float64 little-endian
    scores: bytes


class _WindowsState(msgspec.Struct, frozen=True):
    window_ms: int
    watermark_ms: int
    references: list[tuple[ModelRef, list[float]]]
    windows: list[_OpenWindow]


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_WindowsState)


class ScoreWindows:
    """Collects (line, event time, score) per model and hands out a summary per closed window, line and model."""

    def __init__(self, *, gateway_id: str, plant: str, window_ms: int = DEFAULT_SUMMARY_WINDOW_MS) -> None:
        if window_ms <= 0:
            raise ValueError(f"summary window must be positive, got {window_ms} ms")
        self.gateway_id = gateway_id
        self.plant = plant
        self.window_ms = window_ms
        self._scores: dict[tuple[int, str, ModelRef], list[float]] = {}
        self._references: dict[ModelRef, list[float]] = {}
        self._refused: set[ModelRef] = set()
        self._watermark_ms = -1

    def add(self, model: ForestModel, scores: Iterable[tuple[str, int, float]]) -> None:
        """Take one scoring call's forest scores; a model without a training histogram is skipped (logged once)."""
        ref = model.ref
        if ref not in self._references:
            reference = model.info.training.get("score_histogram")
            if not reference or len(reference) != SUMMARY_BINS:
                if ref not in self._refused:
                    self._refused.add(ref)
                    log.warning(
                        "model %s %s has no training score histogram: no drift summaries", ref.name, ref.version
                    )
                return
            self._references[ref] = [float(q) for q in reference]
        window = self.window_ms
        for line, ts_ms, score in scores:
            start = ts_ms - ts_ms % window
            self._scores.setdefault((start, line, ref), []).append(score)
            self._watermark_ms = max(self._watermark_ms, ts_ms)

    def closed(self) -> list[ScoreSummaryMessage]:
        """Summaries of every window that ended at or before the latest event time seen, oldest first.

        The windows stay until :meth:`release` (once their summaries are stored): a failed write hands the same
        summaries out again, with any score added meanwhile."""
        done = sorted(
            (k for k in self._scores if k[0] + self.window_ms <= self._watermark_ms),
            key=lambda k: (k[0], k[1], k[2].version),
        )
        out = []
        for key in done:
            start, line, ref = key
            values = np.asarray(self._scores[key], dtype=np.float64)
            summary = summarise_scores(line, start, start + self.window_ms, values)
            out.append(
                ScoreSummaryMessage(
                    gateway_id=self.gateway_id,
                    plant=self.plant,
                    line=line,
                    model=ref,
                    start_ms=summary.start_ms,
                    end_ms=summary.end_ms,
                    counts=summary.counts,
                    mean=round(summary.mean, 6),
                    p99=round(summary.p99, 6),
                    reference=self._references[ref],
                )
            )
        return out

    def release(self, summaries: Iterable[ScoreSummaryMessage]) -> None:
        """Forget the windows of stored summaries (from :meth:`closed`): each window is summarised once."""
        for key in _keys(summaries):
            del self._scores[key]

    def snapshot(self, *, without: Iterable[ScoreSummaryMessage] = ()) -> bytes:
        """The open windows' scores and references, to continue them after a restart; ``without`` leaves out
        the windows of summaries about to be stored in the same transaction."""
        left_out = set(_keys(without))
        return _encoder.encode(
            _WindowsState(
                window_ms=self.window_ms,
                watermark_ms=self._watermark_ms,
                references=list(self._references.items()),
                windows=[
                    _OpenWindow(start, line, ref, np.asarray(values, dtype="<f8").tobytes())
                    for (start, line, ref), values in self._scores.items()
                    if (start, line, ref) not in left_out
                ],
            )
        )

    def restore(self, state: bytes) -> int:
        """Continue the windows of a snapshot (before any new score); returns how many scores it held.

        A snapshot taken with another window length is ignored (logged): its windows would be cut wrongly.
        """
        if self._scores:
            raise RuntimeError("restore score windows before adding scores")
        snap = _decoder.decode(state)
        if snap.window_ms != self.window_ms:
            log.warning(
                "score windows kept with a %d ms window, now %d ms: not continued", snap.window_ms, self.window_ms
            )
            return 0
        self._watermark_ms = max(self._watermark_ms, snap.watermark_ms)
        self._references.update({ref: list(reference) for ref, reference in snap.references})
        for w in snap.windows:
            self._scores[(w.start_ms, w.line, w.model)] = np.frombuffer(w.scores, dtype="<f8").tolist()
        return sum(len(w.scores) // 8 for w in snap.windows)


def _keys(summaries: Iterable[ScoreSummaryMessage]) -> list[tuple[int, str, ModelRef]]:
    return [(s.start_ms, s.line, s.model) for s in summaries]
