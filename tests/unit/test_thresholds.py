"""Threshold scoring: the original design's limits, configured operating limits, and reasons."""

from __future__ import annotations

import pytest

from plantwatch.domain.thresholds import ORIGINAL_THRESHOLDS, Band, ThresholdScorer
from tests.helpers import reading


@pytest.mark.parametrize(
    ("sensor_type", "value", "anomaly"),
    [
        ("temperature", 10.0, False),
        ("temperature", 80.0, False),
        ("temperature", 9.99, True),
        ("temperature", 80.01, True),
        ("vibration", 0.0, False),
        ("vibration", 100.0, False),
        ("vibration", 100.5, True),
        ("vibration", -0.1, True),
        ("pressure", 200.0, False),
        ("pressure", 200.1, True),
        ("pressure", -1.0, True),
        ("humidity", 1e6, False),  # no threshold known for the type: nothing to flag
    ],
)
def test_original_thresholds_flag_only_values_outside(sensor_type: str, value: float, anomaly: bool) -> None:
    scored = ThresholdScorer().score(reading(value=value, sensor_type=sensor_type))
    assert scored.anomaly is anomaly
    assert (scored.score > 0) is anomaly
    assert bool(scored.reasons) is anomaly


def test_original_thresholds_are_the_documented_ones() -> None:
    assert {k: (b.low, b.high) for k, b in ORIGINAL_THRESHOLDS.items()} == {
        "temperature": (10.0, 80.0),
        "vibration": (0.0, 100.0),
        "pressure": (0.0, 200.0),
    }


def test_reasons_name_which_limit_flagged_the_reading() -> None:
    scorer = ThresholdScorer(limits={"temperature": Band(low=30.0, high=70.0)})
    assert scorer.score(reading(value=75.0)).reasons == ("limit.high",)
    assert scorer.score(reading(value=85.0)).reasons == ("threshold.high", "limit.high")
    assert scorer.score(reading(value=5.0)).reasons == ("threshold.low", "limit.low")
    assert scorer.score(reading(value=50.0)).reasons == ()


def test_score_grows_with_the_excess_and_is_capped_at_one() -> None:
    scorer = ThresholdScorer()
    scores = [scorer.score(reading(value=v)).score for v in (81.0, 100.0, 200.0, 1e9)]
    assert scores == sorted(scores)
    assert 0.5 < scores[0] < scores[-1] == 1.0


def test_half_open_bands() -> None:
    scorer = ThresholdScorer(thresholds={}, limits={"vibration": Band(high=60.0)})
    assert not scorer.score(reading(value=-1e9, sensor_type="vibration")).anomaly
    assert scorer.score(reading(value=61.0, sensor_type="vibration")).reasons == ("limit.high",)
