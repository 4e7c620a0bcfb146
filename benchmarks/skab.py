"""SKAB (Skoltech Anomaly Benchmark) with plantwatch's own detector: the gateway's feature windows, forest,
training envelope and decision (``ForestModel.verdicts``), under SKAB's protocol (one model per file, fitted
on its first 400 rows, tested on the rest). Point-wise F1/FAR/MAR score the per-reading verdict every published
reading carries (its ``anomaly`` flag); the changepoint (NAB) score takes the alert lifecycle's raises and
clears (raised after N flagged readings, cleared after M clean ones), as SKAB's own baseline scores its flags
point-wise and a 30-point hold of them as changepoints. Every parameter is chosen on valve1/ only; valve2/,
other/ and all files are reported with it. The data (GPL-3.0) stays outside the repository.

    python benchmarks/skab.py [DATA_DIR] [--out docs/skab] [--valve1-only | --budget-sweep]

DATA_DIR defaults to ../shared/datasets/skab.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec
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
    load,
    load_group,
    published_isolation_forest,
)

from plantwatch.domain.features import FeatureSpec, bulk_features
from plantwatch.models.envelope import fit_envelope
from plantwatch.models.evaluation import alert_runs
from plantwatch.models.forest import ForestModel
from plantwatch.models.training import train_forest

log = logging.getLogger("skab")
REPO = Path(__file__).resolve().parents[1]
#: FAR allowed on valve1/ when choosing: half the target's 10 %, leaving room for other operating points.
FAR_BUDGET_PCT = 5.0
#: The leaderboard's outlier-detection table (SKAB at commit b2c0d46, "Proposed Leaderboard"), every row but the
#: perfect and null detectors. None of them reaches the target (F1 >= 0.60 at FAR <= 10 %).
PUBLISHED = {
    "Isolation forest (published)": {"f1": 0.29, "far_pct": 2.56, "mar_pct": 82.89, "nab_standard": 26.16},
    "Conv-AE (published, best F1)": {"f1": 0.78, "far_pct": 13.55, "mar_pct": 28.02},
    "MSET (published)": {"f1": 0.78, "far_pct": 39.73, "mar_pct": 14.13},
    "T-squared+Q (published)": {"f1": 0.76, "far_pct": 26.62, "mar_pct": 24.92},
    "LSTM-AE (published)": {"f1": 0.74, "far_pct": 29.96, "mar_pct": 25.92},
    "T-squared (published)": {"f1": 0.66, "far_pct": 19.21, "mar_pct": 42.6},
    "LSTM-VAE (published, best F1 at FAR <= 10 %)": {"f1": 0.56, "far_pct": 9.13, "mar_pct": 55.03},
    "Vanilla LSTM (published)": {"f1": 0.54, "far_pct": 12.54, "mar_pct": 59.53},
    "Vanilla AE (published)": {"f1": 0.39, "far_pct": 2.59, "mar_pct": 75.15},
    "MSCRED (published)": {"f1": 0.36, "far_pct": 49.94, "mar_pct": 69.88},
}
#: The leaderboard's changepoint (NAB standard / LowFP / LowFN) figures we compare with.
PUBLISHED_NAB = {
    "Isolation forest": {
        "nab_standard": 26.16,
        "nab_low_fp": 19.5,
        "nab_low_fn": 30.82,
        "missed_cps": 76,
        "false_cps": 135,
    },
    "MSCRED (best NAB)": {"nab_standard": 32.42, "nab_low_fp": 16.53, "nab_low_fn": 40.28},
}
#: What the rule chose before windows 2-4 joined the grid on 2026-11-29 (reported beside today's choice).
PREVIOUS_CHOICE = {
    "sensors": "hydraulic+motor",
    "window": 5,
    "margin": 1.05,
    "envelope": "all",
    "envelope_margin": 1.0,
    "raise_after": 5,
    "clear_after": 10,
}
SENSOR_SETS = {
    "all": SENSORS,
    "no-temperatures": tuple(s for s in SENSORS if s not in ("Temperature", "Thermocouple")),
    "hydraulic+motor": ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Volume Flow RateRMS"),
}


#: Statistics the training envelope watches (``mean`` of every sensor's window, or more).
ENVELOPE_STATISTICS = {"mean": ("mean",), "mean+std": ("mean", "std"), "all": ("latest", "mean", "std", "slope")}


@dataclass(frozen=True)
class Params:
    """The detector's parameters (chosen on valve1/)."""

    sensors: str = "all"
    window: int = 10
    #: forest threshold = margin x the largest anomaly score on the file's own training windows
    margin: float = 1.0
    #: statistics of the training envelope, and its threshold = margin x the largest training-window score
    envelope: str = "mean"
    envelope_margin: float = 1.0
    #: the envelope's relative tolerance: level statistics' scale floored at this fraction of their centre
    envelope_tolerance: float = 0.0
    #: sensors that must be outside the envelope at once (1: any; k-out-of-n voting above)
    envelope_votes: int = 1
    raise_after: int = 1
    clear_after: int = 1
    n_estimators: int = 100
    #: "auto" (scikit-learn's min(256, rows)) or "all" (every training window: a file has only ~390)
    max_samples: str = "auto"
    seed: int = 0


def model_for(f: SkabFile, p: Params) -> tuple[ForestModel, np.ndarray, int]:
    """The file's model as the gateway would run it (forest + envelope, thresholds set), its rows and split."""
    names = SENSOR_SETS[p.sensors]
    spec = FeatureSpec(sensor_types=tuple(n.replace(" ", "_") for n in names), window=p.window, waveform_types=())
    columns = {spec.sensor_types[i]: f.values[:, SENSORS.index(n)] for i, n in enumerate(names)}
    rows = bulk_features(spec, f.ts_ms, columns)  # row k = window ending at point k + window - 1
    split = TRAIN_ROWS - p.window + 1
    max_samples: str | float = 1.0 if p.max_samples == "all" else p.max_samples
    model: ForestModel = train_forest(
        rows[:split],
        spec,
        n_estimators=p.n_estimators,
        max_samples=max_samples,
        seed=p.seed,
        name=f.name,
        envelope_statistics=ENVELOPE_STATISTICS[p.envelope],
        envelope_margin=p.envelope_margin,
        envelope_tolerance=p.envelope_tolerance,
        envelope_votes=p.envelope_votes,
    )
    threshold = p.margin * float(model.anomaly_score(rows[:split]).max())
    return ForestModel(model.trees, msgspec.structs.replace(model.info, threshold=threshold)), rows, split


def debounce(flags: np.ndarray, p: Params) -> np.ndarray:
    """Anomalous test points: the alert-lifecycle state (raised after N, cleared after M) of the flags."""
    active = np.zeros(len(flags), dtype=bool)
    for start, end in alert_runs(flags, p.raise_after, p.clear_after):
        active[start : len(flags) if end is None else end] = True
    return active


def gateway_flags(f: SkabFile, p: Params) -> np.ndarray:
    """The test part's per-reading verdicts with the model's own decision (``ForestModel.verdicts``)."""
    model, rows, split = model_for(f, p)
    _, forest, outside = model.verdicts(rows[split:])
    return np.asarray(forest | outside)


#: Per (file, sensors, window): forest scores and, per envelope statistics, envelope scores (train, test).
Cache = dict[tuple[object, ...], dict[str, tuple[np.ndarray, np.ndarray]]]


def grid_flags(f: SkabFile, p: Params, cache: Cache) -> np.ndarray:
    """The same flags as :func:`gateway_flags`, from cached scores (for the valve1 grid)."""
    key = (f.name, p.sensors, p.window, p.max_samples)
    if key not in cache:
        base = Params(sensors=p.sensors, window=p.window, margin=1.0, max_samples=p.max_samples)
        model, rows, split = model_for(f, base)
        entry = {"forest": (model.anomaly_score(rows[:split]), model.anomaly_score(rows[split:]))}
        spec = model.info.feature_spec or FeatureSpec()
        for (name, stats), tolerance, votes in itertools.product(ENVELOPE_STATISTICS.items(), TOLERANCES, VOTES):
            envelope = fit_envelope(rows[:split], spec, statistics=stats, tolerance=tolerance, votes=votes)
            entry[f"{name}@{tolerance}/{votes}"] = (envelope.score(rows[:split]), envelope.score(rows[split:]))
        cache[key] = entry
    forest_train, forest_test = cache[key]["forest"]
    env_train, env_test = cache[key][f"{p.envelope}@{p.envelope_tolerance}/{p.envelope_votes}"]
    return (forest_test > p.margin * float(forest_train.max())) | (
        env_test > p.envelope_margin * float(env_train.max())
    )


def score(files: list[SkabFile], flags: list[np.ndarray], p: Params) -> dict[str, float]:
    """Pooled point-wise F1/FAR/MAR of the per-reading ``flags`` and NAB of their alerts' raises and clears;
    the same point-wise figures of the alert state (reported for comparison with earlier runs)."""
    counts, alert_counts, nab = Counts(), Counts(), Nab()
    after = 0
    for f, flagged in zip(files, flags, strict=True):
        actual = f.anomaly[TRAIN_ROWS:]
        active = debounce(flagged, p)
        counts.add(flagged, actual)
        alert_counts.add(active, actual)
        if actual.any():  # false alarms once the fault is over (the test part's normal tail)
            after += int(flagged[int(np.flatnonzero(actual)[-1]) + 1 :].sum())
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
        "fp": counts.fp,
        "fp_after_fault": after,
        **{f"alert_state_{k}": v for k, v in alert_counts.metrics().items()},
    }


def run(files: list[SkabFile], p: Params) -> dict[str, float]:
    """Pooled metrics of one parameter set over ``files``, each scored by its gateway model."""
    return score(files, [gateway_flags(f, p) for f in files], p)


#: The envelope's relative tolerances tried on valve1/ (0: scale from the training spread alone).
TOLERANCES = (0.0, 0.01, 0.02, 0.05)
#: Sensors that must be outside the envelope at once, tried on valve1/ (1: any one, as before 2026-11-29).
VOTES = (1, 2, 3)
#: Feature windows tried on valve1/ (2-4 since 2026-11-29: the rule had chosen 5, the grid's smallest).
WINDOWS = (2, 3, 4, 5, 10, 20, 40, 60)
#: Parameters whose best value on valve1/ the report shows, each with the values tried.
REPORTED_PARAMETERS = (("envelope_tolerance", TOLERANCES), ("envelope_votes", VOTES), ("window", WINDOWS))
#: The alert lifecycle's (raise after N, clear after M) pairs tried on valve1/.
LIFECYCLES = ((1, 1), (3, 10), (5, 10), (5, 30), (10, 30), (10, 60))


def choose(
    valve1: list[SkabFile], max_samples: str, budget_pct: float = FAR_BUDGET_PCT
) -> tuple[Params, list[dict[str, object]]]:
    """On valve1/: the detector with the best point-wise F1 among those with FAR <= FAR_BUDGET (ties: lower
    FAR), then the alert lifecycle with the best NAB standard score for it (ties: fewer false changepoints)."""
    cache: Cache = {}
    grid = itertools.product(
        SENSOR_SETS,
        WINDOWS,
        (1.0, 1.05, 1.1),
        ENVELOPE_STATISTICS,
        (1.0, 1.25, 1.5, 2.0),
        TOLERANCES,
        VOTES,
    )
    trials: list[dict[str, object]] = []
    for sensors, window, margin, envelope, envelope_margin, tolerance, votes in grid:
        p = Params(
            sensors=sensors,
            window=window,
            margin=margin,
            envelope=envelope,
            envelope_margin=envelope_margin,
            envelope_tolerance=tolerance,
            envelope_votes=votes,
            max_samples=max_samples,
        )
        trials.append({"params": asdict(p), **score(valve1, [grid_flags(f, p, cache) for f in valve1], p)})
    ok = [t for t in trials if float(t["far_pct"]) <= budget_pct]  # type: ignore[arg-type]
    best = max(ok or trials, key=lambda t: (float(t["f1"]), -float(t["far_pct"])))  # type: ignore[arg-type]
    detector = Params(**best["params"])  # type: ignore[arg-type]
    flags = [grid_flags(f, detector, cache) for f in valve1]
    lifecycles = []
    for n, m in LIFECYCLES:
        p = dataclasses.replace(detector, raise_after=n, clear_after=m)
        lifecycles.append((p, score(valve1, flags, p)))
    chosen, _ = max(lifecycles, key=lambda c: (c[1]["nab_standard"], -c[1]["false_cps"]))
    return chosen, trials


def best_per(trials: list[dict[str, object]], param: str, values: tuple[object, ...]) -> dict[str, dict[str, object]]:
    """What the rule would pick on valve1/ at each value of one parameter (shows why it picked the one it did)."""
    out = {}
    for value in values:
        ok = [
            t
            for t in trials
            if t["params"][param] == value  # type: ignore[index]
            and float(t["far_pct"]) <= FAR_BUDGET_PCT  # type: ignore[arg-type]
        ]
        if ok:
            best = max(ok, key=lambda t: (float(t["f1"]), -float(t["far_pct"])))  # type: ignore[arg-type]
            out[str(value)] = {"params": best["params"], "f1": best["f1"], "far_pct": best["far_pct"]}
    return out


def after_the_fact(best: dict[str, dict[str, object]], files: list[SkabFile]) -> dict[str, dict[str, object]]:
    """Each pick of :func:`best_per` with its point-wise figures on ``files`` (read after the fact, not chosen)."""
    out = {}
    for value, pick in best.items():
        r = run(files, Params(**pick["params"]))  # type: ignore[arg-type]
        out[value] = {**pick, "all_files": {k: r[k] for k in ("f1", "far_pct", "mar_pct")}}
    return out


def main(argv: list[str] | None = None) -> int:
    """Choose parameters on valve1/, report every group and all files, and write JSON + PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(REPO.parent / "shared" / "datasets" / "skab"))
    parser.add_argument("--out", default=str(REPO / "docs" / "skab"))
    parser.add_argument("--max-samples", choices=["auto", "all"], default="auto", help="rows per tree")
    parser.add_argument("--valve1-only", action="store_true", help="only choose the parameters on valve1/")
    parser.add_argument(
        "--budget-sweep",
        action="store_true",
        help="sensitivity, not a selection: the all-file figures the rule gives at other valve1 FAR budgets",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root, out = Path(args.data), Path(args.out)
    groups = {g: load_group(root, g) for g in GROUPS}
    params, trials = choose(groups["valve1"], args.max_samples)
    log.info("chosen on valve1/: %s", params)
    picks = {param: best_per(trials, param, values) for param, values in REPORTED_PARAMETERS}
    for param, best_values in picks.items():
        for value, best in best_values.items():
            log.info("  best on valve1/ at %s %s: F1 %.3f FAR %.2f %%", param, value, best["f1"], best["far_pct"])
    if args.valve1_only:
        return 0
    if args.budget_sweep:
        return sweep(groups, args.max_samples, out)
    results = {g: run(files, params) for g, files in groups.items()}
    everything = [f for files in groups.values() for f in files]
    results["all"] = run(everything, params)
    ablation = {  # each half of the decision alone, same parameters (reported, not chosen)
        "forest alone": run(everything, dataclasses.replace(params, envelope_margin=math.inf)),
        "envelope alone": run(everything, dataclasses.replace(params, margin=math.inf)),
    }
    # Not in the leaderboard and never used for choosing: 2.8 h of healthy running at another operating point
    # (flow ~126 vs ~32 L/min), fitted on its first 400 rows like every file: false alarms on an unseen day.
    healthy = [load(root / "anomaly-free" / "anomaly-free.csv", "anomaly-free/anomaly-free.csv")]
    unseen = {
        "forest + envelope": run(healthy, params),
        "forest alone": run(healthy, dataclasses.replace(params, envelope_margin=math.inf)),
        "envelope alone": run(healthy, dataclasses.replace(params, margin=math.inf)),
    }
    counts, nab = published_isolation_forest(everything)
    baseline = {
        **counts.metrics(),
        **{f"nab_{k}": v for k, v in nab.normalised().items()},
        "missed_cps": nab.missed,
        "false_cps": nab.false_positives,
    }
    # the rule's pick at each value of a parameter on valve1/, and that detector on all files
    per_value = {param: after_the_fact(best_values, everything) for param, best_values in picks.items()}
    report = {
        "params": asdict(params),
        "results": results,
        "ablation_all_files": ablation,
        "anomaly_free_unseen_operating_point": {k: {"far_pct": r["far_pct"], "fp": r["fp"]} for k, r in unseen.items()},
        "published_isolation_forest_reproduced": baseline,
        "published": PUBLISHED,
        "published_nab": PUBLISHED_NAB,
        "previous_choice_all_files": run(everything, dataclasses.replace(params, **PREVIOUS_CHOICE)),
        "valve1_trials": len(trials),
        "valve1_best_per_tolerance": per_value["envelope_tolerance"],
        "valve1_best_per_votes": per_value["envelope_votes"],
        "valve1_best_per_window": per_value["window"],
    }
    out.mkdir(parents=True, exist_ok=True)
    stem = "skab" if args.max_samples == "auto" else f"skab-{args.max_samples}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plot(results, ablation, baseline, out / f"{stem}.png")
    for name, r in {**results, **ablation}.items():
        log.info(
            "%-14s F1 %.3f  FAR %5.2f %%  MAR %5.2f %%  NAB %.2f  (false alarms after the fault: %d of %d;"
            " alert state F1 %.3f  FAR %5.2f %%)",
            *(name, r["f1"], r["far_pct"], r["mar_pct"], r["nab_standard"], r["fp_after_fault"], r["fp"]),
            *(r["alert_state_f1"], r["alert_state_far_pct"]),
        )
    for name, r in unseen.items():
        log.info("anomaly-free, %-17s FAR %5.2f %% (%d false-alarm points)", name, r["far_pct"], r["fp"])
    return 0


#: valve1 FAR budgets of the sensitivity sweep (the rule's own budget is FAR_BUDGET_PCT).
SWEEP_BUDGETS_PCT = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0)


def sweep(groups: dict[str, list[SkabFile]], max_samples: str, out: Path) -> int:
    """The rule at other valve1 FAR budgets, and what each choice scores on all files: how the trade-off runs,
    read after the fact (choosing a budget from this table would be tuning on the test files)."""
    everything = [f for files in groups.values() for f in files]
    rows = []
    for budget in SWEEP_BUDGETS_PCT:
        params, _ = choose(groups["valve1"], max_samples, budget)
        valve1, every = run(groups["valve1"], params), run(everything, params)
        rows.append({"valve1_budget_pct": budget, "params": asdict(params), "valve1": valve1, "all": every})
        log.info(
            "budget %4.1f %%: valve1 F1 %.3f FAR %5.2f %% -> all F1 %.3f FAR %5.2f %% MAR %5.2f %% NAB %.1f  %s",
            *(budget, valve1["f1"], valve1["far_pct"], every["f1"], every["far_pct"], every["mar_pct"]),
            *(every["nab_standard"], params),
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "skab-budget-sweep.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    return 0


def plot(
    results: dict[str, dict[str, float]],
    ablation: dict[str, dict[str, float]],
    baseline: dict[str, float],
    path: Path,
) -> None:
    """F1 against FAR for plantwatch per group, next to the published detectors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    colours = iter(plt.get_cmap("tab20").colors)
    for name, r in results.items():  # all files on top, as a star: the ablation's envelope alone lies beneath it
        star = name == "all"
        ax.scatter(
            r["far_pct"],
            r["f1"],
            marker="*" if star else "o",
            s=160 if star else 60,
            color=next(colours),
            zorder=3 if star else 2,
            label=f"plantwatch, {name}",
        )
    for name, r in ablation.items():
        ax.scatter(r["far_pct"], r["f1"], marker="s", s=40, color=next(colours), label=f"plantwatch {name}, all")
    for name, r in PUBLISHED.items():
        ax.scatter(r["far_pct"], r["f1"], marker="x", s=60, color=next(colours), label=name)
    ax.scatter(baseline["far_pct"], baseline["f1"], marker="+", s=120, color="black", label="Isolation forest (re-run)")
    ax.axhline(0.60, color="grey", linestyle=":")
    ax.axvline(10.0, color="grey", linestyle=":")
    ax.fill_between([0.0, 10.0], 0.60, 1.0, color="green", alpha=0.07, label="target: F1 >= 0.60, FAR <= 10 %")
    ax.set_xlabel("FAR, % (false alarms among normal points)")
    ax.set_ylabel("F1 (pooled, point-wise)")
    ax.set_title("SKAB: plantwatch vs published (target F1 >= 0.60 at FAR <= 10 %)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
