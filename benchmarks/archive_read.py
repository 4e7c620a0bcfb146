"""What the retraining job's read of one line's week costs: time against the sequential read, and peak memory.

Run: ``python benchmarks/archive_read.py [--days 7] [--object-s 60] [--latency-ms 20] [--budget 4000000]
[--assets 4] [--cases sequential,pool,job,budget,evaluator]``.

It writes a synthetic archive of one line (``--assets`` assets x 3 sensors at 1 Hz, the simulator's values) as the
stream processor lays it out (``batches/date=*/plant=*/line=*/part-*.parquet``, one object per ``--object-s``),
then, each in a fresh process (``--cases`` picks which):

- reads it with ``read_archive`` through a store that waits ``--latency-ms`` before answering each GET (S3's
  time to first byte is tens of milliseconds; this machine has no S3, so the latency is an assumption, stated),
  with 1 worker (the baseline: the reader before 2026-11-29 fetched one object after another) and with the
  default pool;
- runs what one invocation of the job does for a line, with the default pool and no added latency: build the
  default labelled evaluation set (``simulator_evaluator``), read, features (``reading_assets``), then
  ``retrain`` (train the line's forest with the default ``TrainConfig``, tune and evaluate it, register it in a
  local registry; a first version, so no champion is evaluated, and nothing is published), and reports the
  process's peak resident memory, which sizes the Lambda (``cloud/terraform/retrain.tf``);
- runs the same with the read kept to ``--budget`` readings (``read_archive(max_readings=...)``, as the job does
  with ``PLANTWATCH_MAX_READINGS_PER_LINE``): its peak memory follows the budget, not the week's readings, which
  is what lets a line busier than this one fit the same function;
- builds that evaluation set alone, for comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
T0_MS = 20_454 * 86_400_000  # 2026-01-01
PLANT, LINE = "plant-1", "line-1"


def write_archive(root: Path, days: float, object_s: int, assets: int = 4) -> int:
    """One line's readings for ``days`` in objects of ``object_s`` seconds; returns the number of objects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from plantwatch.domain.simulator import PlantSimulator, SimulationConfig

    sim = PlantSimulator(SimulationConfig(lines=1, assets_per_line=assets))
    refs = sim.sensors_of(LINE)
    end = T0_MS + int(days * 86_400_000)
    objects = 0
    for start in range(T0_MS, end, object_s * 1000):
        ts = np.arange(start, min(start + object_s * 1000, end), 1000, dtype=np.int64)
        n = len(ts)
        table = pa.table(
            {
                "plant": np.full(n * len(refs), PLANT),
                "line": np.full(n * len(refs), LINE),
                "asset": np.concatenate([np.full(n, r.asset) for r in refs]),
                "sensor_type": np.concatenate([np.full(n, r.sensor_type) for r in refs]),
                "ts": np.tile(ts, len(refs)),
                "value": np.concatenate([np.round(sim.values(r.sensor_id, ts), 3) for r in refs]),
                "anomaly": np.zeros(n * len(refs), dtype=bool),
            }
        )
        day = time.strftime("%Y-%m-%d", time.gmtime(start / 1000))
        path = root / f"batches/date={day}/plant={PLANT}/line={LINE}/part-{start}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        objects += 1
    return objects


def measure(root: Path, days: float, what: str, workers: int, latency_ms: float, budget: int = 0) -> dict[str, float]:
    """Run in a fresh process (peak memory is per process): read (and, for ``job``, features and training)."""
    from plantwatch.adapters.archive_reader import read_archive
    from plantwatch.adapters.object_store import LocalObjectStore
    from plantwatch.models.datasets import reading_assets
    from plantwatch.models.registry import ModelRegistry
    from plantwatch.models.trainer import TrainConfig
    from plantwatch.services.retraining import retrain

    class SlowStore(LocalObjectStore):
        def get(self, key: str) -> bytes | None:
            time.sleep(latency_ms / 1000)
            return super().get(key)

    out: dict[str, float] = {}
    if what == "evaluator":
        from plantwatch.domain.simulator import SimulationConfig
        from plantwatch.models.pipeline import Periods
        from plantwatch.services.retraining import simulator_evaluator

        started = time.perf_counter()
        simulator_evaluator(SimulationConfig(), TrainConfig(), Periods())
        out["seconds"] = time.perf_counter() - started
    else:
        if what == "job":  # the job holds the labelled evaluation set for every line
            from plantwatch.domain.simulator import SimulationConfig
            from plantwatch.models.pipeline import Periods
            from plantwatch.services.retraining import simulator_evaluator

            evaluation = simulator_evaluator(SimulationConfig(), TrainConfig(), Periods())
        store = SlowStore(root) if latency_ms else LocalObjectStore(root)
        end = T0_MS + int(days * 86_400_000)
        started = time.perf_counter()
        columns = read_archive(
            store, start_ms=T0_MS, end_ms=end, plant=PLANT, lines=[LINE], workers=workers, max_readings=budget or None
        )
        out["read_s"] = time.perf_counter() - started
        out["readings"] = len(columns)
        sample = columns.sample
        out["kept_blocks"], out["blocks"] = (sample.kept, sample.blocks) if sample is not None else (0, 0)
        if what == "job":
            train = TrainConfig()
            assets = reading_assets(columns, train.spec)
            del columns
            out["features_s"] = time.perf_counter() - started - out["read_s"]
            with tempfile.TemporaryDirectory(prefix="registry-") as registry:
                [result] = retrain(
                    assets,
                    train=train,
                    registry=ModelRegistry(LocalObjectStore(Path(registry))),
                    evaluator=evaluation.for_plant(PLANT),
                    source={},
                )
            assert result.trained
            out["train_s"] = time.perf_counter() - started - out["read_s"] - out["features_s"]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _child(root: Path, days: float, what: str, workers: int, latency_ms: float, budget: int = 0) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", what, str(root), str(days), str(workers), str(latency_ms)]
    command.append(str(budget))
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Write the archive once, then measure each case in its own process and print a table."""
    if sys.argv[1:2] == ["--child"]:
        what, root, days, workers, latency, budget = sys.argv[2:8]
        print(json.dumps(measure(Path(root), float(days), what, int(workers), float(latency), int(budget))))
        return
    from plantwatch.adapters.object_store import READ_WORKERS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--object-s", type=int, default=60, help="seconds of readings per archive object")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added before each GET (an S3 assumption)")
    parser.add_argument("--workers", type=int, default=READ_WORKERS, help="the pool measured against 1 worker")
    parser.add_argument("--budget", type=int, default=4_000_000, help="readings a budgeted read keeps at most")
    parser.add_argument("--assets", type=int, default=4, help="assets of the line (3 sensors each)")
    parser.add_argument("--cases", default="sequential,pool,job,budget,evaluator", help="which to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archive-read-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        objects = write_archive(root, args.days, args.object_s, args.assets)
        print(f"archive: {objects:,} objects, {args.days:g} days of one line of {args.assets} assets, written in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        cases = set(args.cases.split(","))
        runs = {
            "sequential": lambda: _child(root, args.days, "read", 1, args.latency_ms),
            "pool": lambda: _child(root, args.days, "read", args.workers, args.latency_ms),
            "job": lambda: _child(root, args.days, "job", args.workers, 0.0),
            "budget": lambda: _child(root, args.days, "job", args.workers, 0.0, args.budget),
            "evaluator": lambda: _child(root, args.days, "evaluator", 1, 0.0),
        }
        got = {name: run() for name, run in runs.items() if name in cases}
    one, pool, job, budgeted, evaluator = (got.get(k) for k in runs)
    if pool is not None:
        print(f"\n| read of {pool['readings']:,.0f} readings, {args.latency_ms:g} ms per GET | seconds | ratio |")
        print("|---|---|---|")
        if one is not None:
            print(f"| 1 worker (the baseline) | {one['read_s']:.1f} | 1.00 |")
            print(f"| {args.workers} workers | {pool['read_s']:.1f} | {one['read_s'] / pool['read_s']:.2f} |")
        else:
            print(f"| {args.workers} workers | {pool['read_s']:.1f} | |")
    print("\n| per line of the job, no added latency | seconds | peak RSS MiB |")
    print("|---|---|---|")
    if job is not None:
        print(f"| evaluation set, then read + features + retrain | {job['read_s']:.1f} + {job['features_s']:.1f} + "
              f"{job['train_s']:.1f} | {job['peak_rss_mib']:.0f} |")  # fmt: skip
    if budgeted is not None:
        print(f"| the same, read kept to {args.budget:,} readings ({budgeted['kept_blocks']:.0f} of "
              f"{budgeted['blocks']:.0f} blocks: "
              f"{budgeted['readings']:,.0f} kept) | {budgeted['read_s']:.1f} + {budgeted['features_s']:.1f} + "
              f"{budgeted['train_s']:.1f} | {budgeted['peak_rss_mib']:.0f} |")  # fmt: skip
    if evaluator is not None:
        print(f"| the default labelled evaluation set (built once per job) | {evaluator['seconds']:.1f} | "
              f"{evaluator['peak_rss_mib']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
