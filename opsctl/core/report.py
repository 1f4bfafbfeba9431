"""The health report: fleet, per-version SLA numbers with small charts, alerts, canaries, drift per
feature with reference vs current distribution plots, performance with intervals, the checklist and
recent changes, as Markdown or one self-contained HTML page (inline CSS and SVG, no
scripts, fonts or other external resources). Pure: the data comes from ``opsctl.services.report``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from opsctl.clock import utc_iso
from opsctl.core.checklist import ChecklistItem
from opsctl.core.drift_policy import Distribution
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
    distributions: tuple[tuple[str, Distribution], ...] = ()  # feature -> reference and current counts


@dataclass(frozen=True)
class MetricInterval:
    """One performance metric on labelled traffic: its value, interval, sample and the floor it is judged by."""

    name: str
    state: str  # ok | degraded | not_enough_labels | no_baseline | undefined
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    baseline: float | None
    floor: float | None


@dataclass(frozen=True)
class PerformanceLine:
    model: str
    version: str
    verdict: str
    at: datetime
    labelled: int
    confidence: float | None  # the level of each metric's interval
    metrics: tuple[MetricInterval, ...]


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
    performance: tuple[PerformanceLine, ...] = ()


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


_REFERENCE, _CURRENT = "#8c959f", "#1f6feb"


def distribution_chart(feature: str, verdict: str, distribution: Distribution, width: int = 260,
                       height: int = 70) -> str:
    """Reference (grey) and current (blue) shares per bin of one feature, as an inline SVG bar chart."""
    label = html.escape(f"{feature}: {verdict}")
    ref_total, cur_total = sum(distribution.reference) or 1, sum(distribution.current) or 1
    ref = [c / ref_total for c in distribution.reference]
    cur = [c / cur_total for c in distribution.current]
    bins = len(ref)
    top = max([*ref, *cur, 1e-9])
    out = [f'<svg width="{width}" height="{height + 32}" role="img" aria-label="{label}" class="chart dist">',
           f'<text x="4" y="13" font-size="11">{label}</text>',
           f'<rect x="0.5" y="18.5" width="{width - 1}" height="{height - 1}" fill="#fafafa" stroke="#ccc"/>']
    if bins == 0:
        return out[0] + out[1] + out[2] + "</svg>"
    slot = (width - 4) / bins
    names = distribution.labels or tuple(
        f"{distribution.edges[i]:.3g} to {distribution.edges[i + 1]:.3g}" for i in range(bins))
    for i in range(bins):
        x = 2 + i * slot
        for share, colour, offset, name in ((ref[i], _REFERENCE, 0.0, "reference"), (cur[i], _CURRENT, 0.5, "current")):
            h = share / top * (height - 4)
            out.append(f'<rect x="{x + offset * slot:.1f}" y="{18 + height - 2 - h:.1f}" width="{slot / 2:.1f}"'
                       f' height="{h:.1f}" fill="{colour}"><title>{html.escape(names[i])}: {name}'
                       f' {share:.1%}</title></rect>')
    if distribution.kind == "numerical" and distribution.edges:
        out.append(f'<text x="2" y="{height + 30}" font-size="10">{distribution.edges[0]:.3g}</text>'
                   f'<text x="{width - 2}" y="{height + 30}" font-size="10" text-anchor="end">'
                   f'{distribution.edges[-1]:.3g}</text>')
    else:
        shown = ", ".join(distribution.labels[:4]) + (", ..." if len(distribution.labels) > 4 else "")
        out.append(f'<text x="2" y="{height + 30}" font-size="10">{html.escape(shown)}</text>')
    out.append(f'<text x="{width - 4}" y="13" font-size="10" text-anchor="end">'
               f'<tspan fill="{_REFERENCE}">reference</tspan> <tspan fill="{_CURRENT}">current</tspan></text>')
    return "".join(out) + "</svg>"


def interval_chart(line: PerformanceLine, width: int = 360) -> str:
    """Each metric on a 0-1 axis: its interval as a bar, its value as a dot, the baseline (black) and the
    floor below which it is degraded (red)."""
    row, left = 22, 80
    height = 20 + row * len(line.metrics)
    span = width - left - 10

    def x(value: float) -> float:
        return left + min(max(value, 0.0), 1.0) * span

    label = html.escape(f"{line.model} {line.version}: {line.verdict}")
    out = [f'<svg width="{width}" height="{height}" role="img" aria-label="{label}" class="chart perf">',
           f'<text x="4" y="13" font-size="11">{label}</text>']
    for i, m in enumerate(line.metrics):
        y = 20 + i * row + row / 2
        out.append(f'<text x="4" y="{y + 4:.0f}" font-size="11">{html.escape(m.name)}</text>'
                   f'<line x1="{left}" y1="{y:.0f}" x2="{left + span}" y2="{y:.0f}" stroke="#ddd"/>')
        if m.ci_low is not None and m.ci_high is not None:
            out.append(f'<rect x="{x(m.ci_low):.1f}" y="{y - 4:.0f}" width="{max(x(m.ci_high) - x(m.ci_low), 1):.1f}"'
                       f' height="8" fill="#b6d4fe"><title>{m.name} interval {m.ci_low:.3f} to {m.ci_high:.3f}'
                       f' (n={m.n})</title></rect>')
        if m.baseline is not None:
            out.append(f'<line x1="{x(m.baseline):.1f}" y1="{y - 7:.0f}" x2="{x(m.baseline):.1f}" y2="{y + 7:.0f}"'
                       f' stroke="#222" stroke-width="1.5"><title>baseline {m.baseline:.3f}</title></line>')
        if m.floor is not None:
            out.append(f'<line x1="{x(m.floor):.1f}" y1="{y - 7:.0f}" x2="{x(m.floor):.1f}" y2="{y + 7:.0f}"'
                       f' stroke="#cf222e" stroke-width="1.5"><title>floor {m.floor:.3f}</title></line>')
        if m.value is not None:
            out.append(f'<circle cx="{x(m.value):.1f}" cy="{y:.0f}" r="3.5" fill="#1f6feb"><title>{m.name}'
                       f' {m.value:.3f}</title></circle>')
    return "".join(out) + "</svg>"


def _interval(m: MetricInterval) -> str:
    return "-" if m.ci_low is None or m.ci_high is None else f"[{m.ci_low:.3f}, {m.ci_high:.3f}]"


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
    features = [[d.model, d.version, f, v, _num(e)] for d in data.drift if d.kind == "drift" for f, v, e in d.features]
    performance = [[p.model, p.version, m.name, _num(m.value), _interval(m), str(m.n), _num(m.baseline),
                    _num(m.floor), m.state] for p in data.performance for m in p.metrics]
    checklist = [[i.category, i.title, i.model or "", i.priority.value, i.status.value, i.evidence]
                 for i in data.checklist]
    changes = [[utc_iso(e.at), e.model or "", e.what, e.who, e.why] for e in data.changes]
    return [
        ("Fleet status", ["model", "version", "role", "status", "reason"], fleet),
        ("SLA per version", ["model", "version", "check", "value", "threshold", "verdict"], sla),
        ("Alerts", ["rule", "state", "severity", "version", "since", "summary"], alerts),
        ("Canaries", ["model", "canary", "phase", "last gate verdict", "updated"], canaries),
        ("Drift", ["model", "version", "kind", "verdict", "at", "features"], drift),
        ("Drift per feature", ["model", "version", "feature", "verdict", "effect size"], features),
        ("Performance", ["model", "version", "metric", "value", "interval", "n", "baseline", "floor", "state"],
         performance),
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
.pass,.healthy,.ok,.no_drift{color:#1a7f37}.drift{color:#cf222e}.fail,.degraded,.firing{color:#cf222e}.unknown,.pending{color:#9a6700}"""


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
        if title == "Drift per feature":
            for d in data.drift:
                verdicts = {f: v for f, v, _ in d.features}
                charts = "".join(distribution_chart(f, verdicts.get(f, "unknown"), dist) for f, dist in d.distributions)
                if charts:
                    out.append(f'<div class="charts"><div>{esc(d.model)} {esc(d.version)}: reference vs current'
                               f' (share of rows per bin)</div>{charts}</div>')
        if title == "Performance":
            for p in data.performance:
                if p.metrics:
                    level = "" if p.confidence is None else f", each interval at {p.confidence * 100:.3g} %"
                    out.append(f'<div class="charts"><div>{esc(p.model)} {esc(p.version)}: {p.labelled} labelled'
                               f' predictions{esc(level)}</div>{interval_chart(p)}</div>')
        if not rows:
            out.append("<p><em>(none)</em></p>")
            continue
        out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
        for row in rows:
            cells = "".join(f'<td class="{esc(c)}">{esc(c)}</td>' if c in ("pass", "fail", "unknown", "healthy",
                                                                           "degraded", "firing", "pending", "ok",
                                                                           "drift", "no_drift")
                            else f"<td>{esc(c)}</td>" for c in row)
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
