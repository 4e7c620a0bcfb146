"""The anomaly decision: hard thresholds and configured limits per reading, the Isolation Forest per asset window.

Scores follow one convention: higher is more anomalous, in [0, 1]. A reading's score is the larger of its
threshold score (:class:`ThresholdScorer`: 0 inside every band, 0.5..1 outside) and its asset's forest
anomaly score (:meth:`ForestModel.anomaly_score`, compared with the model's own threshold). A reading is
anomalous when any rule flags it, and carries every reason that did: ``threshold.low|high`` (original
design), ``limit.low|high`` (configured operating limits), ``model.iforest`` (the forest), ``model.envelope``
(the model's optional training envelope: a window mean far outside the training rows' spread).

Reported scores are rounded to :data:`SCORE_DECIMALS` places (flags are decided before rounding): finer
detail means nothing to an operator, and short numbers make batches about 20 % smaller on the wire.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Final

from plantwatch.contract.batch import ModelRef
from plantwatch.contract.reading import Reading, ScoredReading
from plantwatch.domain.features import AssetKey, FeatureSpec, FeatureWindows
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.models import ForestModel

log = logging.getLogger(__name__)

MODEL_REASON: Final = "model.iforest"
ENVELOPE_REASON: Final = "model.envelope"
_NO_VERDICT: Final[tuple[float, tuple[str, ...]]] = (0.0, ())
_REASONS: Final = {
    (False, False): (),
    (True, False): (MODEL_REASON,),
    (False, True): (ENVELOPE_REASON,),
    (True, True): (MODEL_REASON, ENVELOPE_REASON),
}
SCORE_DECIMALS: Final = 4
#: At most this many scoring calls' forest scores wait for :meth:`AnomalyDetector.take_model_scores`.
MAX_KEPT_CALLS: Final = 10_000

#: One scoring call's forest scores: the model, and (line, event time ms, anomaly score) per scored asset.
ModelScores = tuple[ForestModel, list[tuple[str, int, float]]]


class ModelMismatchError(ValueError):
    """The model was trained on other features than this gateway computes; it must not score here."""


def check_model(model: ForestModel, spec: FeatureSpec) -> None:
    """Raise :class:`ModelMismatchError` unless ``model`` was trained on exactly the features of ``spec``."""
    trained = model.feature_spec
    if trained is None:
        raise ModelMismatchError(
            f"model {model.info.name} {model.info.version} records no feature specification: "
            "convert it with ForestModel.from_sklearn(..., feature_spec=...)"
        )
    if trained.hash != spec.hash:
        raise ModelMismatchError(
            f"model {model.info.name} {model.info.version} was trained on features {trained.hash[:12]} "
            f"(window {trained.window}, types {list(trained.sensor_types)}), but this gateway computes "
            f"{spec.hash[:12]} (window {spec.window}, types {list(spec.sensor_types)}): "
            "retrain the model or change the gateway's feature configuration"
        )


def trained_for_line(model: ForestModel, line: str) -> bool:
    """Whether ``model`` was trained for ``line``: True for a model trained per asset class or without a
    recorded scope (it may score any asset); for a line's model (training scope ``line``, named
    ``<plant>.<line>``, the plant possibly holding dots) whether its name ends with that line."""
    if model.info.training.get("scope") != "line":
        return True
    return model.info.name.endswith(f".{line}")


def load_model_for(path: str | Path, spec: FeatureSpec, *, sha256: str | None = None) -> ForestModel:
    """Load and verify an artifact, and check it fits ``spec``; raises ModelIntegrityError or ModelMismatchError."""
    model = ForestModel.load(path, sha256=sha256)
    check_model(model, spec)
    return model


class AnomalyDetector:
    """Scores readings as they arrive: thresholds per reading, the forest on each asset's feature window.

    Drop-in for :class:`ThresholdScorer` (``score``/``score_many``). In one ``score_many`` call every reading
    first enters its asset's window; then each touched asset with full windows is scored once, on its
    window as of the end of the call, and that verdict applies to the call's readings of that asset.
    Feed one poll of the sources per call (at 1 Hz that is one feature row per asset per second, the same
    rows :func:`bulk_features` gives training). A model trained for one line (:func:`trained_for_line`) that
    scores another line's assets says so in a warning, once per model version and line.
    """

    def __init__(
        self,
        *,
        spec: FeatureSpec,
        thresholds: ThresholdScorer | None = None,
        model: ForestModel | None = None,
    ) -> None:
        if model is not None:
            check_model(model, spec)
        self.spec = spec
        self.thresholds = thresholds or ThresholdScorer()
        self.model = model
        self.windows = FeatureWindows(spec)
        #: the assets the model judged in the last scoring call (none while windows fill, or across an outage)
        self.judged: Collection[AssetKey] = ()
        self._kept: deque[ModelScores] | None = None
        #: (model name, version, line) already checked for a line's model scoring another line.
        self._checked_lines: set[tuple[str, str, str]] = set()

    def take_model_scores(self) -> list[ModelScores]:
        """The forest scores since the last call (drift summaries); keeping them starts with the first call."""
        if self._kept is None:
            self._kept = deque(maxlen=MAX_KEPT_CALLS)
            return []
        out = list(self._kept)
        self._kept.clear()
        return out

    @property
    def model_ref(self) -> ModelRef:
        """The model recorded in batches: the forest's name and version, or the thresholds'."""
        return self.model.ref if self.model is not None else THRESHOLD_MODEL

    def with_model(self, model: ForestModel) -> AnomalyDetector:
        """A detector scoring with ``model`` and the same thresholds; with the same feature specification it
        continues this one's feature windows (the forest scores from the first reading after a swap), with
        another it starts its own. Raises :class:`ModelMismatchError` if ``model`` records no specification."""
        check_model(model, model.feature_spec or self.spec)  # refuses a model that records no specification
        spec = model.feature_spec
        assert spec is not None
        detector = AnomalyDetector(spec=spec, thresholds=self.thresholds, model=model)
        if spec.hash == self.spec.hash:
            detector.windows = self.windows
        if self._kept is not None:  # drift summaries are being taken: keep every forest score from the first call
            detector._kept = deque(maxlen=MAX_KEPT_CALLS)
        return detector

    def swap_model(self, model: ForestModel) -> None:
        """Score with ``model`` from now on; on ModelMismatchError the current model stays in use."""
        check_model(model, self.spec)
        previous = self.model_ref
        self.model = model
        log.info("model swapped", extra={"previous": previous.version, "model": model.info.version})

    def load_model(self, path: str | Path, *, sha256: str | None = None) -> ForestModel:
        """Load, verify and check an artifact, then score with it; on any error the current model stays.

        Raises :class:`~plantwatch.models.ModelIntegrityError` (altered, malformed, or not the expected
        SHA-256) or :class:`ModelMismatchError` (trained on other features than this gateway computes).
        """
        model = load_model_for(path, self.spec, sha256=sha256)
        self.swap_model(model)
        return model

    def score(self, reading: Reading) -> ScoredReading:
        """Score one reading (a call of its own: the forest sees the window including this reading)."""
        return self.score_many([reading])[0]

    def score_many(self, readings: Sequence[Reading]) -> list[ScoredReading]:
        """Score readings in order; see the class docstring for when the forest looks at a window."""
        model = self.model  # one model for the whole call, even if another thread swaps it meanwhile
        keys = [self.windows.push(reading) for reading in readings]
        verdicts = self._asset_verdicts(model, keys) if model is not None else {}
        self.judged = verdicts.keys()  # the assets the model judged in this call (alerts step only on those)
        if model is not None and verdicts and self._kept is not None:
            last_ts = {key: r.ts_ms for r, key in zip(readings, keys, strict=True) if key is not None}
            self._kept.append((model, [(k[0], last_ts[k], v[0]) for k, v in verdicts.items()]))
        out: list[ScoredReading] = []
        for reading, key in zip(readings, keys, strict=True):
            scored = self.thresholds.score(reading)
            model_score, model_reasons = verdicts.get(key, _NO_VERDICT) if key is not None else _NO_VERDICT
            out.append(
                ScoredReading(
                    reading=reading,
                    score=round(max(scored.score, model_score), SCORE_DECIMALS),
                    anomaly=scored.anomaly or bool(model_reasons),
                    reasons=(*scored.reasons, *model_reasons) if model_reasons else scored.reasons,
                )
            )
        return out

    def _note_other_lines(self, model: ForestModel, lines: set[str]) -> None:
        """Warn, once per model version and line, that a line's model scores another line's assets."""
        for line in lines:
            key = (model.info.name, model.info.version, line)
            if key in self._checked_lines:
                continue
            self._checked_lines.add(key)
            if not trained_for_line(model, line):
                log.warning(
                    "model %s %s was trained for another line and scores %s's assets; train and deploy %s's "
                    "own model (its thing group's model component) for verdicts fitted to that line",
                    *(model.info.name, model.info.version, line, line),
                )

    def _asset_verdicts(
        self, model: ForestModel, keys: Sequence[AssetKey | None]
    ) -> dict[AssetKey, tuple[float, tuple[str, ...]]]:
        touched = list(dict.fromkeys(key for key in keys if key is not None))
        self._note_other_lines(model, {key[0] for key in touched})
        ready, rows = self.windows.matrix(touched)
        if not ready:
            return {}
        scores, forest, envelope = model.verdicts(rows)
        return {
            key: (score, _REASONS[(f, e)])
            for key, score, f, e in zip(ready, scores.tolist(), forest.tolist(), envelope.tolist(), strict=True)
        }
