"""The model artifact on disk: a zip of ``manifest.json`` and one ``.npy`` per array; no pickle anywhere.

``manifest.json`` holds the format name and version, the model's metadata (:class:`ModelInfo` as JSON), the
dtype and shape of every array, and ``sha256``: the SHA-256 of the canonical (sorted-key) JSON of everything
else in the manifest followed by the raw bytes of every array in name order. Loading recomputes it and
refuses any difference, then checks the trees are well formed before a single row is scored. Inspect an
artifact with ``unzip -p model.pwf manifest.json``; arrays open with ``numpy.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from plantwatch.models.forest import _DTYPES, ForestModel, ForestTrees, ModelInfo

FORMAT: Final = "plantwatch.forest"
#: The newest format this code writes and reads. 2 adds an envelope that votes (k-out-of-n sensors); a model
#: without one is still written as 1, byte for byte as before, so every reader can load it.
FORMAT_VERSION: Final = 2
#: Formats this reader loads. A reader older than version 2 refuses a voting envelope instead of ignoring its
#: votes (it would flag a window on any one sensor).
READABLE_FORMATS: Final = frozenset({1, 2})
MANIFEST: Final = "manifest.json"
#: Largest artifact accepted, on disk and inflated (a 1000-tree forest of max_samples 4096 is about 250 MB).
MAX_ARTIFACT_BYTES: Final = 512 * 1024 * 1024


class ModelIntegrityError(ValueError):
    """The artifact is altered, truncated, malformed or not the one expected: it must not be used."""


def _array_fields() -> tuple[str, ...]:
    return tuple(sorted(ForestTrees.__struct_fields__))


def _digest(manifest: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    h = hashlib.sha256(msgspec.json.encode(body, order="sorted"))
    for name in sorted(arrays):
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed timestamp, so the same model always gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _info_builtins(model: ForestModel) -> dict[str, Any]:
    """The model's metadata as JSON builtins; without an envelope the key is left out (older artifacts' bytes)."""
    info: dict[str, Any] = msgspec.to_builtins(model.info)
    if info.get("envelope") is None:
        info.pop("envelope", None)
    return info


def _format_version(model: ForestModel) -> int:
    """The oldest format that holds ``model``: 2 for an envelope that votes, else 1."""
    envelope = model.info.envelope
    return 2 if envelope is not None and envelope.votes > 1 else 1


def write_artifact(model: ForestModel, path: Path) -> str:
    """Write ``model`` to ``path`` (atomically replaced); returns the artifact's SHA-256."""
    arrays = {name: np.ascontiguousarray(getattr(model.trees, name)) for name in _array_fields()}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": _format_version(model),
        "info": _info_builtins(model),
        "feature_spec_hash": model.info.feature_spec.hash if model.info.feature_spec else None,
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()},
    }
    manifest["sha256"] = _digest(manifest, arrays)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_entry(MANIFEST), msgspec.json.format(msgspec.json.encode(manifest, order="sorted")))
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            zf.writestr(_entry(f"{name}.npy"), buffer.getvalue())
    tmp.replace(path)
    return str(manifest["sha256"])


def artifact_sha256(path: Path) -> str:
    """The SHA-256 recorded in an artifact, after verifying it (what a deployment pins)."""
    manifest, _ = _read_verified(path)
    return str(manifest["sha256"])


def read_artifact(path: Path, *, expected_sha256: str | None = None) -> ForestModel:
    """Read, verify and validate an artifact; raises :class:`ModelIntegrityError` on any problem."""
    manifest, arrays = _read_verified(path)
    if expected_sha256 is not None and manifest["sha256"] != expected_sha256:
        raise ModelIntegrityError(f"{path}: SHA-256 is {manifest['sha256']}, the deployment expects {expected_sha256}")
    try:
        info = msgspec.convert(manifest["info"], ModelInfo)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ModelIntegrityError(f"{path}: model metadata is invalid ({exc})") from exc
    if info.envelope is not None and info.envelope.votes > 1 and manifest["format_version"] < 2:
        raise ModelIntegrityError(f"{path}: a voting envelope needs format version 2, the manifest says 1")
    spec_hash = info.feature_spec.hash if info.feature_spec else None
    if manifest.get("feature_spec_hash") != spec_hash:
        raise ModelIntegrityError(
            f"{path}: feature specification hash {manifest.get('feature_spec_hash')} does not match its "
            f"specification ({spec_hash}): written by an incompatible feature-code version"
        )
    trees = ForestTrees(**{name: arrays[name].astype(_DTYPES.get(name, np.int64)) for name in arrays})
    problem = _trees_problem(trees, info)
    if problem:
        raise ModelIntegrityError(f"{path}: {problem}")
    try:
        return ForestModel(trees, info)
    except ValueError as exc:
        raise ModelIntegrityError(f"{path}: {exc}") from exc


def _read_verified(path: Path) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    try:
        if path.stat().st_size > MAX_ARTIFACT_BYTES:
            raise ModelIntegrityError(f"{path}: over {MAX_ARTIFACT_BYTES} bytes")
        with zipfile.ZipFile(path) as zf:
            manifest = msgspec.json.decode(zf.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ModelIntegrityError(f"{path}: not a {FORMAT} artifact")
            if manifest.get("format_version") not in READABLE_FORMATS:
                raise ModelIntegrityError(
                    f"{path}: format version {manifest.get('format_version')!r}, this reader knows "
                    f"{', '.join(map(str, sorted(READABLE_FORMATS)))}"
                )
            names = set(zf.namelist()) - {MANIFEST}
            expected = {f"{name}.npy" for name in _array_fields()}
            if names != expected:
                raise ModelIntegrityError(f"{path}: holds {sorted(names)}, expected {sorted(expected)}")
            if sum(member.file_size for member in zf.infolist()) > MAX_ARTIFACT_BYTES:
                raise ModelIntegrityError(f"{path}: inflates beyond {MAX_ARTIFACT_BYTES} bytes")
            arrays = {
                name: np.lib.format.read_array(io.BytesIO(zf.read(f"{name}.npy")), allow_pickle=False)
                for name in _array_fields()
            }
    except ModelIntegrityError:
        raise
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, KeyError, ValueError, msgspec.DecodeError) as exc:
        raise ModelIntegrityError(f"{path}: unreadable model artifact ({exc})") from exc
    except (RuntimeError, NotImplementedError) as exc:  # zipfile: an encrypted entry, an unknown compression
        raise ModelIntegrityError(f"{path}: unreadable model artifact ({exc})") from exc
    described = manifest.get("arrays")
    if not isinstance(described, dict):
        raise ModelIntegrityError(f"{path}: the manifest does not describe its arrays")
    for name, array in arrays.items():
        if described.get(name) != {"dtype": array.dtype.str, "shape": list(array.shape)}:
            raise ModelIntegrityError(f"{path}: array {name} differs from its description in the manifest")
        wanted = np.dtype(_DTYPES.get(name, np.int64))
        if (array.dtype.kind, array.dtype.itemsize) != (wanted.kind, wanted.itemsize):
            raise ModelIntegrityError(f"{path}: array {name} is {array.dtype}, expected {wanted}")
    if _digest(manifest, arrays) != manifest.get("sha256"):
        raise ModelIntegrityError(f"{path}: SHA-256 mismatch: the artifact was altered or corrupted")
    return manifest, arrays


def _trees_problem(trees: ForestTrees, info: ModelInfo) -> str | None:
    """Why the trees cannot be scored safely (bad shapes, dangling or backward links), or None."""
    offsets = trees.offsets
    n = len(trees.children_left)
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 1):
        return "tree offsets are inconsistent"
    for name in ForestTrees.__struct_fields__:
        if name != "offsets" and getattr(trees, name).shape != (n,):
            return f"array {name} does not have one entry per node"
    if info.max_samples < 1 or info.n_features < 1:
        return "max_samples and n_features must be positive"
    tree_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    local = np.arange(n) - offsets[tree_of]
    size = np.diff(offsets)[tree_of]
    left, right = trees.children_left, trees.children_right
    inner = left >= 0
    if np.any(inner != (right >= 0)):
        return "a node has one child"
    if np.any((left[inner] <= local[inner]) | (right[inner] <= local[inner])):
        return "a child link points backwards (trees must be stored parent before child)"
    if np.any((left[inner] >= size[inner]) | (right[inner] >= size[inner])):
        return "a child link points outside its tree"
    base = offsets[tree_of[inner]]
    children = np.concatenate([base + left[inner], base + right[inner]])
    if len(np.unique(children)) != len(children):
        return "a node has two parents (trees must be trees)"
    if np.any((trees.feature[inner] < 0) | (trees.feature[inner] >= info.n_features)):
        return "a split uses a feature outside the model's inputs"
    if np.any(np.isnan(trees.threshold[inner])) or np.any(trees.n_node_samples < 1):
        return "a split threshold is NaN or a node has no samples"
    return None
