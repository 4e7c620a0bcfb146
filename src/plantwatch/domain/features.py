"""Feature windows per asset: the one feature code that both the gateway (streaming) and training (bulk) run.

An asset's feature vector holds, for each sensor type of the :class:`FeatureSpec`, statistics over the last
``window`` readings of that type: latest value, mean, standard deviation (population) and least-squares
slope (units per second); waveform types (vibration) add RMS, peak (largest absolute value) and crest factor
(peak / RMS). A vector exists once every sensor type of the asset has a full window. The streaming form gives
none while a window spans a gap (an outage: a step over :data:`GAP_PERIODS` times the median step), and
training leaves the same windows out of the bulk form's rows.

Both forms compute the statistics with :func:`window_statistics` on a C-contiguous ``(rows, window)``
matrix, one row per window, so a row is reduced the same way whichever form built it: the streaming
:class:`FeatureWindows` and the bulk :func:`bulk_features` give bit-identical features.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.contract.reading import Reading

#: Bump when the meaning of a feature changes: it is part of every specification's hash.
FEATURES_VERSION: Final = "plantwatch.features.v1"
BASE_STATISTICS: Final = ("latest", "mean", "std", "slope")
WAVEFORM_STATISTICS: Final = ("rms", "peak", "crest")
#: Rows per chunk in the bulk form (bounds its temporary memory).
_BULK_CHUNK: Final = 8192
#: A step between an asset's readings longer than this many median steps is a gap (an outage, a restart): a
#: window across it mixes two states the line was never in at once, so training leaves such windows out and the
#: gateway gives them no forest verdict.
GAP_PERIODS: Final = 10

AssetKey = tuple[str, str]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class FeatureSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Which features a model expects: sensor types (in column order), window length, waveform types."""

    sensor_types: tuple[str, ...] = ("temperature", "vibration", "pressure")
    window: int = 60
    waveform_types: tuple[str, ...] = ("vibration",)

    def __post_init__(self) -> None:
        """Refuse a specification no feature vector can be built from."""
        if self.window < 2:
            raise ValueError(f"window must be at least 2 readings, got {self.window}")
        if not self.sensor_types or len(set(self.sensor_types)) != len(self.sensor_types):
            raise ValueError(f"sensor_types must be distinct and non-empty, got {list(self.sensor_types)}")
        extra = set(self.waveform_types) - set(self.sensor_types)
        if extra:
            raise ValueError(f"waveform_types {sorted(extra)} are not among sensor_types")

    def statistics(self, sensor_type: str) -> tuple[str, ...]:
        """The statistics computed for one sensor type."""
        extra = WAVEFORM_STATISTICS if sensor_type in self.waveform_types else ()
        return BASE_STATISTICS + extra

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in column order, such as ``temperature.mean`` or ``vibration.crest``."""
        return tuple(f"{t}.{s}" for t in self.sensor_types for s in self.statistics(t))

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the specification and feature-code version: equal hashes mean equal features."""
        canonical = msgspec.json.encode(
            {
                "version": FEATURES_VERSION,
                "sensor_types": list(self.sensor_types),
                "window": self.window,
                "waveform_types": sorted(self.waveform_types),
                "names": list(self.names),
            },
            order="sorted",
        )
        return hashlib.sha256(canonical).hexdigest()


def window_statistics(ts_ms: IntArray, values: FloatArray, *, waveform: bool) -> FloatArray:
    """Statistics of each row of ``values`` (C-contiguous ``(rows, window)``, oldest first) and its times."""
    w = values.shape[1]
    latest = values[:, -1]
    mean = values.sum(axis=1) / w
    dev = values - mean[:, None]
    std = np.sqrt((dev * dev).sum(axis=1) / w)
    t = (ts_ms - ts_ms[:, -1:]).astype(np.float64) / 1000.0
    tdev = t - (t.sum(axis=1) / w)[:, None]
    sxx = (tdev * tdev).sum(axis=1)
    sxy = (tdev * dev).sum(axis=1)
    slope = np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 0)
    columns = [latest, mean, std, slope]
    if waveform:
        rms = np.sqrt((values * values).sum(axis=1) / w)
        peak = np.abs(values).max(axis=1)
        crest = np.divide(peak, rms, out=np.zeros_like(rms), where=rms > 0)
        columns += [rms, peak, crest]
    return np.stack(columns, axis=1)


def windows_with_gaps(ts_ms: IntArray) -> BoolArray:
    """Which rows of window timestamps (``(rows, window)``, oldest first) hold a step over :data:`GAP_PERIODS`
    times the row's own median step (at least 1 ms). A row needs 4 readings or more to show a gap this way: with
    fewer, the median is too close to the largest step."""
    steps = np.diff(ts_ms, axis=1)
    if steps.shape[1] == 0:
        return np.zeros(len(ts_ms), dtype=bool)
    longest = steps.max(axis=1)
    # the median is at least the shortest step: a row whose longest step is within GAP_PERIODS of its shortest
    # has no gap, and regular polling settles every row here without a median
    maybe: BoolArray = longest > GAP_PERIODS * np.maximum(steps.min(axis=1), 1)
    if not maybe.any():
        return maybe
    out = np.zeros(len(ts_ms), dtype=bool)
    median = np.median(steps[maybe], axis=1)
    out[maybe] = longest[maybe] > GAP_PERIODS * np.maximum(median, 1.0)
    return out


def bulk_features(spec: FeatureSpec, ts_ms: IntArray, values: Mapping[str, FloatArray]) -> FloatArray:
    """Feature rows of one asset sampled at common times ``ts_ms``; row k is the state after reading k+window-1.

    ``values`` maps each sensor type of ``spec`` to its readings at ``ts_ms`` (oldest first).
    Returns ``(len(ts_ms) - window + 1, len(spec.names))`` (no rows when there are fewer readings).
    """
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64)
    n_rows = max(0, len(ts) - spec.window + 1)
    out = np.empty((n_rows, len(spec.names)), dtype=np.float64)
    if n_rows == 0:
        return out
    ts_windows = np.lib.stride_tricks.sliding_window_view(ts, spec.window)
    col = 0
    for sensor_type in spec.sensor_types:
        series = np.ascontiguousarray(values[sensor_type], dtype=np.float64)
        if series.shape != ts.shape:
            raise ValueError(f"{sensor_type} has {series.shape[0]} values for {ts.shape[0]} timestamps")
        windows = np.lib.stride_tricks.sliding_window_view(series, spec.window)
        width = len(spec.statistics(sensor_type))
        waveform = sensor_type in spec.waveform_types
        for start in range(0, n_rows, _BULK_CHUNK):
            stop = min(start + _BULK_CHUNK, n_rows)
            out[start:stop, col : col + width] = window_statistics(
                np.ascontiguousarray(ts_windows[start:stop]),
                np.ascontiguousarray(windows[start:stop]),
                waveform=waveform,
            )
        col += width
    return out


class _Ring:
    """The last ``size`` readings of one sensor type, stored twice over so the window is one contiguous slice."""

    __slots__ = ("count", "pos", "size", "ts", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = np.zeros(2 * size, dtype=np.float64)
        self.ts = np.zeros(2 * size, dtype=np.int64)
        self.pos = 0
        self.count = 0

    def push(self, ts_ms: int, value: float) -> None:
        pos = self.pos
        self.values[pos] = self.values[pos + self.size] = value
        self.ts[pos] = self.ts[pos + self.size] = ts_ms
        self.pos = (pos + 1) % self.size
        self.count += 1

    def window(self) -> tuple[IntArray, FloatArray]:
        return self.ts[self.pos : self.pos + self.size], self.values[self.pos : self.pos + self.size]


class FeatureWindows:
    """Streaming feature windows for every asset, fed reading by reading (O(1) per reading).

    Readings of sensor types outside the specification are ignored. An asset is keyed by ``(line, asset)``
    and is expected to have one sensor of each type; readings of a type are taken in arrival order.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._types = frozenset(spec.sensor_types)
        self._rings: dict[AssetKey, dict[str, _Ring]] = {}

    def push(self, reading: Reading) -> AssetKey | None:
        """Add one reading; returns its asset key, or None if its sensor type has no features."""
        if reading.sensor_type not in self._types:
            return None
        key = (reading.line, reading.asset)
        rings = self._rings.get(key)
        if rings is None:
            rings = self._rings[key] = {t: _Ring(self.spec.window) for t in self.spec.sensor_types}
        rings[reading.sensor_type].push(reading.ts_ms, reading.value)
        return key

    def push_many(self, readings: Iterable[Reading]) -> list[AssetKey]:
        """Add readings in order; returns the distinct asset keys they touched, in first-seen order."""
        touched: dict[AssetKey, None] = {}
        for reading in readings:
            key = self.push(reading)
            if key is not None:
                touched[key] = None
        return list(touched)

    def ready(self, key: AssetKey) -> bool:
        """Whether the asset has a full window of every sensor type."""
        rings = self._rings.get(key)
        return rings is not None and all(ring.count >= ring.size for ring in rings.values())

    def features(self, key: AssetKey) -> FloatArray | None:
        """The asset's current feature vector, or None until every window is full."""
        keys, matrix = self.matrix([key])
        return matrix[0] if keys else None

    def matrix(self, keys: Sequence[AssetKey]) -> tuple[list[AssetKey], FloatArray]:
        """Feature rows of the ready assets among ``keys`` (computed together), and which assets they are.

        An asset whose window of any type spans a gap (:func:`windows_with_gaps`) has no row until its windows
        have moved past it, as training leaves such windows out."""
        ready = [key for key in keys if self.ready(key)]
        if not ready:
            return ready, np.empty((0, len(self.spec.names)), dtype=np.float64)
        # One statistics call for every window of every type (rows are independent, so the values are the
        # same as type by type); types without waveform statistics just drop those columns.
        windows = [self._rings[key][t].window() for t in self.spec.sensor_types for key in ready]
        ts = np.stack([w[0] for w in windows])
        stats = window_statistics(ts, np.stack([w[1] for w in windows]), waveform=bool(self.spec.waveform_types))
        m = len(ready)
        out = np.empty((m, len(self.spec.names)), dtype=np.float64)
        col = 0
        for i, sensor_type in enumerate(self.spec.sensor_types):
            width = len(self.spec.statistics(sensor_type))
            out[:, col : col + width] = stats[i * m : (i + 1) * m, :width]
            col += width
        gaps = windows_with_gaps(ts)
        if not gaps.any():
            return ready, out
        whole = ~np.asarray(gaps.reshape(len(self.spec.sensor_types), m).any(axis=0), dtype=bool)
        keep: list[bool] = whole.tolist()
        return [key for key, k in zip(ready, keep, strict=True) if k], out[whole]

    def forget(self, key: AssetKey) -> None:
        """Drop an asset's windows (for example after its sensors were reconfigured)."""
        self._rings.pop(key, None)
