"""The training envelope: how far a feature row lies outside the spread of the model's training rows.

An Isolation Forest scores every point beyond the training range about alike (its trees isolate it in a
split or two), and one deviating feature is diluted among many. The envelope complements it: for chosen
statistics (for example every sensor's window ``mean``) it keeps each feature's training median and
standard deviation, scores a row by its largest deviation in those units, and flags rows whose score is
above a threshold derived from the training rows' own scores. Rows are scored independently, element by
element, so streaming and bulk scoring give bit-identical results.

With ``votes`` k > 1 the envelope votes as a plant's trip logic does (k-out-of-n, for example 2oo3): a row
is outside only when at least k sensors are outside at once, each sensor by its largest deviation over its
statistics. One sensor that drifts, or one instrument at fault, then no longer flags the asset alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.domain.features import FeatureSpec
from plantwatch.models.padded import FloatArray


class Envelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Per-feature centre and scale of the training rows, the columns used, and the flagging threshold.

    With one vote, ``score(rows)`` is ``max_j |row[j] - center[j]| / scale[j]`` over ``columns``; with
    ``votes`` k it is the k-th largest of the sensors' deviations (a sensor's deviation: the largest over its
    columns, ``sensors[j]`` naming the sensor of column j). A row is outside the envelope when its score is
    above ``threshold`` (in those scale units). The defaults are left out of an artifact's metadata, so
    artifacts of one-vote envelopes keep their bytes.
    """

    columns: tuple[int, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    #: The sensor (an index among the feature spec's sensor types) of each column; empty: one vote only.
    sensors: tuple[int, ...] = ()
    #: How many sensors must be outside at once for the row to be outside (1: any one).
    votes: int = 1

    def __post_init__(self) -> None:
        """Refuse an envelope whose arrays disagree, whose scales are not positive or that can't vote."""
        if not self.columns or not len(self.columns) == len(self.center) == len(self.scale):
            raise ValueError("envelope columns, center and scale must be non-empty and of equal length")
        if min(self.scale) <= 0 or not np.all(np.isfinite(self.scale)):
            raise ValueError("envelope scales must be positive and finite")
        if self.sensors and len(self.sensors) != len(self.columns):
            raise ValueError("envelope sensors must name the sensor of every column")
        if not 1 <= self.votes <= max(1, len(set(self.sensors))):
            raise ValueError(
                f"envelope votes must be between 1 and its {len(set(self.sensors))} sensors, got {self.votes}"
            )

    def score(self, rows: npt.NDArray[np.float64]) -> FloatArray:
        """Each row's deviation from the training centre, in training standard deviations: the largest, or
        with k votes the k-th largest among the sensors' own largest deviations. Features without a value
        (NaN) are left out; a row with fewer than k sensors that have one scores -inf (never outside)."""
        x = np.asarray(rows, dtype=np.float64)[:, list(self.columns)]
        deviation = np.abs(x - np.array(self.center)) / np.array(self.scale)
        # A feature without a value (NaN) casts no vote: -inf is never above the threshold.
        deviation = np.where(np.isnan(deviation), -np.inf, deviation)
        if self.votes == 1:
            out: FloatArray = deviation.max(axis=1)
            return out
        sensors = np.array(self.sensors)
        per_sensor = np.stack([deviation[:, sensors == s].max(axis=1) for s in np.unique(sensors)], axis=1)
        kth: FloatArray = -np.partition(-per_sensor, self.votes - 1, axis=1)[:, self.votes - 1]
        return kth

    def outside(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Whether each row lies outside the envelope (score above the threshold)."""
        return self.score(rows) > self.threshold


#: Statistics measured in the sensor's own level (a relative tolerance applies to them).
LEVEL_STATISTICS = ("latest", "mean")


def envelope_columns(
    spec: FeatureSpec, statistics: Sequence[str], *, margin: float = 1.0, tolerance: float = 0.0, votes: int = 1
) -> tuple[int, ...]:
    """The feature columns an envelope over ``statistics`` watches; ValueError for settings that can't work
    (no such statistic, a margin that is not positive, a tolerance outside [0, 1), more votes than sensors)."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"envelope tolerance is a fraction of the level in [0, 1), got {tolerance}")
    if not margin > 0:  # also refuses NaN
        raise ValueError(f"envelope margin must be positive, got {margin}")
    names = spec.names
    columns = tuple(i for i, name in enumerate(names) if name.rsplit(".", 1)[1] in statistics)
    if not columns:
        raise ValueError(f"no feature of {list(names)} has a statistic among {list(statistics)}")
    watched = {names[c].rsplit(".", 1)[0] for c in columns}
    if not 1 <= votes <= len(watched):
        raise ValueError(f"envelope votes must be between 1 and the {len(watched)} sensors it watches, got {votes}")
    return columns


def fit_envelope(
    rows: npt.NDArray[np.float64],
    spec: FeatureSpec,
    *,
    statistics: Sequence[str] = ("mean",),
    margin: float = 1.0,
    tolerance: float = 0.0,
    votes: int = 1,
) -> Envelope:
    """The envelope of training ``rows`` over the features named ``<type>.<statistic>`` for ``statistics``.

    The threshold is ``margin`` times the largest score among the training rows themselves (with margin
    1.0 no training row is flagged). A feature that is constant in training gets a tiny scale, so any
    change of it is outside the envelope. ``tolerance`` (a fraction, such as 0.02) floors the scale of
    each level statistic (latest, mean) at that fraction of its training centre: a short, very steady
    training period otherwise makes a move within the instrument's accuracy or the process's normal
    tolerance count as many standard deviations. ``votes`` is how many sensors must be outside at once.
    """
    columns = envelope_columns(spec, statistics, margin=margin, tolerance=tolerance, votes=votes)
    names = spec.names
    if rows.ndim != 2 or rows.shape[1] != len(names) or rows.shape[0] == 0:
        raise ValueError(f"rows must be non-empty with {len(names)} columns, got {rows.shape}")
    x = rows[:, list(columns)]
    center = np.median(x, axis=0)
    std = x.std(axis=0)
    level = np.array([names[c].rsplit(".", 1)[1] in LEVEL_STATISTICS for c in columns])
    floor = np.maximum(
        np.finfo(np.float64).eps * np.maximum(1.0, np.abs(center)), np.where(level, tolerance, 0.0) * np.abs(center)
    )
    scale = np.maximum(std, floor)
    types = list(spec.sensor_types)
    sensors = tuple(types.index(names[c].rsplit(".", 1)[0]) for c in columns) if votes > 1 else ()
    probe = Envelope(
        columns=columns,
        center=tuple(center.tolist()),
        scale=tuple(scale.tolist()),
        threshold=0.0,
        sensors=sensors,
        votes=votes,
    )
    threshold = margin * float(probe.score(rows).max())
    return msgspec.structs.replace(probe, threshold=threshold)
