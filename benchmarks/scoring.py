"""Scoring speed: plantwatch's ForestModel against scikit-learn's IsolationForest.score_samples, same run.

Run: ``python benchmarks/scoring.py`` (add ``--rows 200000`` for a shorter large-batch run).
Targets: at least 20x faster on 100-row batches; not slower on 1M rows. Both engines run on one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from threadpoolctl import threadpool_limits

from plantwatch.models import ForestModel

N_FEATURES = 6


def _timings(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    """Fit a forest, convert it, time both scorers on 1-row, 100-row and large batches, print ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large batch")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per small batch size")
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    train = rng.normal(size=(20_000, N_FEATURES))
    estimator = IsolationForest(n_estimators=100, max_samples=256, random_state=42).fit(train)
    model = ForestModel.from_sklearn(estimator)
    big = rng.normal(size=(args.rows, N_FEATURES)) * 1.5

    print(f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, one thread per engine")
    print("forest: 100 trees, max_samples 256, 6 features")
    print(f"{'batch':>10} | {'scikit-learn':>14} | {'plantwatch':>14} | {'speed-up (best)':>15} | {'(median)':>8}")
    for size in (1, 100):
        batch = big[:size]
        theirs = _timings(lambda b=batch: estimator.score_samples(b), max(20, args.repeats // 10))
        ours = _timings(lambda b=batch: model.score_samples(b), args.repeats)
        print(
            f"{size:>10} | {min(theirs) * 1e3:>11.3f} ms | {min(ours) * 1e3:>11.3f} ms | "
            f"{min(theirs) / min(ours):>14.1f}x | {statistics.median(theirs) / statistics.median(ours):>7.1f}x"
        )
    theirs = _timings(lambda: estimator.score_samples(big), 2)
    ours = _timings(lambda: model.score_samples(big), 2)
    print(
        f"{args.rows:>10} | {args.rows / min(theirs):>9,.0f} r/s | {args.rows / min(ours):>9,.0f} r/s | "
        f"{min(theirs) / min(ours):>14.2f}x | {statistics.median(theirs) / statistics.median(ours):>7.2f}x"
    )
    diff = np.abs(model.score_samples(big[:100_000]) - estimator.score_samples(big[:100_000])).max()
    print(f"max |score difference| over 100,000 rows: {diff:.1e}")


if __name__ == "__main__":
    with threadpool_limits(limits=1):  # one core for both engines (BLAS/OpenMP pools, if any are used)
        main()
