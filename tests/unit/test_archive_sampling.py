"""A budgeted archive read: whole blocks of time, the fewest dropped, the same whatever the order; and feature
windows never span a gap between the blocks (or an outage)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plantwatch.adapters.archive_reader import SAMPLE_BLOCK_MS, block_hash, read_archive
from plantwatch.adapters.object_store import LocalObjectStore
from plantwatch.contract.reading import Reading
from plantwatch.domain.features import FeatureWindows
from plantwatch.domain.simulator import PlantSimulator, SimulationConfig
from plantwatch.models.datasets import ReadingColumns, reading_assets, windows_across_gaps
from plantwatch.models.trainer import TrainConfig

HOURS = 6
SIM = SimulationConfig(lines=1, assets_per_line=1)
SPEC = TrainConfig().spec


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> LocalObjectStore:
    """Six hours of one asset's three sensors at 1 Hz, in objects of ten minutes (64,800 readings)."""
    root = tmp_path_factory.mktemp("archive")
    sim = PlantSimulator(SIM)
    refs = sim.sensors_of("line-1")
    for start in range(0, HOURS * 3_600_000, 600_000):
        ts = np.arange(start, start + 600_000, 1000, dtype=np.int64)
        n = len(ts) * len(refs)
        table = pa.table(
            {
                "plant": np.full(n, SIM.plant),
                "line": np.full(n, "line-1"),
                "asset": np.concatenate([np.full(len(ts), r.asset) for r in refs]),
                "sensor_type": np.concatenate([np.full(len(ts), r.sensor_type) for r in refs]),
                "ts": np.tile(ts, len(refs)),
                "value": np.concatenate([np.round(sim.values(r.sensor_id, ts), 3) for r in refs]),
                "anomaly": np.zeros(n, dtype=bool),
            }
        )
        path = root / f"batches/date=1970-01-01/plant={SIM.plant}/line=line-1/part-{start}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    return LocalObjectStore(root)


def _read(store: LocalObjectStore, **kwargs: object) -> ReadingColumns:
    return read_archive(store, start_ms=0, end_ms=HOURS * 3_600_000, plant=SIM.plant, **kwargs)  # type: ignore[arg-type]


def test_a_read_over_its_budget_keeps_whole_blocks_the_fewest_dropped_in_any_order(archive: LocalObjectStore) -> None:
    whole = _read(archive)
    assert whole.sample is None and len(whole) == HOURS * 3600 * 3
    budget = 20_000
    # WHEN the same window is read with a budget under its 64,800 readings, in two orders of its objects
    keys = sorted(archive.list("batches/"))
    sampled = _read(archive, max_readings=budget, keys=keys)
    again = _read(archive, max_readings=budget, keys=keys[::-1], workers=1)
    # THEN it keeps at most the budget, says how, and keeps the same readings whatever the order
    assert sampled.sample is not None
    all_blocks, per_block = np.unique(whole.ts // SAMPLE_BLOCK_MS, return_counts=True)
    kept_blocks = np.unique(sampled.ts // SAMPLE_BLOCK_MS)
    assert (sampled.sample.read, sampled.sample.block_ms) == (len(whole), SAMPLE_BLOCK_MS)
    assert (sampled.sample.blocks, sampled.sample.kept) == (len(all_blocks), len(kept_blocks))
    assert 0 < len(sampled) <= budget
    order, order_again = np.lexsort((sampled.ts, sampled.sensor_type)), np.lexsort((again.ts, again.sensor_type))
    np.testing.assert_array_equal(sampled.ts[order], again.ts[order_again])
    np.testing.assert_array_equal(sampled.value[order], again.value[order_again])
    # AND what it keeps are whole blocks, every reading of each: those of the lowest hash, as many as fit
    assert np.isin(whole.ts // SAMPLE_BLOCK_MS, kept_blocks).sum() == len(sampled)
    by_hash = np.argsort(block_hash(all_blocks * SAMPLE_BLOCK_MS))
    fitting = int(np.searchsorted(np.cumsum(per_block[by_hash]), budget, side="right"))
    np.testing.assert_array_equal(kept_blocks, np.sort(all_blocks[by_hash][:fitting]))
    assert fitting < len(all_blocks) and per_block[by_hash][: fitting + 1].sum() > budget  # the next does not fit
    # AND a budget the window fits in keeps everything
    assert _read(archive, max_readings=len(whole)).sample is None
    with pytest.raises(ValueError, match="at least 1"):
        _read(archive, max_readings=0)


def test_sampled_blocks_give_the_full_reads_feature_rows_and_no_window_across_two_blocks(
    archive: LocalObjectStore,
) -> None:
    [full] = reading_assets(_read(archive), SPEC)
    sampled_columns = _read(archive, max_readings=20_000)
    [sampled] = reading_assets(sampled_columns, SPEC)
    # every row of the sampled read is the full read's row at the same time (its window lies inside one kept run)
    at = np.searchsorted(full.ts, sampled.ts)
    np.testing.assert_array_equal(full.ts[at], sampled.ts)
    np.testing.assert_array_equal(full.rows[at], sampled.rows)
    # and each run of consecutive kept blocks gives exactly its own windows: readings - window + 1
    blocks = np.unique(sampled_columns.ts // SAMPLE_BLOCK_MS)
    runs = np.split(blocks, np.flatnonzero(np.diff(blocks) > 1) + 1)
    per_block = SAMPLE_BLOCK_MS // 1000
    assert len(runs) > 1
    assert len(sampled.ts) == sum(len(run) * per_block - SPEC.window + 1 for run in runs)


def test_windows_across_a_gap_are_the_ones_holding_readings_from_both_sides() -> None:
    ts = np.array([0, 1, 2, 3, 20, 21, 22, 23, 24]) * 1000  # a 17 s step: over 10 median steps of 1 s
    # windows of 3: [0,1,2] [1,2,3] [2,3,20] [3,20,21] [20,21,22] [21,22,23] [22,23,24]
    np.testing.assert_array_equal(windows_across_gaps(ts, 3), [False, False, True, True, False, False, False])
    jittery = np.array([0, 1, 2, 4, 5, 8, 9, 11]) * 1000  # a missed poll or two is no gap
    assert not windows_across_gaps(jittery, 3).any()
    assert windows_across_gaps(ts[:2], 3).shape == (0,)
    # an asset polled every 5 minutes, sampled: blocks 0 and 1 kept, 2 and 3 dropped, 4 kept. The step over the
    # dropped blocks is only 3 median steps, but the window holding it spans two blocks that are not neighbours
    slow = np.array([0, 5, 10, 15, 20, 25, 60, 65]) * 60_000
    assert not windows_across_gaps(slow, 2).any()
    np.testing.assert_array_equal(
        windows_across_gaps(slow, 2, block_ms=SAMPLE_BLOCK_MS), [False, False, False, False, False, True, False]
    )


def test_a_budget_of_a_few_blocks_keeps_some_and_one_under_a_block_is_refused_with_what_to_do(
    archive: LocalObjectStore,
) -> None:
    for blocks in (1, 2, 3):  # a block here is 2,700 readings: with halving, such budgets could keep nothing
        kept = _read(archive, max_readings=blocks * 2_700 + 1)
        assert kept.sample is not None and kept.sample.kept == blocks and len(kept) == blocks * 2_700
    with pytest.raises(ValueError, match=r"budget of 1,000 readings is less than .* retrain_max_readings_per_line"):
        _read(archive, max_readings=1_000)


def test_the_gateway_scores_exactly_the_windows_training_keeps_around_an_outage() -> None:
    """GIVEN one asset polled at 1 Hz with a jitter of up to 300 ms, two missed polls and a 4-minute outage,
    THEN the windows the gateway gives a feature row (a forest verdict) are those training keeps, row for row."""
    sim = PlantSimulator(SIM)
    refs = sim.sensors_of("line-1")
    rng = np.random.default_rng(5)
    steps = 1000 + rng.integers(-300, 300, 400)
    steps[[50, 51]] += 1000
    steps[200] += 240_000
    ts = np.cumsum(steps).astype(np.int64)
    values = {r.sensor_type: np.round(sim.values(r.sensor_id, ts), 3) for r in refs}
    columns = ReadingColumns(
        assets=((SIM.plant, "line-1", refs[0].asset),),
        sensor_types=tuple(values),
        asset=np.zeros(len(ts) * len(refs), dtype=np.int32),
        sensor_type=np.repeat(np.arange(len(refs), dtype=np.int32), len(ts)),
        ts=np.tile(ts, len(refs)),
        value=np.concatenate(list(values.values())),
        anomaly=np.zeros(len(ts) * len(refs), dtype=bool),
    )
    [trained] = reading_assets(columns, SPEC)
    windows = FeatureWindows(SPEC)
    scored_ts, scored_rows = [], []
    for k, stamp in enumerate(ts.tolist()):
        for r in refs:
            windows.push(
                Reading(
                    plant=SIM.plant, line="line-1", asset=r.asset, sensor_id=r.sensor_id,
                    sensor_type=r.sensor_type, unit=r.unit, ts_ms=stamp, value=float(values[r.sensor_type][k]),
                )
            )  # fmt: skip
        row = windows.features(("line-1", refs[0].asset))
        if row is not None:
            scored_ts.append(stamp)
            scored_rows.append(row)
    assert len(trained.ts) == len(ts) - SPEC.window + 1 - (SPEC.window - 1)  # only the outage's windows are out
    np.testing.assert_array_equal(scored_ts, trained.ts)
    np.testing.assert_array_equal(np.array(scored_rows), trained.rows)
