"""Drift checks of a line with several gateways: a check is a span of windows, not a count of summaries; every
gateway's summary of a window joins it, weighed by its scores; a model swap still starts a new series."""

from __future__ import annotations

from typing import Any

import msgspec

from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import ScoreSummaryMessage
from plantwatch.models.drift import psi
from plantwatch.services.drift_reports import DriftConfig, line_drift, retrain_due
from tests.helpers import BASELINE_REFERENCE, HEALTHY_COUNTS, SHIFTED_COUNTS, score_summary

REFERENCE, HEALTHY, SHIFTED = BASELINE_REFERENCE, HEALTHY_COUNTS, SHIFTED_COUNTS
MINUTE = 60_000
CONFIG = DriftConfig(window=2, consecutive=2, min_scores=10)


def message(
    window: int, counts: list[int], *, gateway: str = "gw-1", version: str = "1", **changes: Any
) -> ScoreSummaryMessage:
    model = ModelRef(name="m", version=version)
    summary = score_summary(
        counts, start_ms=window * MINUTE, end_ms=(window + 1) * MINUTE, model=model, gateway_id=gateway
    )
    return msgspec.structs.replace(summary, **changes)


def history(gateways: tuple[str, ...]) -> list[list[ScoreSummaryMessage]]:
    """Per window, each gateway's summary: 3 healthy windows, then 5 shifted ones."""
    return [[message(w, HEALTHY if w < 3 else SHIFTED, gateway=gw) for gw in gateways] for w in range(8)]


def due_windows(windows: list[list[ScoreSummaryMessage]]) -> list[int]:
    """The windows whose arrival asks for retraining, replayed as the ingest does (the last window + run's)."""
    span = CONFIG.window + CONFIG.consecutive
    return [w for w in range(len(windows)) if retrain_due([s for ss in windows[: w + 1][-span:] for s in ss], CONFIG)]


def test_two_gateways_ask_at_the_same_window_as_one() -> None:
    # the checks ending at windows 3 and 4 drift: asked once, at 4, whether one gateway reports or two
    assert due_windows(history(("gw-1",))) == [4]
    assert due_windows(history(("gw-1", "gw-2"))) == [4]
    assert due_windows(history(("gw-1", "gw-2", "gw-3"))) == [4]


def test_a_check_merges_every_gateway_of_its_windows_weighed_by_scores() -> None:
    # gateway 2 saw three times as many scores in the latest window, all shifted
    held = [message(0, HEALTHY), message(1, HEALTHY), message(1, [3 * c for c in SHIFTED], gateway="gw-2")]
    found = line_drift(held, CONFIG)
    assert found is not None
    assert (found.windows, found.complete, found.start_ms, found.end_ms) == (2, True, 0, 2 * MINUTE)
    assert found.scores == 2 * sum(HEALTHY) + 3 * sum(SHIFTED)
    merged = [2 * h + 3 * s for h, s in zip(HEALTHY, SHIFTED, strict=True)]
    assert found.psi == round(psi(REFERENCE, merged), 6)


def test_a_check_spans_windows_not_summaries() -> None:
    # four summaries of the latest window and one of the window before: two windows, the older one included
    held = [message(0, SHIFTED), *(message(1, HEALTHY, gateway=f"gw-{i}") for i in range(4))]
    found = line_drift(held, CONFIG)
    assert found is not None
    assert (found.windows, found.complete, found.start_ms, found.scores) == (
        2,
        True,
        0,
        4 * sum(HEALTHY) + sum(SHIFTED),
    )
    # a window nobody reported leaves a gap: the check ending at window 2 holds window 2 alone, not window 0
    gap = [message(0, HEALTHY), message(0, HEALTHY, gateway="gw-2"), message(2, HEALTHY)]
    found = line_drift(gap, CONFIG)
    assert found is not None
    assert (found.windows, found.complete, found.start_ms) == (1, False, 2 * MINUTE)
    assert retrain_due(gap, CONFIG) is None


def test_summaries_of_another_model_are_not_merged() -> None:
    # gateway 2 already runs version 2 in window 1 while gateway 1 still runs version 1
    held = [
        message(0, SHIFTED),
        message(0, SHIFTED, gateway="gw-2"),
        message(1, SHIFTED),
        message(1, HEALTHY, gateway="gw-2", version="2"),
    ]
    found = line_drift(held, CONFIG)
    assert found is not None
    assert (found.model.version, found.windows, found.scores, found.complete) == ("2", 1, sum(HEALTHY), False)
    assert retrain_due(held, CONFIG) is None  # a new model's series starts afresh


def test_a_version_of_digits_other_than_ascii_is_ordered_not_parsed() -> None:
    # "²".isdigit() is True, and int("²") raises: a gateway naming its model so must not break the line's drift
    windows = [message(w, HEALTHY, version="²") for w in range(3)] + [message(3, HEALTHY, version="1")]
    windows.append(message(3, HEALTHY, gateway="gw-2", version="²"))
    found = line_drift(windows, CONFIG)
    assert found is not None
    assert found.model.version == "1"
