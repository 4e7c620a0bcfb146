"""SKAB's evaluation protocol (our re-implementation from the dataset README): data loading, pooled point-wise
F1/FAR/MAR, the NAB-style changepoint score, and the published Isolation Forest baseline to check them."""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
GROUPS = ("valve1", "valve2", "other")
TRAIN_ROWS = 400
CP_WINDOW_MS = 60_000
#: (A_fp, A_fn) per NAB profile; A_tp = 1.
PROFILES = {"standard": (-0.11, -1.0), "low_fp": (-0.22, -1.0), "low_fn": (-0.11, -2.0)}

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SkabFile:
    """One labelled experiment: times, the 8 sensor columns, and the two label columns."""

    name: str
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    anomaly: BoolArray
    changepoint: BoolArray


def load(path: Path, name: str) -> SkabFile:
    """Read one SKAB CSV (';'-separated, datetime index)."""
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader)
        rows = list(reader)
    cols = {c: i for i, c in enumerate(header)}
    ts = np.array([int(datetime.fromisoformat(r[0]).timestamp() * 1000) for r in rows], dtype=np.int64)
    values = np.array([[float(r[cols[s]]) for s in SENSORS] for r in rows], dtype=np.float64)
    labelled = "anomaly" in cols  # anomaly-free/ has no label columns: every point is normal
    return SkabFile(
        name=name,
        ts_ms=ts,
        values=values,
        anomaly=np.array([labelled and float(r[cols["anomaly"]]) > 0 for r in rows], dtype=bool),
        changepoint=np.array([labelled and float(r[cols["changepoint"]]) > 0 for r in rows], dtype=bool),
    )


def load_group(root: Path, group: str) -> list[SkabFile]:
    """Every labelled file of a group, in numeric order."""
    paths = sorted((root / group).glob("*.csv"), key=lambda p: int(p.stem))
    return [load(p, f"{group}/{p.name}") for p in paths]


@dataclass
class Counts:
    """Pooled point-wise confusion counts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: BoolArray, actual: BoolArray) -> None:
        """Add one file's test part."""
        self.tp += int((predicted & actual).sum())
        self.fp += int((predicted & ~actual).sum())
        self.fn += int((~predicted & actual).sum())
        self.tn += int((~predicted & ~actual).sum())

    def metrics(self) -> dict[str, float]:
        """F1 = TP/(TP+(FP+FN)/2), FAR and MAR in %."""
        return {
            "f1": self.tp / max(self.tp + (self.fp + self.fn) / 2, 1e-12),
            "far_pct": 100.0 * self.fp / max(self.fp + self.tn, 1),
            "mar_pct": 100.0 * self.fn / max(self.fn + self.tp, 1),
        }


#: Points of the discretised reward curve across a window (the upstream scorer's resolution).
REWARD_STEPS = 1000


@dataclass
class Nab:
    """NAB-style changepoint scoring summed over files, as SKAB's leaderboard computes it.

    Each true changepoint opens a window ``[cp, cp + 60 s]`` (both ends included); where windows overlap, the
    later one starts where the earlier one ends. The first detection in a window earns a reward that falls
    from A_tp = 1 at the window's start to A_fp at its end (a tanh curve sampled at 1,000 points, see
    :func:`reward`); later detections in the window count for nothing. Each detection outside every window
    costs A_fp, each window without a detection A_fn. Normalised as 100 (S - S_null) / (S_perfect - S_null),
    S_null = A_fn and S_perfect = A_tp per window.
    """

    scores: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PROFILES, 0.0))
    null: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PROFILES, 0.0))
    perfect: float = 0.0
    missed: int = 0
    false_positives: int = 0
    changepoints: int = 0

    def add(self, cp_times: Sequence[int], detections: Sequence[int]) -> None:
        """Score one file: reward the first detection in each window, penalise misses and detections outside."""
        times = sorted(detections)
        windows = [[cp, cp + CP_WINDOW_MS] for cp in sorted(cp_times)]
        for left, right in itertools.pairwise(windows):
            if left[1] >= right[0]:
                right[0] = left[1]
        positions: list[float | None] = []
        for start, end in windows:
            first = next((t for t in times if start <= t <= end), None)
            positions.append(None if first is None else (first - start) / (end - start) if end > start else 0.0)
        outside = sum(1 for t in times if not any(start <= t <= end for start, end in windows))
        missed = positions.count(None)
        for profile, (a_fp, a_fn) in PROFILES.items():
            earned = sum(reward(pos, a_fp) for pos in positions if pos is not None)
            self.scores[profile] += earned + a_fp * outside + a_fn * missed
            self.null[profile] += a_fn * len(windows)
        self.perfect += float(len(windows))
        self.missed += missed
        self.false_positives += outside
        self.changepoints += len(windows)

    def normalised(self) -> dict[str, float]:
        """100 (S - S_null) / (S_perfect - S_null) per profile."""
        return {
            p: 100.0 * (self.scores[p] - self.null[p]) / (self.perfect - self.null[p]) if self.changepoints else 0.0
            for p in PROFILES
        }


def reward(position: float, a_fp: float, a_tp: float = 1.0) -> float:
    """The reward of a first detection at ``position`` (0 at the window's start, 1 at its end): the tanh curve
    from A_tp down to A_fp, sampled at :data:`REWARD_STEPS` points as the upstream scorer samples it."""
    step = min(int(position * REWARD_STEPS), REWARD_STEPS - 1)
    x = -math.pi / 2 + math.pi * step / (REWARD_STEPS - 1)
    return (a_tp - a_fp) / 2 * (1.0 - math.tanh(x) / math.tanh(math.pi / 2)) + a_fp


def edges(active: BoolArray, ts_ms: npt.NDArray[np.int64]) -> list[int]:
    """Times where ``active`` switches on or off (predicted changepoints)."""
    change = np.flatnonzero(np.diff(active.astype(np.int8)) != 0) + 1
    return [int(ts_ms[i]) for i in change]


def trailing(flags: npt.NDArray[np.float64], n: int, how: str) -> npt.NDArray[np.float64]:
    """Trailing n-point median or max (the first n-1 points are 0, as a NaN filled with 0)."""
    out = np.zeros(len(flags))
    if len(flags) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(flags, n)
        out[n - 1 :] = np.median(windows, axis=1) if how == "median" else windows.max(axis=1)
    return out


def published_isolation_forest(files: Sequence[SkabFile]) -> tuple[Counts, Nab]:
    """The leaderboard's Isolation Forest baseline (to check this protocol code reproduces its figures)."""
    from sklearn.ensemble import IsolationForest

    counts, nab = Counts(), Nab()
    for f in files:
        model = IsolationForest(random_state=0, contamination=0.0005).fit(f.values[:TRAIN_ROWS])
        raw = (model.predict(f.values[TRAIN_ROWS:]) == -1).astype(np.float64)
        flags = trailing(raw, 3, "median")
        flags[:2] = 0
        counts.add(flags > 0, f.anomaly[TRAIN_ROWS:])
        ts = f.ts_ms[TRAIN_ROWS:]
        cps = [int(t) for t in ts[f.changepoint[TRAIN_ROWS:]]]
        nab.add(cps, edges(trailing(flags, 30, "max") > 0, ts))
    return counts, nab
