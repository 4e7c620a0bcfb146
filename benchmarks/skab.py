"""SKAB (Skoltech Anomaly Benchmark) with plantwatch's own detector: the gateway's feature windows, forest and
decision, then the alert lifecycle's debounce, under SKAB's protocol (one model per file, fitted on its first
400 rows, tested on the rest). Every parameter is chosen on valve1/ only; valve2/, other/ and all files are
reported with it. The data (GPL-3.0) stays outside the repository.

    python benchmarks/skab.py [DATA_DIR] [--out docs/skab]    # DATA_DIR defaults to ../shared/datasets/skab
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from skab_protocol import (
    GROUPS,
    SENSORS,
    TRAIN_ROWS,
    Counts,
    Nab,
    SkabFile,
    edges,
    load_group,
    published_isolation_forest,
)

from plantwatch.domain.features import FeatureSpec, bulk_features
from plantwatch.models.evaluation import alert_runs
from plantwatch.models.forest import ForestModel
from plantwatch.models.training import train_forest

log = logging.getLogger("skab")
REPO = Path(__file__).resolve().parents[1]
#: FAR allowed on valve1/ when choosing: half the target's 10 %, leaving room for other operating points.
FAR_BUDGET_PCT = 5.0
PUBLISHED = {
    "Isolation forest (published)": {"f1": 0.29, "far_pct": 2.56, "mar_pct": 82.89, "nab_standard": 26.16},
    "Conv-AE (published, best F1)": {"f1": 0.78, "far_pct": 13.55, "mar_pct": 28.02},
    "MSET (published)": {"f1": 0.78, "far_pct": 39.73, "mar_pct": 14.13},
    "T-squared+Q (published)": {"f1": 0.76, "far_pct": 26.62, "mar_pct": 24.92},
}
SENSOR_SETS = {
    "all": SENSORS,
    "no-temperatures": tuple(s for s in SENSORS if s not in ("Temperature", "Thermocouple")),
    "hydraulic+motor": ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Volume Flow RateRMS"),
}


@dataclass(frozen=True)
class Params:
    """The detector's parameters (chosen on valve1/)."""

    sensors: str = "all"
    window: int = 10
    #: threshold = margin x the largest anomaly score on the file's own training windows
    margin: float = 1.0
    raise_after: int = 1
    clear_after: int = 1
    n_estimators: int = 100
    #: "auto" (scikit-learn's min(256, rows)) or "all" (every training window: a file has only ~390)
    max_samples: str = "auto"
    seed: int = 0


def scores_for(f: SkabFile, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Forest anomaly scores of the training windows and of every test point (features as on the gateway)."""
    names = SENSOR_SETS[p.sensors]
    spec = FeatureSpec(sensor_types=tuple(n.replace(" ", "_") for n in names), window=p.window, waveform_types=())
    columns = {spec.sensor_types[i]: f.values[:, SENSORS.index(n)] for i, n in enumerate(names)}
    rows = bulk_features(spec, f.ts_ms, columns)  # row k = window ending at point k + window - 1
    split = TRAIN_ROWS - p.window + 1
    max_samples: str | float = 1.0 if p.max_samples == "all" else p.max_samples
    model: ForestModel = train_forest(
        rows[:split], spec, n_estimators=p.n_estimators, max_samples=max_samples, seed=p.seed, name=f.name
    )
    return model.anomaly_score(rows[:split]), model.anomaly_score(rows[split:])


def decide(train_scores: np.ndarray, test_scores: np.ndarray, p: Params) -> np.ndarray:
    """Anomalous test points: the alert-lifecycle state (raised after N, cleared after M) of score > threshold."""
    flags = test_scores > p.margin * float(train_scores.max())
    active = np.zeros(len(flags), dtype=bool)
    for start, end in alert_runs(flags, p.raise_after, p.clear_after):
        active[start : len(flags) if end is None else end] = True
    return active


Cache = dict[tuple[object, ...], tuple[np.ndarray, np.ndarray]]


def run(files: list[SkabFile], p: Params, cache: Cache) -> dict[str, float]:
    """Pooled F1/FAR/MAR and NAB for one parameter set over ``files``."""
    counts, nab = Counts(), Nab()
    for f in files:
        key = (f.name, p.sensors, p.window, p.n_estimators, p.max_samples, p.seed)
        if key not in cache:
            cache[key] = scores_for(f, p)
        active = decide(*cache[key], p)
        counts.add(active, f.anomaly[TRAIN_ROWS:])
        ts = f.ts_ms[TRAIN_ROWS:]
        nab.add([int(t) for t in ts[f.changepoint[TRAIN_ROWS:]]], edges(active, ts))
    norm = nab.normalised()
    return {
        **counts.metrics(),
        "nab_standard": norm["standard"],
        "nab_low_fp": norm["low_fp"],
        "nab_low_fn": norm["low_fn"],
        "missed_cps": nab.missed,
        "false_cps": nab.false_positives,
    }


def choose(valve1: list[SkabFile], cache: Cache, max_samples: str) -> tuple[Params, list[dict[str, object]]]:
    """The best F1 on valve1/ among parameter sets with FAR <= FAR_BUDGET there (ties: lower FAR)."""
    grid = itertools.product(
        SENSOR_SETS, (5, 10, 20, 40, 60), (0.95, 0.98, 1.0, 1.02, 1.05), (1, 3, 5, 10), (1, 10, 30, 60, 120)
    )
    trials: list[dict[str, object]] = []
    for sensors, window, margin, n, m in grid:
        p = Params(sensors=sensors, window=window, margin=margin, raise_after=n, clear_after=m, max_samples=max_samples)
        trials.append({"params": asdict(p), **run(valve1, p, cache)})
    ok = [t for t in trials if float(t["far_pct"]) <= FAR_BUDGET_PCT]  # type: ignore[arg-type]
    best = max(ok or trials, key=lambda t: (float(t["f1"]), -float(t["far_pct"])))  # type: ignore[arg-type]
    return Params(**best["params"]), trials  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Choose parameters on valve1/, report every group and all files, and write JSON + PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(REPO.parent / "shared" / "datasets" / "skab"))
    parser.add_argument("--out", default=str(REPO / "docs" / "skab"))
    parser.add_argument("--max-samples", choices=["auto", "all"], default="auto", help="rows per tree")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root, out = Path(args.data), Path(args.out)
    groups = {g: load_group(root, g) for g in GROUPS}
    cache: Cache = {}
    params, trials = choose(groups["valve1"], cache, args.max_samples)
    log.info("chosen on valve1/: %s", params)
    results = {g: run(files, params, cache) for g, files in groups.items()}
    everything = [f for files in groups.values() for f in files]
    results["all"] = run(everything, params, cache)
    counts, nab = published_isolation_forest(everything)
    baseline = {**counts.metrics(), **{f"nab_{k}": v for k, v in nab.normalised().items()}}
    report = {
        "params": asdict(params),
        "results": results,
        "published_isolation_forest_reproduced": baseline,
        "published": PUBLISHED,
        "valve1_trials": len(trials),
    }
    out.mkdir(parents=True, exist_ok=True)
    stem = "skab" if args.max_samples == "auto" else f"skab-{args.max_samples}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plot(results, baseline, out / f"{stem}.png")
    for name, r in results.items():
        log.info(
            "%-7s F1 %.3f  FAR %5.2f %%  MAR %5.2f %%  NAB %.2f",
            *(name, r["f1"], r["far_pct"], r["mar_pct"], r["nab_standard"]),
        )
    return 0


def plot(results: dict[str, dict[str, float]], baseline: dict[str, float], path: Path) -> None:
    """F1 against FAR for plantwatch per group, next to the published detectors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        ax.scatter(r["far_pct"], r["f1"], marker="o", s=60, label=f"plantwatch, {name}")
    for name, r in PUBLISHED.items():
        ax.scatter(r["far_pct"], r["f1"], marker="x", s=60, label=name)
    ax.scatter(baseline["far_pct"], baseline["f1"], marker="+", s=120, label="Isolation forest (our re-run)")
    ax.axhline(0.60, color="grey", linestyle=":")
    ax.axvline(10.0, color="grey", linestyle=":")
    ax.set_xlabel("FAR, % (false alarms among normal points)")
    ax.set_ylabel("F1 (pooled, point-wise)")
    ax.set_title("SKAB: plantwatch vs published (target F1 >= 0.60 at FAR <= 10 %)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
