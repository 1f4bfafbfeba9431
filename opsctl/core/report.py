"""The health report: fleet, per-version SLA numbers with small charts, alerts, canaries, drift, the
checklist and recent changes, as Markdown or one self-contained HTML page (inline CSS and SVG, no
scripts, fonts or other external resources). Pure: the data comes from ``opsctl.services.report``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from opsctl.clock import utc_iso
from opsctl.core.checklist import ChecklistItem
from opsctl.core.incident import TimelineEntry


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    value: float


@dataclass(frozen=True)
class VersionSection:
    model: str
    version: str
    role: str  # production | canary
    status: str | None
    reason: str
    checks: tuple[tuple[str, float | None, float | None, str], ...]  # name, value, threshold, verdict
    series: tuple[tuple[str, tuple[SeriesPoint, ...]], ...]  # check name -> points over the window


@dataclass(frozen=True)
class AlertLine:
    rule: str
    state: str
    severity: str
    model: str
    version: str
    since: datetime
    summary: str


@dataclass(frozen=True)
class CanaryLine:
    model: str
    canary_version: str
    phase: str
    updated_at: datetime
    last_verdict: str | None


@dataclass(frozen=True)
class DriftLine:
    model: str
    version: str
    kind: str
    verdict: str
    at: datetime
    features: tuple[tuple[str, str, float | None], ...]  # feature, verdict, effect size


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    since: datetime
    versions: tuple[VersionSection, ...]
    alerts: tuple[AlertLine, ...]
    canaries: tuple[CanaryLine, ...]
    drift: tuple[DriftLine, ...]
    checklist: tuple[ChecklistItem, ...]
    changes: tuple[TimelineEntry, ...]


CHART_CHECKS = (("latency_p95", "p95 latency", "ms"), ("error_rate", "error rate", "%"),
                ("request_rate", "traffic", "req/s"))


def sparkline(points: Sequence[SeriesPoint], title: str, unit: str, width: int = 240, height: int = 60) -> str:
    """A small inline SVG line chart with its title, last value and range; 'no data' when empty."""
    label = html.escape(title)
    head = (f'<svg width="{width}" height="{height + 18}" role="img"'
            f' aria-label="{label}" class="chart">')
    if not points:
        return (head + f'<text x="4" y="14" font-size="11">{label}: no data</text>'
                f'<rect x="0.5" y="18.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="#ccc"/></svg>')
    values = [p.value for p in points]
    t0, t1 = points[0].at.timestamp(), points[-1].at.timestamp()
    lo, hi = min(values), max(values)
    span_t, span_v = (t1 - t0) or 1.0, (hi - lo) or 1.0

    def xy(p: SeriesPoint) -> str:
        x = 2 + (p.at.timestamp() - t0) / span_t * (width - 4)
        y = 18 + 2 + (1 - (p.value - lo) / span_v) * (height - 4)
        return f"{x:.1f},{y:.1f}"

    polyline = " ".join(xy(p) for p in points)
    return (head + f'<text x="4" y="14" font-size="11">{label}: {values[-1]:.3g} {html.escape(unit)}'
            f' (min {lo:.3g}, max {hi:.3g})</text>'
            f'<rect x="0.5" y="18.5" width="{width - 1}" height="{height - 1}" fill="#fafafa" stroke="#ccc"/>'
            f'<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{polyline}"/></svg>')


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "_(none)_\n"
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _sections(data: ReportData) -> list[tuple[str, list[str], list[list[str]]]]:
    fleet = [[v.model, v.version, v.role, v.status or "unknown", v.reason] for v in data.versions]
    sla = [[v.model, v.version, name, _num(value), _num(threshold), verdict]
           for v in data.versions for name, value, threshold, verdict in v.checks]
    alerts = [[a.rule, a.state, a.severity, f"{a.model} {a.version}", utc_iso(a.since), a.summary]
              for a in data.alerts]
    canaries = [[c.model, c.canary_version, c.phase, c.last_verdict or "-", utc_iso(c.updated_at)]
                for c in data.canaries]
    drift = [[d.model, d.version, d.kind, d.verdict, utc_iso(d.at),
              ", ".join(f"{f} {v} ({_num(e)})" for f, v, e in d.features)] for d in data.drift]
    checklist = [[i.category, i.title, i.model or "", i.priority.value, i.status.value, i.evidence]
                 for i in data.checklist]
    changes = [[utc_iso(e.at), e.model or "", e.what, e.who, e.why] for e in data.changes]
    return [
        ("Fleet status", ["model", "version", "role", "status", "reason"], fleet),
        ("SLA per version", ["model", "version", "check", "value", "threshold", "verdict"], sla),
        ("Alerts", ["rule", "state", "severity", "version", "since", "summary"], alerts),
        ("Canaries", ["model", "canary", "phase", "last gate verdict", "updated"], canaries),
        ("Drift", ["model", "version", "kind", "verdict", "at", "features"], drift),
        ("Production checklist", ["category", "item", "model", "priority", "status", "evidence"], checklist),
        ("Recent changes", ["at", "model", "what", "who", "why"], changes),
    ]


def render_markdown(data: ReportData) -> str:
    """The report as Markdown (tables; the charts are in the HTML version)."""
    parts = [f"# opsctl health report\n\nGenerated {utc_iso(data.generated_at)}; window since"
             f" {utc_iso(data.since)}.\n"]
    for title, headers, rows in _sections(data):
        parts.append(f"## {title}\n\n{_md_table(headers, rows)}")
    return "\n".join(parts)


_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}th{background:#f3f3f3}
.chart{margin-right:12px}.charts{margin:.3em 0 1em}
.pass,.healthy,.ok{color:#1a7f37}.fail,.degraded,.firing{color:#cf222e}.unknown,.pending{color:#9a6700}"""


def render_html(data: ReportData) -> str:
    """One self-contained HTML page: inline CSS and SVG only."""
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
           f"<title>opsctl health report {esc(utc_iso(data.generated_at))}</title><style>{_CSS}</style></head><body>",
           "<h1>opsctl health report</h1>",
           f"<p>Generated {esc(utc_iso(data.generated_at))}; window since {esc(utc_iso(data.since))}.</p>"]
    for title, headers, rows in _sections(data):
        out.append(f"<h2>{esc(title)}</h2>")
        if title == "SLA per version":
            for v in data.versions:
                series = dict(v.series)
                charts = "".join(sparkline(series.get(name, ()), label, unit) for name, label, unit in CHART_CHECKS)
                out.append(f'<div class="charts"><div>{esc(v.model)} {esc(v.version)} ({esc(v.role)})</div>'
                           f'{charts}</div>')
        if not rows:
            out.append("<p><em>(none)</em></p>")
            continue
        out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
        for row in rows:
            cells = "".join(f'<td class="{esc(c)}">{esc(c)}</td>' if c in ("pass", "fail", "unknown", "healthy",
                                                                           "degraded", "firing", "pending")
                            else f"<td>{esc(c)}</td>" for c in row)
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
