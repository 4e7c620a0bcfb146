"""Evaluation reports: JSON with every number, and a PNG of score distributions and the ROC curve (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from plantwatch.models.datasets import FloatArray
from plantwatch.models.evaluation import ScoredAssets
from plantwatch.models.pipeline import Outcome, summarise


def outcome_report(outcome: Outcome) -> dict[str, Any]:
    """Everything worth keeping about a training run: policy, validation, test and the forest alone."""
    return {
        "policy": msgspec.to_builtins(outcome.policy),
        "validation": msgspec.to_builtins(outcome.validation),
        "test": msgspec.to_builtins(outcome.test),
        "test_forest_only": msgspec.to_builtins(outcome.forest_only),
        "summary": {
            "test": summarise(outcome.test),
            "test_forest_only": summarise(outcome.forest_only),
        },
        "models": {
            name: {"version": m.info.version, "threshold": m.info.threshold, "training": m.info.training}
            for name, m in outcome.models.items()
        },
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write a report as indented, key-sorted JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report, order="sorted")) + b"\n")


def roc_curve(scores: FloatArray, labels: np.ndarray[Any, np.dtype[np.bool_]]) -> tuple[FloatArray, FloatArray]:
    """False- and true-positive rates at every distinct score threshold (highest first)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) > 1 else np.empty(0, dtype=np.int64)
    idx = np.concatenate([distinct, [len(s) - 1]])
    tps = np.cumsum(y)[idx].astype(np.float64)
    fps = (idx + 1 - tps).astype(np.float64)
    tpr = np.concatenate([[0.0], tps / max(tps[-1], 1.0)])
    fpr = np.concatenate([[0.0], fps / max(fps[-1], 1.0)])
    return fpr, tpr


def plot_scores(scored: ScoredAssets, threshold: float, path: Path, *, title: str) -> None:
    """Histogram of healthy vs faulty window scores with the threshold, and the ROC curve, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.concatenate(scored.scores)
    labels = np.concatenate([a.faulty for a in scored.assets])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(float(scores.min()), float(scores.max()), 80)
    left.hist(scores[~labels], bins=bins, density=True, alpha=0.6, label="healthy windows")
    left.hist(scores[labels], bins=bins, density=True, alpha=0.6, label="fault active")
    left.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    left.set_xlabel("forest anomaly score (higher = more anomalous)")
    left.set_ylabel("density")
    left.legend()
    fpr, tpr = roc_curve(scores, labels)
    auc = float(np.trapezoid(tpr, fpr))
    right.plot(fpr, tpr, label=f"forest, AUC {auc:.3f}")
    right.plot([0, 1], [0, 1], color="grey", linestyle=":")
    right.set_xlabel("false-positive rate")
    right.set_ylabel("true-positive rate")
    right.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
