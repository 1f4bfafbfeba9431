"""Text for the per-model panels (health, canary, alerts, drift, registry): pure formatting, no widgets.

Each function takes the JSON document the daemon publishes (or ``None`` when it
has not published one) and returns Rich markup. Absent data reads "no data yet";
no panel ever shows a made-up value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.markup import escape

from opsctl.core.sequential import describe_seconds
from opsctl.documents import ModelDrift
from opsctl.domain import ModelVersion
from opsctl.tui.model import CANARY_PHASES, NO_DATA, age_text, parse_at

_VERDICT_STYLE = {"pass": "green", "ok": "green", "healthy": "green", "fail": "red", "degraded": "red",
                  "unknown": "yellow", "inconclusive": "yellow", "progressing": "cyan", "paused": "yellow",
                  "promoting": "cyan", "succeeded": "green", "aborted": "red", "rolled_back": "red",
                  "failed": "red", "firing": "red", "pending": "yellow", "resolved": "green", "running": "cyan"}


def _styled(word: str | None) -> str:
    if not word:
        return "-"
    style = _VERDICT_STYLE.get(word.lower())
    return f"[{style}]{escape(word)}[/]" if style else escape(word)


def num(value: Any) -> str:
    """A number for a panel: floats to four significant digits, ``-`` when missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def health_text(health: Mapping[str, Any] | None) -> str:
    """SLA status and every check with value, threshold, verdict and reason."""
    if not health:
        return f"SLA: [dim]{NO_DATA}[/]"
    age = health.get("sample_age_seconds")
    version = f"  version {escape(str(health['version']))}" if health.get("version") else ""
    lines = [f"SLA: {_styled(health.get('status'))}{version}"
             + (f"  sample age {age:.0f}s" if isinstance(age, int | float) else "")]
    for version in health.get("versions") or []:  # the daemon's /v1/status summary: one line per served version
        lines.append(f"  {escape(str(version.get('version')))} ({escape(str(version.get('role', '')))}):"
                     f" {_styled(version.get('status'))}"
                     + (f" — {escape(str(version['reason']))}" if version.get("reason") else ""))
    for check in health.get("checks") or []:
        unit = check.get("unit") or ""
        lines.append(f"  {escape(str(check.get('name')))}: {num(check.get('value'))}{escape(unit)}"
                     f" (limit {num(check.get('threshold'))}) {_styled(check.get('verdict'))}"
                     + (f" — {escape(str(check['reason']))}" if check.get("reason") else ""))
    return "\n".join(lines)


def stage_track(stage_weights: Sequence[Any], stage: int, phase: str) -> str:
    """Stages as a progress track: done ones filled, the current one bold, later ones dim."""
    parts = []
    for index, weight in enumerate(stage_weights, start=1):
        label = f"{float(weight):g}%"
        if index < stage or phase == "succeeded":
            parts.append(f"[green]■ {label}[/]")
        elif index == stage and phase not in ("aborted", "rolled_back", "failed"):
            parts.append(f"[b reverse] {label} [/]")
        else:
            parts.append(f"[dim]□ {label}[/]")
    return " ─ ".join(parts)


def _since(stamp: Any, now: datetime | None) -> str:
    at = parse_at(stamp) if isinstance(stamp, str) else None
    if at is None or now is None:
        return "-"
    return age_text((now - at).total_seconds())


def gate_line(gate: Mapping[str, Any]) -> str:
    name = str(gate.get("name", "?"))
    words = _GATE_WORDS.get(name)
    value, threshold = gate.get("value"), gate.get("threshold")
    if words is None:  # a custom gate: its query's own unit, which opsctl does not know
        numbers = [f"value {num(value)}"] + ([f"limit {num(threshold)}"] if threshold is not None else [])
    elif name == "latency" and value is None and isinstance(threshold, int | float):
        numbers = [f"{words[0]}: -", f"limit: the SLA's p95 bound {threshold * 1000:.4g} ms"]
    else:
        numbers = [f"{words[0]} {_pct(value)}"]
        if threshold is not None:
            numbers.append(f"limit: {words[1]} {_pct(threshold)}")
    if gate.get("p_value") is not None:
        numbers.append(f"p {num(gate.get('p_value'))}")
    if gate.get("sample_size") is not None:
        needed = f"/{gate['sample_needed']}" if gate.get("sample_needed") is not None else ""
        numbers.append(f"n {gate['sample_size']}{needed}")
    seconds = gate.get("expected_seconds")
    if isinstance(seconds, int | float) and seconds > 0:
        numbers.append(f"eta {describe_seconds(float(seconds))}")
    reason = f" — {escape(str(gate['reason']))}" if gate.get("reason") else ""
    return f"  {escape(name)}: {_styled(gate.get('verdict'))} ({escape(', '.join(numbers))}){reason}"


def canary_text(canary: Mapping[str, Any] | None, deployment: Mapping[str, Any] | None = None,
                now: datetime | None = None, *, brief: bool = False) -> str:
    """The canary: stage track, weight, time in stage, failed checks, why (e.g. paused), each gate's numbers."""
    if not canary:
        if deployment and deployment.get("canary_version"):
            return (f"canary: {escape(str(deployment['canary_version']))} at {deployment.get('canary_weight', 0):g}%"
                    f"  [dim](analysis: {NO_DATA})[/]")
        return "canary: none"
    phase = str(canary.get("phase") or canary.get("state") or "?")
    if not canary.get("active", True) and brief:
        return (f"canary: last {escape(str(canary.get('canary_version', '-')))} {_styled(phase)}"
                f" {_since(canary.get('finished_at'), now)} ago")
    lines = [f"canary: {escape(str(canary.get('canary_version', '-')))} {_styled(phase)}"
             f"  weight {num(canary.get('weight'))}%"
             f"  stage {canary.get('stage', '-')}/{canary.get('stages', '-')}"
             f" for {_since(canary.get('stage_started_at'), now)}"
             f"  failed {canary.get('failed_checks', 0)}/{canary.get('failure_threshold', '-')}"]
    if canary.get("stage_weights"):
        lines.append("  " + stage_track(canary["stage_weights"], int(canary.get("stage") or 0), phase))
    if canary.get("reason"):
        label = "paused" if phase == "paused" else "why"
        lines.append(f"  {label}: {escape(str(canary['reason']))}")
    if canary.get("actuator_error"):
        lines.append(f"  [red]actuator: {escape(str(canary['actuator_error']))}[/]")
    gates = canary.get("gates") or (canary.get("last_evaluation") or {}).get("results") or []
    if not brief and canary.get("active", True):
        lines += next_steps(canary, phase, gates)
    if gates:
        lines.append(f"  gates ({_styled(canary.get('verdict'))},"
                     f" {_since(canary.get('last_evaluation_at'), now)} ago):")
        lines += [gate_line(g) for g in gates if isinstance(g, Mapping)][: 3 if brief else None]
    elif not brief:
        lines.append("  [dim]no evaluation yet[/]")
    return "\n".join(lines)


# What each key on the model screen does to a canary, and the CLI command that does the same.
_STEP_KEYS = (("resume", "u", "resume the stages"), ("promote", "g", "promote it now"),
              ("abort", "x", "abort it"), ("pause", "z", "pause it"))


def next_steps(canary: Mapping[str, Any], phase: str, gates: Sequence[Any]) -> list[str]:
    """A paused or waiting canary: what to do next, with the key here and the equivalent CLI command."""
    model = escape(str(canary.get("model") or "MODEL"))
    lines: list[str] = []
    waiting = [g for g in gates if isinstance(g, Mapping) and g.get("verdict") == "inconclusive"]
    if waiting:
        # A gate short of samples decides once it has them: waiting is the first option, for as long as they take.
        seconds = [g["expected_seconds"] for g in waiting if isinstance(g.get("expected_seconds"), int | float)]
        short = [f"{escape(str(g.get('name')))} {g.get('sample_size', '?')}/{g.get('sample_needed', '?')}"
                 for g in waiting]
        wait = f"~{max(1, round(max(seconds) / 60))} min" if seconds else "until the samples arrive"
        lines.append(f"  next: wait {wait} ({', '.join(short)} samples)")
    if phase not in ("paused", "progressing", "pending", "promoting") and not waiting:
        return lines
    offered = [(cmd, key, what) for cmd, key, what in _STEP_KEYS if phase in CANARY_PHASES[cmd]]
    if phase == "paused" and not waiting:
        lines.append("  next: the canary is paused; it moves only when you act")
    for command, key, what in offered:
        lines.append(f"    [b]{key}[/b] {what}: opsctl canary {command} {model} --reason TEXT")
    return lines


def health_detail_text(versions: Sequence[Mapping[str, Any]] | None, meta: Mapping[str, Any] | None = None) -> str:
    """Every deployed version's checks from ``/v1/health``: value, threshold, verdict, reason, sample age."""
    if versions is None:
        return f"SLA checks: [dim]{NO_DATA}[/]"
    if not versions:
        return "SLA checks: [dim]no deployed version evaluated yet[/]"
    lines = []
    prometheus = (meta or {}).get("prometheus") or {}
    if prometheus and not prometheus.get("ok", True):
        lines.append(f"[red]Prometheus: {escape(str(prometheus.get('error')))}[/]")
    for version in versions:
        age = version.get("sample_age_seconds")
        age_part = f"sample age {age:.0f}s" if isinstance(age, int | float) else "sample age -"
        critical = "  [b red]CRITICAL[/]" if version.get("critical") else ""
        lines.append(f"[b]{escape(str(version.get('version')))}[/b] ({escape(str(version.get('role', '')))}):"
                     f" {_styled(version.get('status'))}{critical}  {age_part}"
                     f"  evaluated {escape(str(version.get('evaluated_at', '-'))[11:19])}")
        for check in version.get("checks") or []:
            unit = str(check.get("unit") or "")
            lines.append(f"  {escape(str(check.get('name'))):<13} {num(check.get('value')):>8} {escape(unit):<6}"
                         f" {escape(check_limit(str(check.get('name')), check.get('threshold'), unit)):<17}"
                         f" {_styled(check.get('verdict'))}"
                         + (f" — {escape(str(check['reason']))}" if check.get("reason") else ""))
    return "\n".join(lines)


# SLA checks that fail below their threshold (a floor); the others fail above it (a ceiling).
_FLOORS = frozenset({"request_rate", "accuracy", "availability"})


def check_limit(name: str, threshold: Any, unit: str) -> str:
    """An SLA check's threshold in words: "at most 300 ms", "at least 1 req/s", "no limit"."""
    if threshold is None:
        return "no limit"
    return f"{'at least' if name in _FLOORS else 'at most'} {num(threshold)} {unit}".rstrip()


def _pct(fraction: Any) -> str:
    return "-" if not isinstance(fraction, int | float) else f"{fraction * 100:.3g} %"


# What each canary gate's value and threshold are, in words: (value's name, the threshold's name). Both are
# fractions (shown as percent) except the latency bound, which is in seconds when no slow share is known yet.
_GATE_WORDS = {
    "error_rate": ("error rate", "production's rate"),
    "error_rate_ceiling": ("error rate", "the ceiling"),
    "latency": ("share slower than the bound", "production's share"),
    "accuracy": ("accuracy", "reference minus tolerance"),
}


def alerts_text(alerts: Sequence[Mapping[str, Any]] | None, model: str | None = None) -> str:
    if alerts is None:
        return f"alerts: [dim]{NO_DATA}[/]"
    mine = [a for a in alerts if model is None or (a.get("labels") or {}).get("model", a.get("model")) == model]
    if not mine:
        return "alerts: none"
    lines = [f"alerts: {sum(1 for a in mine if a.get('state') == 'firing')} firing"]
    for alert in mine[:5]:
        lines.append(f"  {_styled(alert.get('state'))} {escape(str(alert.get('severity', '')))}"
                     f" {escape(str(alert.get('rule', '')))}: {escape(str(alert.get('summary', '')))}")
    return "\n".join(lines)


def drift_text(drift: ModelDrift | None) -> str:
    """The model's drift verdict from the status document's ``drift`` section, per deployed version."""
    if drift is None:
        return f"drift: [dim]{NO_DATA}[/]"
    if not drift.versions:
        return "drift: [dim]no deployed version[/]"
    parts = []
    for v in drift.versions:
        word = _DRIFT_VERDICT.get(v.verdict, escape(str(v.verdict))) if v.verdict else "[dim]not checked yet[/]"
        features = f" ({escape(', '.join(v.drifted_features))})" if v.drifted_features else ""
        parts.append(f"{escape(v.version)} {word}{features}")
    return "drift: " + "  ".join(parts)


_DRIFT_VERDICT = {"drift": "[red]drift[/]", "no_drift": "[green]no drift[/]",
                  "insufficient_data": "[yellow]insufficient data[/]", "no_reference": "[yellow]no reference[/]",
                  "error": "[red]error[/]"}


def drift_detail_text(document: Mapping[str, Any] | None, spark: str = "") -> str:
    """``/v1/drift/{model}``: per version and feature, the statistic, corrected p-value, effect size, verdict."""
    if document is None:
        return f"drift: [dim]{NO_DATA}[/]"
    window = document.get("window") or {}
    lines = [f"window: {window.get('rows', '-')} rows, {window.get('labelled', '-')} labelled"
             + (f"   trend {spark} (drifted features per check)" if spark else "")]
    for entry in document.get("versions") or []:
        result = entry.get("result")
        head = f"[b]{escape(str(entry.get('version')))}[/b] ({escape(str(entry.get('role', '')))})"
        if not result:
            lines.append(f"{head}: [dim]not checked yet[/]")
            continue
        report = result.get("report") or {}
        lines.append(f"{head}: {_DRIFT_VERDICT.get(result.get('verdict'), escape(str(result.get('verdict'))))}"
                     f"  {report.get('drifted_count', 0)} of {len(report.get('features') or [])} features"
                     f"  at {escape(str(result.get('at', '-'))[11:19])}"
                     + (f"  [red]{escape(str(result['error']))}[/]" if result.get("error") else ""))
        if report.get("features"):
            lines.append(f"  {'feature':<16} {'test':<5} {'statistic':>9} {'p adj':>9} {'effect':>8}  verdict")
        for feature in report.get("features") or []:
            drifted = feature.get("drifted")
            verdict = "[red]drifted[/]" if drifted else "[yellow]unknown[/]" if drifted is None else "[green]ok[/]"
            lines.append(f"  {escape(str(feature.get('name', '?')))[:16]:<16} {escape(str(feature.get('test', ''))):<5}"
                         f" {num(feature.get('statistic')):>9} {num(feature.get('p_value_adjusted')):>9}"
                         f" {num(feature.get('effect_size')):>8}  {verdict}")
    return "\n".join(lines)


def performance_text(document: Mapping[str, Any] | None) -> str:
    """``/v1/performance/{model}``: each metric with its confidence interval against the baseline."""
    if document is None:
        return f"performance: [dim]{NO_DATA}[/]"
    lines = []
    for entry in document.get("versions") or []:
        result = entry.get("result")
        head = f"[b]{escape(str(entry.get('version')))}[/b] ({escape(str(entry.get('role', '')))})"
        if not result:
            lines.append(f"{head}: [dim]not checked yet[/]")
            continue
        lines.append(f"{head}: {_styled(result.get('verdict'))}  {result.get('labelled', 0)} labelled"
                     f" (needs {result.get('min_labels', '-')})")
        for metric in result.get("metrics") or []:
            lines.append(f"  {escape(str(metric.get('name'))):<10} {num(metric.get('value')):>7}"
                         f" [{num(metric.get('ci_low'))}, {num(metric.get('ci_high'))}]"
                         f" baseline {num(metric.get('baseline'))} floor {num(metric.get('floor'))}"
                         f"  {_styled(metric.get('state'))}")
    return "\n".join(lines) or f"performance: [dim]{NO_DATA}[/]"


def retrain_runs_text(runs: Sequence[Mapping[str, Any]] | None) -> str:
    if runs is None:
        return f"retrain runs: [dim]{NO_DATA}[/]"
    if not runs:
        return "retrain runs: none yet"
    lines = []
    for run in runs[:6]:
        candidate = f" -> {escape(str(run['candidate_version']))}" if run.get("candidate_version") else ""
        kinds = [str(run.get("trigger", ""))]
        kinds += [str(a.get("kind")) for a in run.get("triggers") or [] if str(a.get("kind")) not in kinds]
        lines.append(f"{escape(str(run.get('id', '?')))} {escape(str(run.get('started_at', ''))[5:16])}"
                     f" {escape('+'.join(kinds))} {_styled(run.get('status'))}{candidate}"
                     + (f" [red]{escape(str(run['error']))}[/]" if run.get("error") else ""))
        # Who asked and why (drift's features, performance's numbers), and the decision with its numbers.
        for ask in run.get("triggers") or []:
            lines.append(f"  [dim]{escape(str(ask.get('kind')))} {escape(str(ask.get('verdict')))}:[/]"
                         f" {escape(str(ask.get('reason') or ask.get('actor') or ''))}")
        headline = (run.get("decision") or {}).get("headline")
        if headline:
            lines.append(f"  {escape(str(headline))}")
        if run.get("message") and run.get("message") != headline:
            lines.append(f"  {escape(str(run['message']))}")
    return "\n".join(lines)


def version_cells(version: ModelVersion) -> tuple[str, str, str, str, str]:
    """version, status, created, metrics, parent — the registry table's cells."""
    metrics = " ".join(f"{k}={v:.3g}" for k, v in sorted(version.metrics.items())[:3]) or "-"
    return (version.version, version.status.value, version.created_at.strftime("%Y-%m-%d %H:%M"), metrics,
            version.lineage.parent_version or "-")


def version_text(version: ModelVersion | None) -> str:
    """Everything about one version: metrics, lineage, tags, artifact."""
    if version is None:
        return "[dim]no version selected[/]"
    lineage = version.lineage
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(version.metrics.items())) or "none"
    tags = ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items())) or "none"
    return "\n".join([
        f"[b]{escape(version.model)} {escape(version.version)}[/]  {_styled(version.status.value)}"
        f"  sha256 {version.sha256[:12]}  {version.size_bytes} bytes",
        f"metrics: {escape(metrics)}",
        f"lineage: parent {escape(lineage.parent_version or '-')}  code {escape(lineage.code_version or '-')}"
        f"  data {escape((lineage.training_data_hash or '-')[:12])}  trigger {escape(lineage.trigger or '-')}",
        f"tags: {escape(tags)}" + (f"  — {escape(version.description)}" if version.description else ""),
    ])


def cli_command(action: str, model: str, version: str | None, reason: str) -> str:
    """The one-shot command that does the same as a dialog (to paste into the incident channel)."""
    import shlex

    parts = ["opsctl", action, model]
    if action == "promote" and version:
        parts.append(version)
    elif action == "rollback" and version:
        parts += ["--to", version]
    quoted = " ".join(shlex.quote(p) for p in parts)
    return f'{quoted} --reason "{shell_double_quoted(reason)}" --yes'


def shell_double_quoted(text: str) -> str:
    """``text`` escaped for a double-quoted shell word (inside double quotes the shell still expands these)."""
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return text
