"""The compliance report's content and rendering: completeness, gaps, alerts, quarantine, models, integrity.

Pure: the adapter (adapters/compliance_report.py) queries the archive and hands rows here as plain dicts.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

Row = dict[str, Any]
_DAY_MS = 86_400_000


class ReportRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A plant and an inclusive range of UTC days."""

    plant: str
    start: date
    end: date

    @classmethod
    def of(cls, *, plant: str, start: str, end: str) -> ReportRequest:
        """Parse YYYY-MM-DD days; raises ValueError with a usable message."""
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError as exc:
            raise ValueError(f"dates must be YYYY-MM-DD: {exc}") from exc
        if last < first:
            raise ValueError(f"--to {end} is before --from {start}")
        return cls(plant=plant, start=first, end=last)

    @property
    def start_ms(self) -> int:
        """Start of the first day, epoch ms."""
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        """End (exclusive) of the last day, epoch ms."""
        return self.start_ms + ((self.end - self.start).days + 1) * _DAY_MS

    def days(self) -> list[str]:
        """Every day of the range, YYYY-MM-DD."""
        return [(self.start + timedelta(days=i)).isoformat() for i in range((self.end - self.start).days + 1)]


class Section(msgspec.Struct, frozen=True, kw_only=True):
    """One table of the report (also written as a CSV file)."""

    name: str
    title: str
    note: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The whole report."""

    request: ReportRequest
    generated_at_ms: int
    archive: str
    integrity_ok: bool
    sections: tuple[Section, ...]


def iso(ms: int | None) -> str:
    """Epoch ms as ISO-8601 UTC (seconds), or '' for None."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def section(name: str, title: str, note: str, rows: Sequence[Row], columns: Sequence[str]) -> Section:
    """A section from dict rows, keeping ``columns`` in order."""
    return Section(
        name=name,
        title=title,
        note=note,
        columns=tuple(columns),
        rows=tuple(tuple(row.get(c) for c in columns) for row in rows),
    )


def to_csv(sec: Section) -> str:
    """A section as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(sec.columns)
    writer.writerows(sec.rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    req = report.request
    verdict = "intact" if report.integrity_ok else "NOT intact: see Archive integrity"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Compliance report: {html.escape(req.plant)} {req.start} to {req.end}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}th{background:#eee}"
        ".bad{color:#b00;font-weight:bold}</style></head><body>",
        f"<h1>Compliance report: plant {html.escape(req.plant)}, {req.start} to {req.end} (UTC)</h1>",
        f"<p>Generated {iso(report.generated_at_ms)} from archive <code>{html.escape(report.archive)}</code>. "
        f"Archive integrity: <span class='{'ok' if report.integrity_ok else 'bad'}'>{verdict}</span>.</p>",
    ]
    for sec in report.sections:
        parts.append(f"<h2 id='{sec.name}'>{html.escape(sec.title)}</h2><p>{html.escape(sec.note)}</p>")
        if not sec.rows:
            parts.append("<p><em>none</em></p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in sec.columns) + "</tr>")
        parts.extend("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in sec.rows)
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
