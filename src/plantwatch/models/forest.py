"""ForestModel: a portable Isolation Forest that scores exactly like scikit-learn, with numpy alone."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.contract.batch import ModelRef
from plantwatch.domain.alerts import Debounce
from plantwatch.domain.features import FeatureSpec
from plantwatch.models.envelope import Envelope
from plantwatch.models.padded import FloatArray, IntArray, PaddedForest, average_path_length

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest


class ForestTrees(msgspec.Struct, frozen=True, kw_only=True):
    """The trees of a forest, concatenated: tree ``t`` owns nodes ``offsets[t]:offsets[t+1]`` (local ids)."""

    offsets: IntArray
    children_left: IntArray
    children_right: IntArray
    feature: IntArray
    threshold: FloatArray
    n_node_samples: IntArray
    missing_go_to_left: npt.NDArray[np.uint8]


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a model is and how it decides: identity, inputs, constants of the score, and its threshold.

    ``threshold`` applies to :meth:`ForestModel.anomaly_score` (higher = more anomalous): a row is anomalous
    when its anomaly score is above it. ``envelope`` (optional) also flags rows outside the training rows'
    spread (:mod:`plantwatch.models.envelope`). ``training`` is free-form provenance (data period, sizes, versions).
    """

    name: str = "iforest"
    version: str = "1"
    n_features: int
    max_samples: int
    threshold: float
    feature_spec: FeatureSpec | None = None
    envelope: Envelope | None = None
    training: dict[str, Any] = msgspec.field(default_factory=dict)


class ForestModel:
    """An Isolation Forest artifact and scorer: same ``score_samples`` as scikit-learn, no scikit-learn needed.

    Sign convention (stated once, kept everywhere in plantwatch): :meth:`score_samples` is scikit-learn's
    (lower = more abnormal, in [-1, 0]); :meth:`anomaly_score` is its negation, the original paper's score
    (higher = more anomalous, in [0, 1]); :meth:`is_anomaly` is ``anomaly_score > info.threshold`` or, with an
    ``info.envelope``, a row outside it (:meth:`verdicts` gives both flags apart).

    Parameters
    ----------
    trees : ForestTrees
        Node arrays of every tree; ``feature`` holds column indices of the full input.
    info : ModelInfo
        Identity, feature specification, threshold and training metadata.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> from plantwatch.models import ForestModel
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> estimator = IsolationForest(n_estimators=20, random_state=0).fit(X)
    >>> model = ForestModel.from_sklearn(estimator)
    >>> bool(np.abs(model.score_samples(X) - estimator.score_samples(X)).max() <= 1e-9)
    True
    >>> model.is_anomaly(np.array([[0.0, 0.0, 0.0], [8.0, -8.0, 8.0]])).tolist()
    [False, True]
    """

    def __init__(self, trees: ForestTrees, info: ModelInfo) -> None:
        self.trees = trees
        self.info = info
        self._denominator = (len(trees.offsets) - 1) * float(
            average_path_length(np.array([info.max_samples], dtype=np.float64))[0]
        )
        self._padded = PaddedForest(
            offsets=trees.offsets,
            children_left=trees.children_left,
            children_right=trees.children_right,
            feature=trees.feature,
            threshold=trees.threshold,
            missing_go_to_left=trees.missing_go_to_left,
            leaf_value=_leaf_values(trees),
        )

    @property
    def n_estimators(self) -> int:
        """Number of trees."""
        return len(self.trees.offsets) - 1

    @property
    def ref(self) -> ModelRef:
        """Name and version, as recorded in every batch this model scores."""
        return ModelRef(name=self.info.name, version=self.info.version)

    @property
    def debounce(self) -> Debounce | None:
        """The alert lifecycle counts the model's threshold was tuned and evaluated with (``training.alert_policy``,
        written by :func:`plantwatch.models.pipeline.tune_and_test`); None when it records none usable."""
        policy = self.info.training.get("alert_policy")
        try:
            return msgspec.convert(policy, Debounce) if isinstance(policy, dict) else None
        except (msgspec.ValidationError, ValueError):
            return None

    @property
    def feature_spec(self) -> FeatureSpec | None:
        """The feature specification the model was trained on (None if unknown)."""
        return self.info.feature_spec

    def score_samples(self, x: npt.ArrayLike) -> FloatArray:
        """scikit-learn's ``IsolationForest.score_samples``: lower is more abnormal."""
        x32 = self._rows(x)
        depths = self._padded.path_lengths(x32)
        if self._denominator == 0:
            return -np.full(x32.shape[0], 0.5)  # a one-sample forest: scikit-learn's special case
        scores: FloatArray = -(2.0 ** (-(depths / self._denominator)))
        return scores

    def anomaly_score(self, x: npt.ArrayLike) -> FloatArray:
        """Anomaly score in [0, 1]: higher is more anomalous (the negation of :meth:`score_samples`)."""
        return -self.score_samples(x)

    def is_anomaly(self, x: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each row's anomaly score is above the model's threshold, or it lies outside the envelope."""
        _, forest, envelope = self.verdicts(x)
        return forest | envelope

    def verdicts(self, x: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Anomaly scores, forest flags (score above the threshold) and envelope flags (all False without one)."""
        rows = np.asarray(x, dtype=np.float64)
        scores = self.anomaly_score(rows)
        envelope = self.info.envelope
        outside = envelope.outside(rows) if envelope is not None else np.zeros(len(scores), dtype=bool)
        return scores, scores > self.info.threshold, outside

    def _rows(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.info.n_features:
            raise ValueError(f"expected rows of {self.info.n_features} features, got shape {rows.shape}")
        return np.ascontiguousarray(rows, dtype=np.float32)

    @classmethod
    def from_sklearn(
        cls,
        estimator: IsolationForest,
        *,
        name: str = "iforest",
        version: str = "1",
        feature_spec: FeatureSpec | None = None,
        threshold: float | None = None,
        training: dict[str, Any] | None = None,
    ) -> ForestModel:
        """Convert a fitted ``IsolationForest``; the threshold defaults to ``-offset_`` (scikit-learn's own)."""
        from sklearn.ensemble import IsolationForest  # only conversion needs scikit-learn

        if not isinstance(estimator, IsolationForest) or not hasattr(estimator, "estimators_"):
            raise TypeError("from_sklearn needs a fitted sklearn.ensemble.IsolationForest")
        n_features = int(estimator.n_features_in_)
        if feature_spec is not None and len(feature_spec.names) != n_features:
            raise ValueError(f"feature spec has {len(feature_spec.names)} features, the estimator {n_features}")
        parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in ForestTrees.__struct_fields__ if k != "offsets"}
        offsets = [0]
        for tree, columns in zip(estimator.estimators_, estimator.estimators_features_, strict=True):
            t = tree.tree_
            internal = t.children_left >= 0
            parts["children_left"].append(t.children_left.astype(np.int64))
            parts["children_right"].append(t.children_right.astype(np.int64))
            parts["feature"].append(np.where(internal, np.asarray(columns)[np.maximum(t.feature, 0)], -1))
            parts["threshold"].append(np.where(internal, t.threshold, 0.0).astype(np.float64))
            parts["n_node_samples"].append(t.n_node_samples.astype(np.int64))
            parts["missing_go_to_left"].append(np.asarray(t.missing_go_to_left, dtype=np.uint8))
            offsets.append(offsets[-1] + t.node_count)
        trees = ForestTrees(
            offsets=np.array(offsets, dtype=np.int64),
            **{k: np.concatenate(v).astype(_DTYPES[k]) for k, v in parts.items()},
        )
        info = ModelInfo(
            name=name,
            version=version,
            n_features=n_features,
            max_samples=int(estimator._max_samples),
            threshold=float(-estimator.offset_ if threshold is None else threshold),
            feature_spec=feature_spec,
            training=dict(training or {}),
        )
        return cls(trees, info)

    def save(self, path: str | Path) -> str:
        """Write the artifact (arrays + JSON metadata, no pickle); returns its SHA-256."""
        from plantwatch.models.artifact import write_artifact  # artifact imports this module

        return write_artifact(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, *, sha256: str | None = None) -> ForestModel:
        """Read and verify an artifact; raises :class:`ModelIntegrityError` if it was altered or is malformed."""
        from plantwatch.models.artifact import read_artifact

        return read_artifact(Path(path), expected_sha256=sha256)


_DTYPES: dict[str, type[np.generic]] = {
    "children_left": np.int64,
    "children_right": np.int64,
    "feature": np.int64,
    "threshold": np.float64,
    "n_node_samples": np.int64,
    "missing_go_to_left": np.uint8,
}


def _leaf_values(trees: ForestTrees) -> FloatArray:
    """Per node: depth + c(node samples), computed as scikit-learn does (its depths count the root as 1)."""
    depth = np.zeros(len(trees.children_left), dtype=np.int64)
    for a, b in itertools.pairwise(trees.offsets):
        left, right = trees.children_left[a:b], trees.children_right[a:b]
        level, d = np.zeros(1, dtype=np.int64), 1
        while len(level):
            depth[a + level] = d
            inner = level[left[level] >= 0]
            level, d = np.concatenate([left[inner], right[inner]]), d + 1
    apl = average_path_length(trees.n_node_samples.astype(np.float64))
    values: FloatArray = depth.astype(np.float64) + apl - 1.0
    return values
