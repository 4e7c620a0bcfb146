"""Score summaries: what a gateway reports per window and line about its forest's anomaly scores (drift input).

Wire format v1 (plain JSON, described by ``schemas/score-summary.v1.json``), published on
``plantwatch/gateways/{gateway_id}/summaries`` through the gateway's spool, like batches and alerts::

    {"schema": "plantwatch.score-summary.v1", "gateway_id": "gw-line-1", "plant": "plant-1", "line": "line-1",
     "model": {"name": "plant-1.line-1", "version": "3"}, "start_ms": ..., "end_ms": ...,
     "counts": [20 ints], "mean": 0.41, "p99": 0.55, "reference": [20 training fractions]}

``counts`` are the window's forest scores in equal bins over [0, 1]; ``reference`` is the scoring model's
training score histogram in the same bins, so the cloud compares the window with the model that actually
scored it without reading the registry. ``gateway_id``, ``line``, ``start_ms`` and the model version are
the idempotency key (a window in which the model was swapped gives one summary per model).
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import msgspec

from plantwatch.contract.batch import MODEL_REF_MAX, ModelRef
from plantwatch.contract.reading import IDENT_PATTERN

SUMMARY_SCHEMA: Final = "plantwatch.score-summary.v1"
#: Bins of the score histogram (equal bins over [0, 1]; the training histogram uses the same).
SUMMARY_BINS: Final = 20
_IDENT = re.compile(IDENT_PATTERN)


class ScoreSummaryMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One window of one line's forest scores, with the model that scored them and its training reference."""

    schema: str = SUMMARY_SCHEMA
    gateway_id: str
    plant: str
    line: str
    model: ModelRef
    start_ms: int
    end_ms: int
    counts: list[int]
    mean: float
    p99: float
    reference: list[float]

    @property
    def key(self) -> str:
        """Idempotency key: the same window of the same line and model delivered twice has the same key."""
        return f"{self.gateway_id}:{self.line}:{self.start_ms}:{self.model.version}"

    @property
    def total(self) -> int:
        """Scores in the window."""
        return sum(self.counts)


def encode_summary(summary: ScoreSummaryMessage) -> bytes:
    """The wire form of a summary."""
    return msgspec.json.encode(summary)


def _problem(s: ScoreSummaryMessage) -> str | None:
    for field, value in (("gateway_id", s.gateway_id), ("plant", s.plant), ("line", s.line)):
        if not _IDENT.match(value):
            return f"{field} {value[:70]!r} is not an identifier"
    if not (0 < len(s.model.name) <= MODEL_REF_MAX and 0 < len(s.model.version) <= MODEL_REF_MAX):
        return f"model name and version must be 1-{MODEL_REF_MAX} characters"
    if not 0 <= s.start_ms < s.end_ms:
        return f"window [{s.start_ms}, {s.end_ms}) is empty or negative"
    if len(s.counts) != SUMMARY_BINS or len(s.reference) != SUMMARY_BINS:
        return f"{len(s.counts)} counts and {len(s.reference)} reference bins, expected {SUMMARY_BINS} each"
    if any(c < 0 for c in s.counts) or s.total == 0:
        return "counts must be non-negative and not all zero"
    if any(not (0.0 <= q <= 1.0) for q in s.reference) or not math.isclose(sum(s.reference), 1.0, abs_tol=1e-3):
        return "reference must be fractions in [0, 1] summing to 1"
    if not all(math.isfinite(x) for x in (s.mean, s.p99)):
        return "mean and p99 must be finite"
    return None


def decode_summary(payload: bytes) -> ScoreSummaryMessage:
    """Parse and validate a summary; raises ValueError with a reason a person can act on."""
    try:
        document: Any = msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"score summary is not JSON: {exc}") from exc
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema != SUMMARY_SCHEMA:
        raise ValueError(f"not a score summary: schema {str(schema)[:40]!r}, expected {SUMMARY_SCHEMA!r}")
    try:
        summary = msgspec.convert(document, ScoreSummaryMessage)
    except msgspec.ValidationError as exc:
        raise ValueError(f"score summary does not match {SUMMARY_SCHEMA}: {exc}") from exc
    problem = _problem(summary)
    if problem is not None:
        raise ValueError(f"bad score summary: {problem}")
    return summary
