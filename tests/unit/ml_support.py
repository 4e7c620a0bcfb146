"""Test support for the model tests: scikit-learn is required under CI=true, optional elsewhere."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import pytest


def require_sklearn() -> ModuleType:
    """The ``sklearn.ensemble`` module; a missing scikit-learn fails under CI=true and skips otherwise."""
    if importlib.util.find_spec("sklearn") is None:
        message = "scikit-learn (extra 'ml') is required for this test"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: the dev extra must install it)")
        pytest.skip(message)
    import sklearn.ensemble

    return sklearn.ensemble
