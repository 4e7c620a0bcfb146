"""Portable models: the Isolation Forest artifact and its numpy scorer (scikit-learn only to convert/train)."""

from plantwatch.models.artifact import ModelIntegrityError, artifact_sha256
from plantwatch.models.forest import ForestModel, ForestTrees, ModelInfo

__all__ = ["ForestModel", "ForestTrees", "ModelInfo", "ModelIntegrityError", "artifact_sha256"]
