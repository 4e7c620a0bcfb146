"""Threshold scoring: the original design's hard limits plus a plant's own configured operating limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from plantwatch.contract.batch import ModelRef
from plantwatch.contract.reading import Reading, ScoredReading


class Band(msgspec.Struct, frozen=True, kw_only=True):
    """An allowed range; a value strictly outside it is anomalous. ``None`` leaves a side open."""

    low: float | None = None
    high: float | None = None

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the band (bounds included)."""
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def excess(self, value: float) -> float:
        """How far ``value`` lies outside the band (0 inside)."""
        if self.low is not None and value < self.low:
            return self.low - value
        if self.high is not None and value > self.high:
            return value - self.high
        return 0.0

    @property
    def width(self) -> float:
        """The band's width, or 1 for a half-open band."""
        if self.low is None or self.high is None:
            return 1.0
        return max(self.high - self.low, 1e-9)


#: The original design's thresholds: outside is anomalous.
ORIGINAL_THRESHOLDS: Final[Mapping[str, Band]] = {
    "temperature": Band(low=10.0, high=80.0),
    "vibration": Band(low=0.0, high=100.0),
    "pressure": Band(low=0.0, high=200.0),
}

THRESHOLD_MODEL: Final = ModelRef(name="original-thresholds", version="1")


class ThresholdScorer:
    """Scores readings against the original thresholds and optional per-sensor-type operating limits.

    Score is 0 inside every band, and 0.5 plus half the relative excess (capped at 1) outside, so higher is
    more anomalous. Reasons: ``threshold.low``/``threshold.high`` (original), ``limit.low``/``limit.high``.
    """

    def __init__(
        self,
        *,
        thresholds: Mapping[str, Band] = ORIGINAL_THRESHOLDS,
        limits: Mapping[str, Band] | None = None,
    ) -> None:
        self.thresholds = dict(thresholds)
        self.limits = dict(limits or {})

    def score(self, reading: Reading) -> ScoredReading:
        """Score one reading."""
        value, sensor_type = reading.value, reading.sensor_type
        threshold, limit = self.thresholds.get(sensor_type), self.limits.get(sensor_type)
        if (threshold is None or threshold.contains(value)) and (limit is None or limit.contains(value)):
            return ScoredReading(reading=reading, score=0.0, anomaly=False)  # the usual case, kept cheap
        reasons: list[str] = []
        score = 0.0
        for prefix, bands in (("threshold", self.thresholds), ("limit", self.limits)):
            band = bands.get(reading.sensor_type)
            if band is None:
                continue
            excess = band.excess(reading.value)
            if excess > 0:
                side = "low" if band.low is not None and reading.value < band.low else "high"
                reasons.append(f"{prefix}.{side}")
                score = max(score, 0.5 + 0.5 * min(1.0, excess / band.width))
        return ScoredReading(reading=reading, score=score, anomaly=bool(reasons), reasons=tuple(reasons))

    def score_many(self, readings: Iterable[Reading]) -> list[ScoredReading]:
        """Score readings in order."""
        return [self.score(reading) for reading in readings]
