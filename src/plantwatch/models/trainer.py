"""Training Isolation Forests per line (or per asset class) on healthy feature rows, deterministically for a seed."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import msgspec
import numpy as np

from plantwatch.contract.batch import MODEL_REF_MAX
from plantwatch.contract.summaries import SUMMARY_BINS
from plantwatch.domain.features import FeatureSpec
from plantwatch.models.datasets import AssetFeatures, FloatArray
from plantwatch.models.envelope import envelope_columns
from plantwatch.models.forest import ForestModel
from plantwatch.models.training import train_forest

log = logging.getLogger(__name__)

#: Bins of the score histograms kept for drift (anomaly scores live in [0, 1]).
SCORE_BINS: Final = SUMMARY_BINS
#: An envelope trained on less than most of a day has likely not seen the line's slow drift (warm-up,
#: water temperature): on SKAB's healthy file, an envelope fitted on 6.7 minutes flags over 97 % of the next 2.7 h.
ENVELOPE_MIN_SPAN_MS: Final = 20 * 3_600_000


class TrainConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How models are trained: grouping, forest size, seed, row subsampling and the features."""

    scope: Literal["line", "asset_class"] = "line"
    #: asset -> class when ``scope`` is ``asset_class``; unlisted assets fall in ``default_class``.
    asset_classes: dict[str, str] = msgspec.field(default_factory=dict)
    default_class: str = "default"
    # Defaults chosen on the simulator's validation day (docs/models.md): a short window without the waveform
    # statistics (correlated vibration peaks made the healthy score tail) and larger trees let the forest
    # alone meet the targets.
    n_estimators: int = 200
    max_samples: int = 1024
    seed: int = 0
    #: Keep every ``stride``-th healthy row (neighbouring windows overlap almost entirely).
    stride: int = 5
    window: int = 10
    sensor_types: tuple[str, ...] = ("temperature", "vibration", "pressure")
    waveform_types: tuple[str, ...] = ()
    #: Feature statistics (such as ``("mean",)``) the model's training envelope covers; empty: no envelope.
    envelope_statistics: tuple[str, ...] = ()
    #: The envelope flags rows beyond this multiple of the largest training deviation.
    envelope_margin: float = 1.0
    #: The envelope's relative tolerance: level statistics' scale floored at this fraction of their centre.
    envelope_tolerance: float = 0.0
    #: How many sensors must be outside the envelope at once (1: any one; 2 with three sensors: 2oo3).
    envelope_votes: int = 1

    def __post_init__(self) -> None:
        """Refuse envelope settings that could only fail after a forest was trained, or do nothing."""
        if self.envelope_statistics:
            envelope_columns(
                self.spec,
                self.envelope_statistics,
                margin=self.envelope_margin,
                tolerance=self.envelope_tolerance,
                votes=self.envelope_votes,
            )
        elif self.envelope_votes != 1 or self.envelope_tolerance != 0.0:
            raise ValueError("envelope_votes and envelope_tolerance need an envelope: name its envelope_statistics")

    @property
    def spec(self) -> FeatureSpec:
        """The feature specification the models are trained on (the gateway must compute the same)."""
        return FeatureSpec(sensor_types=self.sensor_types, window=self.window, waveform_types=self.waveform_types)

    def group_of(self, asset: AssetFeatures) -> str:
        """The model group an asset belongs to: its line, or its asset class."""
        if self.scope == "line":
            return asset.line
        return self.asset_classes.get(asset.asset, self.default_class)


def model_name(plant: str, group: str) -> str:
    """The registry name of a group's model, such as ``plant-1.line-2``; raises ValueError for one no batch could
    carry (:func:`model_name_problem`)."""
    name = f"{plant}.{group}"
    problem = model_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def model_name_problem(name: str) -> str | None:
    """Why ``name`` can't name a model (over :data:`~plantwatch.contract.batch.MODEL_REF_MAX` characters: every
    batch the model scored would carry it, and the cloud would refuse them all), or None."""
    if len(name) <= MODEL_REF_MAX:
        return None
    return (
        f"model name {name!r} is {len(name)} characters, over the {MODEL_REF_MAX} a batch may carry: the plant "
        "and line (or asset class) names together must be at most 63 characters"
    )


def group_assets(assets: Sequence[AssetFeatures], config: TrainConfig) -> dict[str, list[AssetFeatures]]:
    """Assets by model name, in first-seen order."""
    groups: dict[str, list[AssetFeatures]] = defaultdict(list)
    for asset in assets:  # unchecked here: each caller decides what a name no batch could carry stops
        groups[f"{asset.plant}.{config.group_of(asset)}"].append(asset)
    return dict(groups)


def healthy_rows(assets: Sequence[AssetFeatures], stride: int) -> FloatArray:
    """Rows with no known fault and no flagged reading in their window, every ``stride``-th, assets in order."""
    blocks = [a.rows[~(a.faulty | a.flagged)][::stride] for a in assets]
    return np.concatenate(blocks) if blocks else np.empty((0, 0))


def score_histogram(scores: FloatArray) -> list[float]:
    """Fractions of scores in :data:`SCORE_BINS` equal bins over [0, 1] (the drift reference)."""
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))
    total = max(int(counts.sum()), 1)
    return [round(float(c) / total, 8) for c in counts]


def train_group(
    name: str,
    assets: Sequence[AssetFeatures],
    config: TrainConfig,
    *,
    version: str,
    source: Mapping[str, Any],
) -> ForestModel:
    """Fit one group's forest; its metadata records the data window, row counts and training score histogram."""
    rows = healthy_rows(assets, config.stride)
    if rows.shape[0] < 2:
        raise ValueError(f"{name}: {rows.shape[0]} healthy feature rows, need at least 2 to train")
    ts_all = [a.ts for a in assets if len(a.ts)]
    window = {
        "start_ms": int(min(int(t[0]) for t in ts_all)),
        "end_ms": int(max(int(t[-1]) for t in ts_all)),
    }
    span_ms = window["end_ms"] - window["start_ms"]
    if config.envelope_statistics and span_ms < ENVELOPE_MIN_SPAN_MS:
        log.warning(
            "%s: training envelope fitted on %.1f h of data; one that spans less than %d h of healthy running "
            "will likely flag the line's slow drift (docs/models.md, SKAB)",
            *(name, span_ms / 3_600_000, ENVELOPE_MIN_SPAN_MS // 3_600_000),
        )
    total = sum(len(a.rows) for a in assets)
    metadata: dict[str, Any] = {
        # A data time, not the wall clock: the same data and seed give a byte-identical artifact.
        "trained_at_ms": window["end_ms"],
        "window": window,
        "assets": list(dict.fromkeys(a.asset for a in assets)),
        "feature_rows": total,
        "healthy_rows_used": int(rows.shape[0]),
        "excluded_rows": int(sum(int((a.faulty | a.flagged).sum()) for a in assets)),
        "stride": config.stride,
        "scope": config.scope,
        "source": dict(source),
    }
    model = train_forest(
        rows,
        config.spec,
        n_estimators=config.n_estimators,
        max_samples=min(config.max_samples, rows.shape[0]),
        seed=config.seed,
        name=name,
        version=version,
        training=metadata,
        envelope_statistics=config.envelope_statistics,
        envelope_margin=config.envelope_margin,
        envelope_tolerance=config.envelope_tolerance,
        envelope_votes=config.envelope_votes,
    )
    metadata["score_histogram"] = score_histogram(model.anomaly_score(rows))
    return with_training(model, metadata)


def with_training(model: ForestModel, training: Mapping[str, Any], **info: Any) -> ForestModel:
    """The same trees with updated metadata (for example a tuned threshold or a registry version)."""
    merged = {**model.info.training, **training}
    return ForestModel(model.trees, msgspec.structs.replace(model.info, training=merged, **info))


def train_models(
    assets: Sequence[AssetFeatures], config: TrainConfig, *, version: str, source: Mapping[str, Any]
) -> dict[str, ForestModel]:
    """One model per group (line or asset class), keyed by model name; raises ValueError, before training any,
    if a group's name could not name a model."""
    groups = group_assets(assets, config)
    for name in groups:
        if (problem := model_name_problem(name)) is not None:
            raise ValueError(problem)
    return {name: train_group(name, group, config, version=version, source=source) for name, group in groups.items()}
