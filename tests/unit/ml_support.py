"""Test support for the model tests: scikit-learn is required under CI=true, optional elsewhere."""

from __future__ import annotations

from types import ModuleType

from tests.conftest import require_module


def require_sklearn() -> ModuleType:
    """The ``sklearn.ensemble`` module; a missing scikit-learn fails under CI=true and skips otherwise."""
    require_module("sklearn")
    import sklearn.ensemble

    return sklearn.ensemble
