"""SKAB's scoring as re-implemented in benchmarks/skab_protocol.py: pooled point-wise counts and the NAB score."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from skab_protocol import SENSORS, Counts, Nab, edges, load, trailing


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
