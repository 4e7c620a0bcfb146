"""ForestModel.score_samples equals scikit-learn's IsolationForest.score_samples for any forest it can fit."""

from __future__ import annotations

import itertools
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwatch.models import ForestModel

from .ml_support import require_sklearn

TOLERANCE = 1e-9


def _data(seed: int, n_rows: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows on mixed scales, and probe rows: training rows, far outliers, duplicates, extremes."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.01, 1000.0, n_features)
    train = rng.normal(size=(n_rows, n_features)) * scales + rng.uniform(-50, 50, n_features)
    if n_rows > 4:
        train[: n_rows // 4] = train[0]  # duplicates make leaves with many samples
    probe = np.vstack(
        [
            train,
            rng.normal(size=(64, n_features)) * scales * 5,
            np.full((1, n_features), 1e30),
            np.full((1, n_features), -1e30),
            np.full((1, n_features), np.inf),
            np.zeros((1, n_features)),
        ]
    )
    return train, probe


def _assert_same(estimator: Any, probe: np.ndarray) -> ForestModel:
    model = ForestModel.from_sklearn(estimator)
    ours = model.score_samples(probe)
    theirs = estimator.score_samples(probe)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= TOLERANCE
    return model


@pytest.mark.parametrize(
    ("max_samples", "max_features", "bootstrap"),
    list(itertools.product(["auto", 1, 2, 3, 40, 0.3, 1.0], [1.0, 0.5, 1, 2, 4], [False, True])),
)
def test_every_parameter_combination_scores_like_sklearn(max_samples: Any, max_features: Any, bootstrap: bool) -> None:
    ensemble = require_sklearn()
    train, probe = _data(
        seed=zlib.crc32(repr((max_samples, max_features, bootstrap)).encode()), n_rows=120, n_features=4
    )
    estimator = ensemble.IsolationForest(
        n_estimators=7, max_samples=max_samples, max_features=max_features, bootstrap=bootstrap, random_state=3
    ).fit(train)
    _assert_same(estimator, probe)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_estimators=st.integers(1, 60),
    n_rows=st.integers(1, 400),
    n_features=st.integers(1, 8),
    max_samples=st.one_of(st.just("auto"), st.integers(1, 512), st.floats(0.05, 1.0)),
    max_features=st.one_of(st.floats(0.1, 1.0), st.integers(1, 8)),
    bootstrap=st.booleans(),
    contamination=st.one_of(st.just("auto"), st.floats(0.01, 0.5)),
)
def test_random_forests_score_like_sklearn(
    seed: int,
    n_estimators: int,
    n_rows: int,
    n_features: int,
    max_samples: Any,
    max_features: Any,
    bootstrap: bool,
    contamination: Any,
) -> None:
    ensemble = require_sklearn()
    if isinstance(max_features, int):
        max_features = min(max_features, n_features)
    if isinstance(max_samples, float) and int(max_samples * n_rows) < 1:
        max_samples = 1
    train, probe = _data(seed, n_rows, n_features)
    with warnings.catch_warnings():  # max_samples above the row count: scikit-learn warns and uses all rows
        warnings.simplefilter("ignore", UserWarning)
        estimator = ensemble.IsolationForest(
            n_estimators=n_estimators,
            max_samples=max_samples,
            max_features=max_features,
            bootstrap=bootstrap,
            contamination=contamination,
            random_state=seed,
        ).fit(train)
    model = _assert_same(estimator, probe)
    # The decision matches scikit-learn's predict (-1 = outlier) wherever the score is not tied with the
    # threshold to within the scores' tolerance.
    clear = np.abs(estimator.score_samples(probe) - estimator.offset_) > TOLERANCE
    assert np.array_equal(model.is_anomaly(probe)[clear], (estimator.predict(probe) == -1)[clear])


def test_values_on_and_next_to_every_threshold_split_like_sklearn() -> None:
    """float32 rounding at the split: values equal to, just below and just above each threshold."""
    ensemble = require_sklearn()
    train, _ = _data(11, 300, 3)
    estimator = ensemble.IsolationForest(n_estimators=20, random_state=11).fit(train)
    rows = []
    for tree, columns in zip(estimator.estimators_, estimator.estimators_features_, strict=True):
        inner = tree.tree_.children_left >= 0
        for feature, threshold in zip(tree.tree_.feature[inner], tree.tree_.threshold[inner], strict=True):
            t32 = np.float32(threshold)
            for value in (
                threshold,
                t32,
                np.nextafter(t32, np.float32(np.inf)),
                np.nextafter(t32, np.float32(-np.inf)),
            ):
                row = train[len(rows) % len(train)].copy()
                row[columns[feature]] = value
                rows.append(row)
    _assert_same(estimator, np.array(rows))


def test_missing_values_follow_the_trees_like_sklearn() -> None:
    ensemble = require_sklearn()
    train, probe = _data(5, 300, 4)
    train[::5, 1] = np.nan  # trained with NaN: splits learn where missing values go
    estimator = ensemble.IsolationForest(n_estimators=30, random_state=5).fit(train)
    probe[::3, 1] = np.nan
    probe[::7, 2] = np.nan
    _assert_same(estimator, probe)


def test_batches_of_every_size_give_the_same_scores() -> None:
    ensemble = require_sklearn()
    train, probe = _data(8, 500, 6)
    estimator = ensemble.IsolationForest(random_state=8).fit(train)
    model = ForestModel.from_sklearn(estimator)
    whole = model.score_samples(probe)
    for size in (1, 2, 3, 7, 100, 333):
        parts = np.concatenate([model.score_samples(probe[i : i + size]) for i in range(0, len(probe), size)])
        assert np.array_equal(parts, whole)
    assert model.score_samples(np.empty((0, 6))).shape == (0,)


def test_anomaly_score_is_the_negated_score_and_higher_is_more_anomalous() -> None:
    ensemble = require_sklearn()
    train, _ = _data(9, 400, 2)
    estimator = ensemble.IsolationForest(random_state=9).fit(train)
    model = ForestModel.from_sklearn(estimator)
    inlier, outlier = train.mean(axis=0), train.mean(axis=0) + 50 * train.std(axis=0)
    scores = model.anomaly_score(np.array([inlier, outlier]))
    assert np.array_equal(scores, -model.score_samples(np.array([inlier, outlier])))
    assert scores[1] > scores[0]
    assert model.info.threshold == -estimator.offset_


def test_rows_of_the_wrong_width_are_refused() -> None:
    ensemble = require_sklearn()
    estimator = ensemble.IsolationForest(n_estimators=3, random_state=0).fit(np.zeros((10, 3)) + np.arange(10)[:, None])
    model = ForestModel.from_sklearn(estimator)
    with pytest.raises(ValueError, match="3 features"):
        model.score_samples(np.zeros((2, 4)))
