"""``GET /v1/export``'s encodings (CSV, Parquet) and the limits a deployment puts on them: rows, response bytes,
formats it cannot serve."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from plantwatch.services.analytics import Row

ExportFormat = Literal["csv", "parquet"]
EXPORT_MAX_ROWS: Final = 100_000
MEDIA_TYPES: Final[Mapping[str, str]] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
COLUMNS: Final = (
    "plant",
    "line",
    "asset",
    "sensor_id",
    "sensor_type",
    "unit",
    "ts_ms",
    "value",
    "score",
    "anomaly",
    "reasons",
    "model",
)


@dataclass(frozen=True)
class BodyLimit:
    """A cap on a response body as the runtime carries it (e.g. inside an AWS Lambda response)."""

    max_bytes: int
    measure: Callable[[bytes, str], int]  # (body, media type) -> bytes it takes on the way out
    why: str  # told to the caller, e.g. "an AWS Lambda response carries at most 6 MB"


@dataclass(frozen=True)
class ExportLimits:
    """What ``GET /v1/export`` may answer in one deployment."""

    max_rows: int = EXPORT_MAX_ROWS
    body: BodyLimit | None = None
    refused_formats: Mapping[str, str] = field(default_factory=dict)  # format -> why this deployment can't serve it


def encode(rows: list[Row], export_format: ExportFormat) -> bytes:
    """The readings as a CSV or Parquet file, columns :data:`COLUMNS` (reasons joined by ';' in CSV)."""
    if export_format == "parquet":
        import pyarrow as pa  # only here: the local platform has it; the cloud's zip refuses Parquet instead
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(pa.table({c: [r[c] for r in rows] for c in COLUMNS}), sink)
        return sink.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([";".join(r[c]) if c == "reasons" else r[c] for c in COLUMNS])
    return text.getvalue().encode()


def end_that_fits(rows: list[Row], size: int, max_bytes: int) -> int | None:
    """An ``end`` (epoch ms, exclusive) whose export should fit ``max_bytes``, by the rows' average encoded size with
    10 % to spare; None when no shorter range starting at the same time can be suggested."""
    keep = int(len(rows) * max_bytes / size * 0.9)
    if not 0 < keep < len(rows) or rows[keep]["ts_ms"] <= rows[0]["ts_ms"]:
        return None
    return int(rows[keep]["ts_ms"])
