"""Feature windows: the streaming form fed reading by reading equals the bulk form over arrays, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwatch.contract.reading import Reading
from plantwatch.domain.features import (
    GAP_PERIODS,
    FeatureSpec,
    FeatureWindows,
    bulk_features,
    window_statistics,
    windows_with_gaps,
)
from plantwatch.domain.simulator import PlantSimulator, SimulationConfig

START_MS = 1_790_000_000_000


def _reading(asset: str, sensor_type: str, ts_ms: int, value: float) -> Reading:
    return Reading(
        plant="plant-1",
        line="line-1",
        asset=asset,
        sensor_id=f"{asset}-{sensor_type[:4]}",
        sensor_type=sensor_type,
        unit="u",
        ts_ms=ts_ms,
        value=value,
    )


@pytest.mark.parametrize("window", [2, 3, 8, 60, 129])
def test_streaming_features_equal_bulk_features_over_simulated_faults(window: int) -> None:
    """GIVEN two simulated assets through fault episodes, WHEN fed tick by tick, THEN every row is identical."""
    simulator = PlantSimulator(SimulationConfig(lines=1, assets_per_line=2, anchor_ms=START_MS, fault_every_s=40))
    spec = FeatureSpec(window=window)
    ts = START_MS + np.arange(400, dtype=np.int64) * 1000 + np.random.default_rng(window).integers(0, 40, 400)
    assets = ["line-1-asset-1", "line-1-asset-2"]
    values = {a: {t: simulator.values(f"{a}-{t[:4]}", ts) for t in spec.sensor_types} for a in assets}
    windows = FeatureWindows(spec)
    streamed: dict[str, list[np.ndarray]] = {a: [] for a in assets}
    for k, stamp in enumerate(ts.tolist()):
        for asset in assets:  # assets interleaved, as one poll of a gateway delivers them
            for sensor_type in reversed(spec.sensor_types):
                windows.push(_reading(asset, sensor_type, stamp, float(values[asset][sensor_type][k])))
        for asset in assets:
            row = windows.features(("line-1", asset))
            assert (row is None) == (k < window - 1)
            if row is not None:
                streamed[asset].append(row)
    for asset in assets:
        bulk = bulk_features(spec, ts, values[asset])
        assert bulk.shape == (len(ts) - window + 1, len(spec.names))
        assert np.array_equal(np.array(streamed[asset]), bulk)


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(2, 40),
    extra=st.integers(0, 60),
    scale=st.sampled_from([1e-6, 1.0, 1e3, 1e9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_streaming_equals_bulk_for_any_series(window: int, extra: int, scale: float, seed: int) -> None:
    spec = FeatureSpec(sensor_types=("vibration", "pressure"), window=window)
    rng = np.random.default_rng(seed)
    n = window + extra
    steps = rng.integers(0, 5000, n)
    steps[rng.random(n) < 0.05] += 120_000  # now and then an outage
    ts = START_MS + np.cumsum(steps).astype(np.int64)
    values = {t: rng.normal(size=n) * scale for t in spec.sensor_types}
    windows = FeatureWindows(spec)
    rows = []
    for k in range(n):
        for sensor_type in spec.sensor_types:
            windows.push(_reading("a", sensor_type, int(ts[k]), float(values[sensor_type][k])))
        row = windows.features(("line-1", "a"))
        if row is not None:
            rows.append(row)
    # the streamed rows are the bulk rows of the windows that span no gap, bit for bit
    whole = ~windows_with_gaps(np.lib.stride_tricks.sliding_window_view(ts, window))
    assert np.array_equal(np.array(rows).reshape(-1, len(spec.names)), bulk_features(spec, ts, values)[whole])


def test_matrix_of_many_assets_equals_each_asset_alone() -> None:
    spec = FeatureSpec(window=5)
    windows = FeatureWindows(spec)
    rng = np.random.default_rng(2)
    assets = [f"a{i}" for i in range(7)]
    for k in range(9):
        for asset in assets[: 4 + k % 4]:
            for sensor_type in spec.sensor_types:
                windows.push(_reading(asset, sensor_type, START_MS + k * 1000, float(rng.normal())))
    keys = [("line-1", a) for a in assets]
    ready, matrix = windows.matrix(keys)
    assert ready
    assert len(ready) < len(keys)
    for key, row in zip(ready, matrix, strict=True):
        alone = windows.features(key)
        assert alone is not None
        assert np.array_equal(alone, row)


def test_statistics_mean_what_their_names_say() -> None:
    rng = np.random.default_rng(3)
    ts = START_MS + np.cumsum(rng.integers(500, 1500, 50)).astype(np.int64)
    values = rng.normal(20, 5, 50)
    latest, mean, std, slope, rms, peak, crest = window_statistics(ts[None, :], values[None, :], waveform=True)[0]
    seconds = (ts - ts[0]) / 1000.0
    assert latest == values[-1]
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-12)
    assert slope == pytest.approx(np.polyfit(seconds, values, 1)[0], rel=1e-9)
    assert rms == pytest.approx(np.sqrt(np.mean(values**2)), rel=1e-12)
    assert peak == np.max(np.abs(values))
    assert crest == pytest.approx(peak / rms, rel=1e-12)


def test_flat_and_simultaneous_windows_give_zero_slope_and_crest_without_warnings() -> None:
    ts = np.full((1, 4), START_MS, dtype=np.int64)
    stats = window_statistics(ts, np.zeros((1, 4)), waveform=True)[0]
    assert np.all(np.isfinite(stats))
    assert stats[3] == 0.0
    assert stats[6] == 0.0


def test_names_follow_sensor_types_and_waveform_statistics() -> None:
    spec = FeatureSpec(sensor_types=("pressure", "vibration"), window=30)
    assert spec.names == (
        "pressure.latest",
        "pressure.mean",
        "pressure.std",
        "pressure.slope",
        "vibration.latest",
        "vibration.mean",
        "vibration.std",
        "vibration.slope",
        "vibration.rms",
        "vibration.peak",
        "vibration.crest",
    )


def test_readings_of_other_types_are_ignored_and_windows_wait_until_full() -> None:
    spec = FeatureSpec(sensor_types=("temperature",), window=3, waveform_types=())
    windows = FeatureWindows(spec)
    assert windows.push(_reading("a", "humidity", START_MS, 1.0)) is None
    for k in range(2):
        windows.push(_reading("a", "temperature", START_MS + k, 1.0))
    assert windows.features(("line-1", "a")) is None
    windows.push(_reading("a", "temperature", START_MS + 2, 1.0))
    assert windows.features(("line-1", "a")) is not None
    windows.forget(("line-1", "a"))
    assert not windows.ready(("line-1", "a"))


def test_spec_hash_is_stable_across_processes_and_changes_with_the_features() -> None:
    spec = FeatureSpec()
    code = "from plantwatch.domain.features import FeatureSpec; print(FeatureSpec().hash)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert other.stdout.strip() == spec.hash
    decoded = msgspec.json.decode(msgspec.json.encode(spec), type=FeatureSpec)
    assert decoded.hash == spec.hash
    variants = [
        FeatureSpec(window=61),
        FeatureSpec(sensor_types=("vibration", "temperature", "pressure")),
        FeatureSpec(waveform_types=()),
        FeatureSpec(sensor_types=("temperature", "vibration")),
    ]
    assert len({spec.hash, *(v.hash for v in variants)}) == len(variants) + 1


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 1}, {"sensor_types": ()}, {"sensor_types": ("a", "a")}, {"waveform_types": ("humidity",)}],
)
def test_impossible_specs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"window|sensor_types|waveform_types"):
        FeatureSpec(**kwargs)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(kwargs, FeatureSpec)


def test_bulk_refuses_series_of_the_wrong_length_and_short_inputs_give_no_rows() -> None:
    spec = FeatureSpec(sensor_types=("temperature",), window=4, waveform_types=())
    ts = np.arange(3, dtype=np.int64)
    assert bulk_features(spec, ts, {"temperature": np.zeros(3)}).shape == (0, 4)
    with pytest.raises(ValueError, match="timestamps"):
        bulk_features(spec, np.arange(10, dtype=np.int64), {"temperature": np.zeros(9)})


def test_a_window_across_an_outage_is_a_gap_and_a_missed_poll_or_jitter_is_not() -> None:
    second = 1000
    rows = (
        np.array(
            [
                [0, 1, 2, 3, 4, 5],  # regular
                [0, 1, 3, 4, 6, 7],  # a missed poll or two
                [0, 1, 2, 3, 4, 4 + GAP_PERIODS],  # a step of exactly GAP_PERIODS median steps: still no gap
                [0, 1, 2, 3, 4, 5 + GAP_PERIODS],  # one more second: an outage
                [0, 0, 0, 0, 0, 30],  # a burst of simultaneous readings then a late one: steps of 0 count as 1 ms
                [0, 200, 400, 600, 800, 1000],  # an asset polled every 200 s is as regular as one polled every second
            ]
        )
        * second
    )
    rows[4] //= second
    np.testing.assert_array_equal(windows_with_gaps(rows), [False, False, False, True, True, False])
    assert windows_with_gaps(np.zeros((3, 1), dtype=np.int64)).tolist() == [False] * 3


def test_after_an_outage_an_asset_has_no_row_until_its_windows_have_moved_past_it() -> None:
    """GIVEN an asset at 1 Hz whose sensors go quiet for five minutes, THEN it has no feature row while any
    window holds the outage (window - 1 readings after it), and then the rows of the readings after it alone."""
    spec = FeatureSpec(window=6)
    windows = FeatureWindows(spec)
    before = [START_MS + k * 1000 for k in range(8)]
    after = [before[-1] + 300_000 + k * 1000 for k in range(8)]
    present = []
    for k, stamp in enumerate(before + after):
        for sensor_type in spec.sensor_types:
            windows.push(_reading("a", sensor_type, stamp, float(k % 3)))
        present.append(windows.features(("line-1", "a")) is not None)
    assert present == [False] * 5 + [True] * 3 + [False] * 5 + [True] * 3
    # one sensor type's outage is enough: the asset's row needs every type's window
    quiet = FeatureWindows(spec)
    for k, stamp in enumerate(before + after):
        for sensor_type in spec.sensor_types:
            if stamp in before or sensor_type != "pressure" or k == len(before):
                quiet.push(_reading("a", sensor_type, stamp, 1.0))
    assert quiet.features(("line-1", "a")) is None
