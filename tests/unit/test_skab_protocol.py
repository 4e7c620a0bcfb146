"""SKAB's scoring as re-implemented in benchmarks/skab_protocol.py: pooled point-wise counts and the NAB score."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from skab_protocol import PROFILES, SENSORS, Counts, Nab, edges, load, reward, trailing


def test_pooled_f1_far_mar_follow_the_readme_formulas() -> None:
    counts = Counts()
    counts.add(np.array([1, 1, 0, 0], dtype=bool), np.array([1, 0, 1, 0], dtype=bool))
    counts.add(np.array([1, 0], dtype=bool), np.array([1, 1], dtype=bool))
    # TP 2, FP 1, FN 2, TN 1
    assert counts.metrics() == pytest.approx({"f1": 2 / (2 + 1.5), "far_pct": 50.0, "mar_pct": 50.0})


def test_always_anomalous_scores_f1_but_full_far() -> None:
    actual = np.array([1] * 537 + [0] * 463, dtype=bool)
    counts = Counts()
    counts.add(np.ones(1000, dtype=bool), actual)
    assert counts.metrics()["f1"] == pytest.approx(0.70, abs=0.005)
    assert counts.metrics()["far_pct"] == 100.0


def test_nab_rewards_early_detections_and_penalises_misses_and_false_positives() -> None:
    perfect, late, none, noisy = Nab(), Nab(), Nab(), Nab()
    perfect.add([0, 100_000], [0, 100_000])
    late.add([0, 100_000], [50_000, 150_000])
    none.add([0, 100_000], [])
    noisy.add([0, 100_000], [0, 100_000, 70_000, 90_000])  # two detections outside every window
    assert none.normalised() == pytest.approx(dict.fromkeys(none.normalised(), 0.0))
    assert perfect.normalised()["standard"] > late.normalised()["standard"] > 0
    assert noisy.false_positives == 2
    assert noisy.normalised()["low_fp"] < noisy.normalised()["standard"] < perfect.normalised()["standard"]
    assert none.missed == 2


def test_the_reward_falls_from_a_tp_at_the_window_start_to_a_fp_at_its_end() -> None:
    for a_fp, _ in PROFILES.values():
        assert reward(0.0, a_fp) == pytest.approx(1.0)
        assert reward(1.0, a_fp) == pytest.approx(a_fp)  # the window's end is inside it, at the lowest reward
        assert reward(0.5, a_fp) == pytest.approx((1.0 + a_fp) / 2, abs=2e-3)  # tanh is odd: the middle is halfway
        assert reward(0.25, a_fp) > reward(0.5, a_fp) > reward(0.75, a_fp)


def test_one_detection_at_each_window_start_scores_100_and_at_each_end_scores_a_fp() -> None:
    early, at_end = Nab(), Nab()
    early.add([0, 100_000], [0, 100_000])
    at_end.add([0, 100_000], [60_000, 160_000])
    assert early.normalised() == pytest.approx(dict.fromkeys(PROFILES, 100.0))
    # S = 2 a_fp, S_null = 2 a_fn, S_perfect = 2: 100 (a_fp - a_fn) / (1 - a_fn)
    expected = {p: 100 * (a_fp - a_fn) / (1 - a_fn) for p, (a_fp, a_fn) in PROFILES.items()}
    assert at_end.normalised() == pytest.approx(expected)
    assert at_end.missed == 0 and at_end.false_positives == 0


def test_overlapping_windows_are_cut_so_one_detection_serves_only_the_earlier_one() -> None:
    nab = Nab()
    nab.add([0, 30_000], [45_000])  # windows [0, 60 s] and [60 s, 90 s]: 45 s lies in the first only
    assert (nab.missed, nab.false_positives, nab.changepoints) == (1, 0, 2)
    a_fp, a_fn = PROFILES["standard"]
    assert nab.scores["standard"] == pytest.approx(reward(0.75, a_fp) + a_fn)
    shared = Nab()  # both windows include their shared point: a detection there serves both, as upstream
    shared.add([0, 30_000], [60_000])
    assert (shared.missed, shared.false_positives) == (0, 0)
    assert shared.scores["standard"] == pytest.approx(reward(1.0, a_fp) + reward(0.0, a_fp))


def test_edges_and_trailing_windows() -> None:
    ts = np.arange(6, dtype=np.int64) * 1000
    assert edges(np.array([0, 1, 1, 0, 0, 1], dtype=bool), ts) == [1000, 3000, 5000]
    flags = np.array([1, 0, 1, 1, 0, 0], dtype=np.float64)
    np.testing.assert_array_equal(trailing(flags, 3, "median"), [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(trailing(flags, 2, "max"), [0, 1, 1, 1, 1, 0])


def test_a_file_without_label_columns_loads_as_all_normal(tmp_path: Path) -> None:
    header = ";".join(["datetime", *SENSORS])
    rows = [f"2020-02-08 13:30:4{i};" + ";".join(str(i + k) for k in range(len(SENSORS))) for i in range(3)]
    labelled = [f"{r};{a};{c}" for r, a, c in zip(rows, (0.0, 1.0, 1.0), (0.0, 1.0, 0.0), strict=True)]
    (tmp_path / "free.csv").write_text("\n".join([header, *rows]) + "\n")
    (tmp_path / "fault.csv").write_text("\n".join([header + ";anomaly;changepoint", *labelled]) + "\n")
    free, fault = load(tmp_path / "free.csv", "free"), load(tmp_path / "fault.csv", "fault")
    assert free.values.shape == (3, len(SENSORS)) and free.values[2, 1] == 3.0
    assert not free.anomaly.any() and not free.changepoint.any()
    assert fault.anomaly.tolist() == [False, True, True] and fault.changepoint.tolist() == [False, True, False]
    assert np.array_equal(free.values, fault.values) and int(free.ts_ms[1] - free.ts_ms[0]) == 1000
