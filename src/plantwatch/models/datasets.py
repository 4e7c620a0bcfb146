"""Labelled feature rows per asset, built with the gateway's own feature code from the simulator or from readings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.domain.features import GAP_PERIODS, FeatureSpec, bulk_features
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, Fault, PlantSimulator
from plantwatch.domain.thresholds import ORIGINAL_THRESHOLDS, Band

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class AssetFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """One asset's feature rows: row k describes the window ending at ``ts[k]``; ``faulty`` is ground truth."""

    plant: str
    line: str
    asset: str
    ts: IntArray
    rows: FloatArray
    faulty: BoolArray
    flagged: BoolArray
    #: Whether a reading at ``ts[k]`` is outside the thresholds or configured limits (the gateway's rules).
    rules: BoolArray


class BlockSample(msgspec.Struct, frozen=True, kw_only=True):
    """How a read was sampled to fit its budget: ``kept`` of the ``blocks`` blocks of ``block_ms`` that held
    readings, of ``read`` readings in the window."""

    block_ms: int
    blocks: int
    kept: int
    read: int


class ReadingColumns(msgspec.Struct, frozen=True, kw_only=True):
    """Readings as parallel columns (what the archive holds), their names coded: reading k is of the asset
    ``assets[asset[k]]`` (plant, line, asset) and of the sensor type ``sensor_types[sensor_type[k]]``; ``ts`` in
    epoch ms, ``anomaly`` as scored then. Coded, a week of one line at 1 Hz (7.3 M readings) takes about 160 MB;
    as NumPy strings it took 1.1 GB more."""

    assets: tuple[tuple[str, str, str], ...]
    sensor_types: tuple[str, ...]
    asset: npt.NDArray[np.int32]
    sensor_type: npt.NDArray[np.int32]
    ts: IntArray
    value: FloatArray
    anomaly: BoolArray
    #: None: every reading of the window; else which blocks of it a budgeted read kept.
    sample: BlockSample | None = None

    def __len__(self) -> int:
        """Number of readings."""
        return len(self.ts)

    @classmethod
    def empty(cls) -> ReadingColumns:
        """No readings."""
        codes = np.empty(0, dtype=np.int32)
        return cls(
            assets=(),
            sensor_types=(),
            asset=codes,
            sensor_type=codes,
            ts=np.empty(0, dtype=np.int64),
            value=np.empty(0),
            anomaly=np.empty(0, dtype=bool),
        )


def fault_mask(ts: IntArray, faults: Sequence[Fault], asset: str, *, tail_ms: int = 0) -> BoolArray:
    """Whether a fault on ``asset`` is active at each time (or ended less than ``tail_ms`` before)."""
    mask = np.zeros(len(ts), dtype=bool)
    for fault in faults:
        if fault.asset == asset:
            mask |= (ts >= fault.start_ms) & (ts < fault.end_ms + tail_ms)
    return mask


def outside(sensor_type: str, values: FloatArray, limits: Mapping[str, Band]) -> BoolArray:
    """Whether each value is outside the original thresholds or the configured limits of its sensor type."""
    out = np.zeros(len(values), dtype=bool)
    for bands in (ORIGINAL_THRESHOLDS, limits):
        band = bands.get(sensor_type)
        if band is not None:
            if band.low is not None:
                out |= values < band.low
            if band.high is not None:
                out |= values > band.high
    return out


def simulator_assets(
    simulator: PlantSimulator,
    spec: FeatureSpec,
    *,
    start_ms: int,
    end_ms: int,
    lines: Sequence[str] | None = None,
    limits: Mapping[str, Band] = SIMULATED_PLANT_LIMITS,
) -> list[AssetFeatures]:
    """Feature rows of every asset on ``lines`` over [start_ms, end_ms), values rounded as the gateway sends them."""
    period = simulator.config.sample_period_ms
    ts = np.arange(start_ms, end_ms, period, dtype=np.int64)
    faults = simulator.faults_between(start_ms, end_ms)
    row_ts = ts[spec.window - 1 :]
    by_asset: dict[tuple[str, str], dict[str, str]] = {}
    for ref in simulator.sensors:
        if lines is None or ref.line in lines:
            by_asset.setdefault((ref.line, ref.asset), {})[ref.sensor_type] = ref.sensor_id
    out: list[AssetFeatures] = []
    for (line, asset), sensors in by_asset.items():
        values = {t: np.round(simulator.values(sensors[t], ts), 3) for t in sensors}
        rules = np.zeros(len(ts), dtype=bool)
        for sensor_type, series in values.items():
            rules |= outside(sensor_type, series, limits)
        out.append(
            AssetFeatures(
                plant=simulator.config.plant,
                line=line,
                asset=asset,
                ts=row_ts,
                rows=bulk_features(spec, ts, values),
                faulty=fault_mask(row_ts, faults, asset),
                flagged=np.zeros(len(row_ts), dtype=bool),
                rules=rules[spec.window - 1 :],
            )
        )
    return out


def reading_assets(columns: ReadingColumns, spec: FeatureSpec) -> list[AssetFeatures]:
    """Feature rows of every asset in archived readings, in time order (assets in the order of their codes).

    An asset's readings are aligned on the timestamps at which every sensor type of ``spec`` has a reading
    (one gateway poll); duplicates of a (type, time) keep the first. ``flagged`` marks rows whose window
    holds a reading the gateway scored anomalous. Windows across a gap in an asset's readings are left out
    (:func:`windows_across_gaps`). Archived readings carry no ground truth: ``faulty`` is all False.
    """
    out: list[AssetFeatures] = []
    if len(columns) == 0:
        return out
    order = np.lexsort((columns.ts, columns.asset))
    bounds = np.flatnonzero(np.diff(columns.asset[order])) + 1
    for idx in np.split(order, bounds):
        asset_features = _one_asset(columns, idx, spec)
        if asset_features is not None:
            out.append(asset_features)
    return out


def _one_asset(columns: ReadingColumns, idx: IntArray, spec: FeatureSpec) -> AssetFeatures | None:
    types = columns.sensor_type[idx]
    per_type: dict[str, tuple[IntArray, FloatArray, BoolArray]] = {}
    for sensor_type in spec.sensor_types:
        code = columns.sensor_types.index(sensor_type) if sensor_type in columns.sensor_types else -1
        sel = idx[types == code]
        ts, first = np.unique(columns.ts[sel], return_index=True)
        per_type[sensor_type] = (ts, columns.value[sel][first], columns.anomaly[sel][first])
    common = per_type[spec.sensor_types[0]][0]
    for ts, _, _ in per_type.values():
        common = np.intersect1d(common, ts, assume_unique=True)
    if len(common) < spec.window:
        return None
    values: dict[str, FloatArray] = {}
    flagged_any = np.zeros(len(common), dtype=bool)
    for sensor_type, (ts, vals, flags) in per_type.items():
        pos = np.searchsorted(ts, common)
        values[sensor_type] = vals[pos]
        flagged_any |= flags[pos]
    rows = bulk_features(spec, common, values)
    window_flagged: BoolArray = np.asarray(
        np.lib.stride_tricks.sliding_window_view(flagged_any, spec.window).any(axis=1), dtype=bool
    )
    whole = ~windows_across_gaps(common, spec.window, block_ms=columns.sample.block_ms if columns.sample else None)
    plant, line, asset = columns.assets[int(columns.asset[idx[0]])]
    return AssetFeatures(
        plant=plant,
        line=line,
        asset=asset,
        ts=common[spec.window - 1 :][whole],
        rows=rows[whole],
        faulty=np.zeros(int(whole.sum()), dtype=bool),
        flagged=window_flagged[whole],
        rules=flagged_any[spec.window - 1 :][whole],
    )


def windows_across_gaps(ts: IntArray, window: int, *, block_ms: int | None = None) -> BoolArray:
    """Which windows of ``window`` readings at times ``ts`` span a gap: a step over :data:`GAP_PERIODS` times the
    median step (an outage), or, in a sampled read (``block_ms``), from one kept block to one not next to it
    (however slowly the asset is polled). Such a window mixes readings from before and after the gap, a state
    the line was never in, so training leaves it out, and the gateway gives it no forest verdict
    (:func:`~plantwatch.domain.features.windows_with_gaps`, against the window's own median step)."""
    n_rows = max(0, len(ts) - window + 1)
    if n_rows == 0 or window < 2:
        return np.zeros(n_rows, dtype=bool)
    steps = np.diff(ts)
    gap = steps > GAP_PERIODS * max(float(np.median(steps)), 1.0)
    if block_ms is not None:
        gap |= np.diff(ts // block_ms) > 1
    return np.asarray(np.lib.stride_tricks.sliding_window_view(gap, window - 1).any(axis=1), dtype=bool)
