"""The model artifact: round trip, SHA-256 verification, tamper and malformed-file refusal, no scikit-learn."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from plantwatch.domain.features import FeatureSpec
from plantwatch.models import ForestModel, ModelIntegrityError, artifact_sha256
from plantwatch.models.artifact import MANIFEST, _digest

from .ml_support import require_sklearn

SPEC = FeatureSpec(sensor_types=("temperature", "vibration"), window=10)


@pytest.fixture(scope="module")
def model() -> ForestModel:
    ensemble = require_sklearn()
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(400, len(SPEC.names)))
    estimator = ensemble.IsolationForest(n_estimators=25, max_features=0.7, random_state=4).fit(rows)
    return ForestModel.from_sklearn(
        estimator, name="line-1", version="7", feature_spec=SPEC, threshold=0.61, training={"rows": 400}
    )


def _probe() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(300, len(SPEC.names))) * 3


def _rewrite(path: Path, edit: dict[str, bytes]) -> None:
    """Replace members of the zip at ``path``."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members.update(edit)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _arrays(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        arrays = {
            n[:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in zf.namelist() if n.endswith(".npy")
        }
    return manifest, arrays


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_round_trip_keeps_scores_metadata_and_digest(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    digest = model.save(path)
    loaded = ForestModel.load(path, sha256=digest)
    assert np.array_equal(loaded.score_samples(_probe()), model.score_samples(_probe()))
    assert loaded.info == model.info
    assert loaded.feature_spec is not None
    assert loaded.feature_spec.hash == SPEC.hash
    assert artifact_sha256(path) == digest
    assert model.save(tmp_path / "again.pwf") == digest  # same model, same digest
    assert not list(tmp_path.glob("*.tmp"))


def test_artifact_holds_no_pickle_and_opens_with_standard_tools(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    manifest, arrays = _arrays(path)  # json + numpy with allow_pickle=False
    assert manifest["info"]["name"] == "line-1"
    assert manifest["feature_spec_hash"] == SPEC.hash
    assert all(a.dtype != object for a in arrays.values())


@pytest.mark.parametrize("array", ["threshold", "feature", "children_left", "n_node_samples"])
def test_a_changed_array_is_refused(model: ForestModel, tmp_path: Path, array: str) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    _, arrays = _arrays(path)
    changed = arrays[array].copy()
    changed[len(changed) // 2] += 1
    _rewrite(path, {f"{array}.npy": _npy(changed)})
    with pytest.raises(ModelIntegrityError, match="SHA-256 mismatch"):
        ForestModel.load(path)


def test_a_changed_threshold_in_the_metadata_is_refused(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    manifest, _ = _arrays(path)
    manifest["info"]["threshold"] = 0.99
    _rewrite(path, {MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(ModelIntegrityError, match="SHA-256 mismatch"):
        ForestModel.load(path)


def test_unexpected_digest_truncation_garbage_and_extra_members_are_refused(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    with pytest.raises(ModelIntegrityError, match="expects"):
        ForestModel.load(path, sha256="0" * 64)
    data = path.read_bytes()
    (tmp_path / "cut.pwf").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelIntegrityError, match="unreadable"):
        ForestModel.load(tmp_path / "cut.pwf")
    (tmp_path / "junk.pwf").write_bytes(b"not a model")
    with pytest.raises(ModelIntegrityError):
        ForestModel.load(tmp_path / "junk.pwf")
    _rewrite(path, {"payload.pkl": b"\x80\x04."})
    with pytest.raises(ModelIntegrityError, match="expected"):
        ForestModel.load(path)


def test_an_object_array_is_refused_without_unpickling(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    _rewrite(path, {"threshold.npy": buffer.getvalue()})
    with pytest.raises(ModelIntegrityError, match="unreadable"):
        ForestModel.load(path)


def test_malformed_trees_with_a_valid_digest_are_refused_before_scoring(model: ForestModel, tmp_path: Path) -> None:
    """Someone who recomputes the digest still can't make the scorer loop or read out of bounds."""
    path = tmp_path / "model.pwf"
    model.save(path)
    for array, problem in (
        ("children_left", "backwards"),
        ("feature", "outside the model's inputs"),
        ("children_right", "two parents"),
    ):
        manifest, arrays = _arrays(path)
        inner = np.flatnonzero(arrays["children_left"] >= 0)
        arrays[array] = arrays[array].copy()
        bad_value = {"children_left": 0, "feature": 99, "children_right": arrays["children_left"][inner[1]]}
        arrays[array][inner[1]] = bad_value[array]
        manifest["sha256"] = _digest(manifest, arrays)
        bad = tmp_path / f"bad-{array}.pwf"
        bad.write_bytes(path.read_bytes())
        _rewrite(bad, {MANIFEST: json.dumps(manifest).encode(), f"{array}.npy": _npy(arrays[array])})
        with pytest.raises(ModelIntegrityError, match=problem):
            ForestModel.load(bad)


def test_loading_and_scoring_need_no_scikit_learn(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    expected = model.score_samples(_probe()[:5])
    code = (
        "import sys, json, numpy as np; sys.modules['sklearn'] = None\n"
        "from plantwatch.models import ForestModel\n"
        f"m = ForestModel.load({str(path)!r})\n"
        f"x = np.random.default_rng(1).normal(size=(300, {len(SPEC.names)})) * 3\n"
        "print(json.dumps(m.score_samples(x[:5]).tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert np.array_equal(np.array(json.loads(out.stdout)), expected)


def test_the_documented_example_runs() -> None:
    import doctest

    import plantwatch.models.forest

    require_sklearn()
    result = doctest.testmod(plantwatch.models.forest, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_an_array_of_the_wrong_type_is_refused_even_with_a_valid_digest(model: ForestModel, tmp_path: Path) -> None:
    path = tmp_path / "model.pwf"
    model.save(path)
    manifest, arrays = _arrays(path)
    arrays["children_left"] = arrays["children_left"].astype(np.float64)
    manifest["arrays"]["children_left"]["dtype"] = arrays["children_left"].dtype.str
    manifest["sha256"] = _digest(manifest, arrays)
    _rewrite(path, {MANIFEST: json.dumps(manifest).encode(), "children_left.npy": _npy(arrays["children_left"])})
    with pytest.raises(ModelIntegrityError, match="expected int64"):
        ForestModel.load(path)


def _central_directory_edit(path: Path, edit: Callable[[bytearray, int], None]) -> None:
    """Apply ``edit(data, offset)`` at every central-directory entry of the zip at ``path``."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        edit(data, at)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def _set_encrypted(data: bytearray, at: int) -> None:
    data[at + 8] |= 1  # general purpose flag bit 0: encrypted


def _set_method_99(data: bytearray, at: int) -> None:
    data[at + 10 : at + 12] = (99).to_bytes(2, "little")  # a compression method zipfile doesn't implement


def _flip_array_bytes(path: Path) -> None:
    """Damage the deflated bytes of one array entry, leaving the zip's directory intact (bit rot on a card)."""
    with zipfile.ZipFile(path) as zf:
        entry = next(i for i in zf.infolist() if i.filename.endswith(".npy") and i.compress_size > 300)
    data = bytearray(path.read_bytes())
    start = entry.header_offset + 30 + len(entry.filename) + len(entry.extra) + 100
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["arrays-not-described", "bit-rot", "encrypted", "compression-99"])
def test_an_unreadable_or_undescribed_artifact_is_refused_as_an_integrity_error(
    model: ForestModel, tmp_path: Path, damage: str
) -> None:
    """Every way a file can be unreadable is a ModelIntegrityError, which the gateway refuses and logs; any other
    exception would stop the gateway at start (found by review: these four escaped)."""
    path = tmp_path / "model.pwf"
    model.save(path)
    if damage == "arrays-not-described":
        manifest, _ = _arrays(path)
        _rewrite(path, {MANIFEST: json.dumps({**manifest, "arrays": []}).encode()})
    elif damage == "bit-rot":
        _flip_array_bytes(path)
    else:
        _central_directory_edit(path, _set_encrypted if damage == "encrypted" else _set_method_99)
    with pytest.raises(ModelIntegrityError):
        ForestModel.load(path)


def test_a_voting_envelope_is_written_as_format_2_and_refused_under_format_1(
    model: ForestModel, tmp_path: Path
) -> None:
    """A reader that predates votes knows only format 1, so it refuses a voting model instead of ignoring its
    votes; models without one stay format 1, which every reader loads."""
    import msgspec

    from plantwatch.models.envelope import fit_envelope

    rows = np.random.default_rng(2).normal(size=(200, len(SPEC.names)))
    voting = ForestModel(model.trees, msgspec.structs.replace(model.info, envelope=fit_envelope(rows, SPEC, votes=2)))
    one_vote = ForestModel(model.trees, msgspec.structs.replace(model.info, envelope=fit_envelope(rows, SPEC)))
    for name, m, version in (("plain", model, 1), ("one-vote", one_vote, 1), ("voting", voting, 2)):
        m.save(tmp_path / f"{name}.pwf")
        assert _arrays(tmp_path / f"{name}.pwf")[0]["format_version"] == version
        assert ForestModel.load(tmp_path / f"{name}.pwf").info.envelope == m.info.envelope
    manifest, arrays = _arrays(tmp_path / "voting.pwf")
    manifest["format_version"] = 1  # what a writer that forgot the format would produce, digest recomputed
    manifest["sha256"] = _digest(manifest, arrays)
    _rewrite(tmp_path / "voting.pwf", {MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(ModelIntegrityError, match="voting envelope needs format version 2"):
        ForestModel.load(tmp_path / "voting.pwf")
    manifest["format_version"] = 3
    manifest["sha256"] = _digest(manifest, arrays)
    _rewrite(tmp_path / "voting.pwf", {MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(ModelIntegrityError, match="format version 3, this reader knows 1, 2"):
        ForestModel.load(tmp_path / "voting.pwf")
