"""The model registry: versioned artifacts with metadata, and champion/challenger promotion.

The same layout on a local folder and under an S3 prefix (any :class:`ObjectStore`)::

    <name>/versions/<version>/model.pwf     the artifact (ForestModel.save)
    <name>/versions/<version>/entry.json    status, parent, SHA-256, spec hash, window, rows, metrics
    <name>/versions/<version>/report.json   the evaluation report the decision was made on
    <name>/versions/<version>/published.json where it was last published (e.g. its Greengrass component version)
    <name>/champion.json                    {"version", "sha256", "pinned"}: what gateways should run

Versions are 1, 2, 3, ... per model name. A challenger is promoted only when it is not worse than the champion
on the same evaluation set (:func:`compare`); otherwise it stays, with status ``rejected``, and its report.
An operator rolls back by promoting an earlier version (``plantwatch registry promote``), which pins it: no
challenger replaces a pinned champion until the operator unpins it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import msgspec

from plantwatch.models.artifact import artifact_sha256
from plantwatch.models.evaluation import TARGET_FALSE_ALERTS_PER_LINE_DAY
from plantwatch.models.forest import ForestModel

log = logging.getLogger(__name__)

ARTIFACT: Final = "model.pwf"
#: A challenger may be this much slower (median detection delay, seconds) and still be promoted.
DELAY_TOLERANCE_S: Final = 5.0
#: ... and its forest's ROC AUC this much lower (on the simulator, retraining on new healthy data moves it ~0.002).
AUC_TOLERANCE: Final = 0.01

Status = Literal["candidate", "champion", "rejected", "retired"]
#: ``decide(..., against=UNCHECKED)``: the caller does not say which champion its metrics are of.
UNCHECKED: Final = "*"


class ChampionChangedError(ValueError):
    """The champion a promotion was decided against is no longer the champion, or it is pinned."""


class ObjectStore(Protocol):
    """Bytes by key: a local folder or an S3 prefix."""

    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) ``key``."""
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes of ``key``, or None when absent."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The bytes of ``key`` and a tag that changes when they do (an S3 ETag), or None when absent."""
        ...

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """Write ``key`` only if it still has ``tag`` (None: only if it is absent); False when it does not."""
        ...


class RegistryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Everything known about one model version."""

    name: str
    version: str
    status: Status
    parent: str | None
    sha256: str
    feature_spec_hash: str | None
    threshold: float
    training_window: dict[str, int] = msgspec.field(default_factory=dict)
    rows: dict[str, int] = msgspec.field(default_factory=dict)
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    decision: str = ""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a challenger against the champion."""

    promote: bool
    reason: str


def compare(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None) -> Decision:
    """Promote unless the challenger catches fewer episodes, raises more false alerts, or is clearly slower;
    with no champion, promote it only if it meets every target it was evaluated against.

    Both arguments are evaluation summaries on the same set (:func:`plantwatch.models.pipeline.decision_summary`).
    Where they carry ``forest_only`` (the forest without thresholds and limits) the forest is judged as well:
    thresholds and limits alone can meet the targets, and a forest trained on seconds of data must not replace
    one that separates faults, nor become the first champion unless it meets the targets by itself.
    """
    if champion is None:
        missed = [name for name, met in challenger.get("targets_met", {}).items() if not met]
        forest = challenger.get("forest_only")
        if forest is not None:
            missed += [f"{name} (forest alone)" for name, met in forest.get("targets_met", {}).items() if not met]
        if missed:
            return Decision(promote=False, reason=f"no champion yet, and it misses targets: {', '.join(missed)}")
        return Decision(promote=True, reason="no champion yet")
    worse = _worse(challenger, champion, "")
    if worse is None and "forest_only" in challenger and "forest_only" in champion:
        worse = _worse(challenger["forest_only"], champion["forest_only"], "its forest alone ")
    if worse is not None:
        return Decision(promote=False, reason=worse)
    return Decision(promote=True, reason="not worse than the champion on the same evaluation set")


def _worse(challenger: Mapping[str, Any], champion: Mapping[str, Any], who: str) -> str | None:
    """Why ``challenger`` is worse than ``champion`` (two summaries of one decision), or None."""
    c_recall = challenger["detected"] / max(challenger["episodes"], 1)
    k_recall = champion["detected"] / max(champion["episodes"], 1)
    if c_recall < k_recall:
        return f"{who}detects fewer episodes ({c_recall:.3f} < {k_recall:.3f})"
    c_false, k_false = challenger["max_false_alerts_per_line_day"], champion["max_false_alerts_per_line_day"]
    if c_false > k_false and c_false > TARGET_FALSE_ALERTS_PER_LINE_DAY:
        return f"{who}raises more false alerts per line per day ({c_false:.2f} > {k_false:.2f})"
    c_delay, k_delay = challenger.get("median_delay_s"), champion.get("median_delay_s")
    if c_delay is not None and k_delay is not None and c_delay > k_delay + DELAY_TOLERANCE_S:
        return f"{who}detects more slowly ({c_delay:.1f} s > {k_delay:.1f} s median)"
    c_auc, k_auc = challenger.get("roc_auc"), champion.get("roc_auc")
    if c_auc is not None and k_auc is not None and c_auc < k_auc - AUC_TOLERANCE:
        return f"{who}separates faulty from healthy readings worse (ROC AUC {c_auc:.3f} < {k_auc:.3f})"
    return None


class ModelRegistry:
    """Versioned models over an :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name``, oldest first."""
        found = {key.split("/")[2] for key in self.store.list(f"{name}/versions/") if key.count("/") >= 3}
        return sorted(found, key=lambda v: (len(v), v))

    def next_version(self, name: str) -> str:
        """The version the next registration of ``name`` gets."""
        existing = [int(v) for v in self.versions(name) if v.isdigit()]
        return str(max(existing, default=0) + 1)

    def entry(self, name: str, version: str) -> RegistryEntry:
        """One version's entry."""
        data = self.store.get(f"{name}/versions/{version}/entry.json")
        if data is None:
            raise KeyError(f"{name} version {version} is not registered")
        return msgspec.json.decode(data, type=RegistryEntry)

    def champion(self, name: str) -> RegistryEntry | None:
        """The promoted version of ``name``, if any."""
        pointer = self._champion_pointer(name)
        return None if pointer is None else self.entry(name, pointer["version"])

    def pinned(self, name: str) -> bool:
        """Whether an operator pinned the champion (challengers are then not promoted)."""
        pointer = self._champion_pointer(name)
        return bool(pointer and pointer.get("pinned"))

    def _champion_pointer(self, name: str) -> dict[str, Any] | None:
        return self._tagged_pointer(name)[0]

    def _tagged_pointer(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """``champion.json`` and its tag, for a write that only lands if nobody wrote it since."""
        tagged = self.store.get_tagged(f"{name}/champion.json")
        return (None, None) if tagged is None else (dict(msgspec.json.decode(tagged[0])), tagged[1])

    def _swap_pointer(self, name: str, pointer: Mapping[str, Any], tag: str | None) -> None:
        """Write ``champion.json`` if it is still as read with ``tag``; ChampionChangedError if another
        promotion, pin or unpin wrote it in between (a conditional write: S3 If-Match, a file lock locally).

        A refusal is checked against what is there now: the bytes written (a request that landed, then was
        retried by the SDK after a timeout and refused, its tag being stale by then) are success; an unchanged
        tag (S3's 409 for a conditional write in flight that did not land) is tried once more."""
        key, data = f"{name}/champion.json", msgspec.json.encode(dict(pointer))
        for _ in range(2):
            if self.store.put_if(key, data, tag):
                return
            now = self.store.get_tagged(key)
            if now is not None and now[0] == data:
                return
            if (None if now is None else now[1]) != tag:
                break
        raise ChampionChangedError("another promotion or pin changed the champion at the same moment")

    def _settle(self, name: str) -> None:
        """Retire every version whose entry says champion but ``champion.json`` does not name. Each retirement is a
        conditional write on the entry as read, after ``champion.json`` was read again, so a promotion or pin that
        lands meanwhile (and rewrites that entry) is never retired."""
        for other in self.versions(name):
            key = f"{name}/versions/{other}/entry.json"
            tagged = self.store.get_tagged(key)
            if tagged is None:
                continue  # an interrupted registration
            entry = msgspec.json.decode(tagged[0], type=RegistryEntry)
            pointer = self._champion_pointer(name)
            if entry.status == "champion" and (pointer is None or pointer["version"] != other):
                self.store.put_if(key, _entry_bytes(msgspec.structs.replace(entry, status="retired")), tagged[1])

    def report(self, name: str, version: str) -> dict[str, Any] | None:
        """The evaluation report stored with a version."""
        data = self.store.get(f"{name}/versions/{version}/report.json")
        return None if data is None else dict(msgspec.json.decode(data))

    def artifact_bytes(self, name: str, version: str) -> bytes:
        """A version's artifact, as stored."""
        data = self.store.get(f"{name}/versions/{version}/{ARTIFACT}")
        if data is None:
            raise KeyError(f"{name} version {version} has no artifact")
        return data

    def load(self, name: str, version: str) -> ForestModel:
        """A version's model, verified against the SHA-256 its entry records."""
        entry = self.entry(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ARTIFACT
            path.write_bytes(self.artifact_bytes(name, version))
            return ForestModel.load(path, sha256=entry.sha256)

    def register(
        self, model: ForestModel, *, metrics: Mapping[str, Any], report: Mapping[str, Any] | None = None
    ) -> RegistryEntry:
        """Store a model as a candidate under its own name and version (set by the trainer). The artifact is
        written first, only if absent, which claims the version: of two runs that took the same next version,
        the second gets ValueError rather than overwriting the first's model."""
        name, version = model.info.name, model.info.version
        taken = ValueError(f"{name} version {version} is already registered")
        if self.store.get(f"{name}/versions/{version}/entry.json") is not None:
            raise taken
        champion = self.champion(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ARTIFACT
            model.save(path)
            data = path.read_bytes()
            sha = artifact_sha256(path)
        training = model.info.training
        entry = RegistryEntry(
            name=name,
            version=version,
            status="candidate",
            parent=champion.version if champion else None,
            sha256=sha,
            feature_spec_hash=model.feature_spec.hash if model.feature_spec else None,
            threshold=model.info.threshold,
            training_window=dict(training.get("window", {})),
            rows={k: int(training[k]) for k in ("feature_rows", "healthy_rows_used", "excluded_rows") if k in training},
            metrics=dict(metrics),
        )
        base = f"{name}/versions/{version}"
        # refused: another run's claim, unless the bytes there are these (a write that landed and was retried)
        if not self.store.put_if(f"{base}/{ARTIFACT}", data, None) and self.store.get(f"{base}/{ARTIFACT}") != data:
            raise taken
        self.store.put(f"{base}/report.json", msgspec.json.encode(dict(report or {}), order="sorted"))
        self._write_entry(entry)
        return entry

    def decide(
        self,
        name: str,
        version: str,
        champion_metrics: Mapping[str, Any] | None,
        *,
        against: str | None = UNCHECKED,
    ) -> Decision:
        """Promote ``version`` or keep it as rejected, given the champion's metrics on the same evaluation set.
        ``against``: the champion version those metrics are of (None: there was none; UNCHECKED: not said). A
        challenger is never promoted over a pinned champion, nor when the champion is no longer ``against`` (an
        operator's rollback while it was evaluated)."""
        entry = self.entry(name, version)
        decision = self._other_features(entry, against) or compare(entry.metrics, champion_metrics)
        if decision.promote:
            try:
                self.promote(name, version, decision.reason, over=against)
            except ChampionChangedError as exc:
                decision = Decision(promote=False, reason=str(exc))
        if not decision.promote:
            self._write_entry(msgspec.structs.replace(entry, status="rejected", decision=decision.reason))
        log.info("registry decision", extra={"model": name, "version": version, "promote": decision.promote})
        return decision

    def _other_features(self, entry: RegistryEntry, against: str | None) -> Decision | None:
        """A refusal when the champion (``against``, or the current one) was trained on other features: metrics on
        one set of feature rows don't compare the two, and a gateway keeps its windows only within one
        specification. Such a change is an operator's call (``registry promote --force``)."""
        champion = self.champion(entry.name) if against == UNCHECKED else None
        version = champion.version if champion is not None else against
        if version is None or version == UNCHECKED or version == entry.version:
            return None
        theirs = (
            champion.feature_spec_hash if champion is not None else self.entry(entry.name, version).feature_spec_hash
        )
        if theirs == entry.feature_spec_hash:
            return None
        return Decision(
            promote=False,
            reason=f"trained on other features than champion v{version}: not compared; an operator may promote it "
            "with `plantwatch registry promote --force` after reading both reports",
        )

    def promote(
        self, name: str, version: str, reason: str, *, pin: bool = False, over: str | None = UNCHECKED
    ) -> RegistryEntry:
        """Make ``version`` the champion (retiring the others): a decision, or an operator's rollback (``pin``: no
        challenger replaces it until :meth:`unpin`). The version's artifact must load and match its SHA-256
        (KeyError/ValueError otherwise). Only another pin replaces a pinned champion. ``over``: the champion it may
        replace (None: none). Both are checked right before ``champion.json``, what gateways follow, is written
        (ChampionChangedError), and it is written only if nobody wrote it since it was read, so of two promotions at
        the same moment one wins and the other gets ChampionChangedError. The entries' statuses follow ``champion.json``
        (:meth:`_settle`)."""
        entry = self.entry(name, version)
        self.load(name, version)  # verified before the champion is checked: that may take seconds on S3
        pointer, tag = self._tagged_pointer(name)
        if not pin and pointer is not None and pointer.get("pinned") and pointer["version"] != version:
            raise ChampionChangedError(f"champion v{pointer['version']} is pinned")
        if over != UNCHECKED and (pointer["version"] if pointer else None) != over:
            raise ChampionChangedError("the champion changed while this version was evaluated")
        self._swap_pointer(name, {"version": version, "sha256": entry.sha256, "pinned": pin}, tag)
        promoted = msgspec.structs.replace(entry, status="champion", decision=reason)
        self._write_entry(promoted)
        self._settle(name)  # the statuses follow champion.json (this version's too, if another overtook it)
        return promoted

    def unpin(self, name: str) -> None:
        """Let challengers be promoted over the champion again."""
        pointer, tag = self._tagged_pointer(name)
        if pointer is None:
            raise KeyError(f"{name} has no champion")
        self._swap_pointer(name, {**pointer, "pinned": False}, tag)

    def published(self, name: str, version: str) -> dict[str, Any] | None:
        """Where that version was last published (what :meth:`note_published` kept), if anywhere."""
        data = self.store.get(f"{name}/versions/{version}/published.json")
        return None if data is None else dict(msgspec.json.decode(data))

    def note_published(self, name: str, version: str, where: Mapping[str, Any]) -> None:
        """Keep where a version was published (e.g. its Greengrass component version), so the next publish of
        it finds that, rather than publishing it again; written only when it changed."""
        if self.published(name, version) != dict(where):
            self.store.put(
                f"{name}/versions/{version}/published.json", msgspec.json.encode(dict(where), order="sorted")
            )

    def _write_entry(self, entry: RegistryEntry) -> None:
        self.store.put(f"{entry.name}/versions/{entry.version}/entry.json", _entry_bytes(entry))


def _entry_bytes(entry: RegistryEntry) -> bytes:
    """An entry as stored (sorted keys, indented: readable in a bucket's console)."""
    return msgspec.json.format(msgspec.json.encode(entry, order="sorted"))
