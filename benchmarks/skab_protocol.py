"""SKAB's evaluation protocol (our re-implementation from the dataset README): data loading, pooled point-wise
F1/FAR/MAR, the NAB-style changepoint score, and the published Isolation Forest baseline to check them."""

from __future__ import annotations

import csv
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


@dataclass
class Nab:
    """NAB-style changepoint scoring summed over files: 60 s windows to the right of each true changepoint."""

    scores: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PROFILES, 0.0))
    null: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PROFILES, 0.0))
    perfect: float = 0.0
    missed: int = 0
    false_positives: int = 0
    changepoints: int = 0

    def add(self, cp_times: Sequence[int], detections: Sequence[int]) -> None:
        """Score one file: reward the first detection in each window, penalise misses and detections outside."""
        detections = sorted(detections)
        used_outside = [True] * len(detections)
        tp_reward = 0.0
        missed = 0
        for cp in cp_times:
            inside = [i for i, t in enumerate(detections) if cp <= t < cp + CP_WINDOW_MS]
            for i in inside:
                used_outside[i] = False
            if inside:
                position = (detections[inside[0]] - cp) / CP_WINDOW_MS - 1.0  # -1 at the window start, 0 at its end
                tp_reward += _scaled_sigmoid(position)
            else:
                missed += 1
        fps = sum(used_outside)
        for profile, (a_fp, a_fn) in PROFILES.items():
            self.scores[profile] += tp_reward + a_fp * fps + a_fn * missed
            self.null[profile] += a_fn * len(cp_times)
        self.perfect += float(len(cp_times))
        self.missed += missed
        self.false_positives += fps
        self.changepoints += len(cp_times)

    def normalised(self) -> dict[str, float]:
        """100 (S - S_null) / (S_perfect - S_null) per profile."""
        return {
            p: 100.0 * (self.scores[p] - self.null[p]) / (self.perfect - self.null[p]) if self.changepoints else 0.0
            for p in PROFILES
        }


def _scaled_sigmoid(position: float) -> float:
    """NAB's reward: 2/(1+e^(5y)) - 1 for y in [-1, 0], about 0.987 at the window start and 0 at its end."""
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


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
