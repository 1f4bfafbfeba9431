"""Text for the per-model panels (health, canary, alerts, drift, registry): pure formatting, no widgets.

Each function takes the JSON document the daemon publishes (or ``None`` when it
has not published one) and returns Rich markup. Absent data reads "no data yet";
no panel ever shows a made-up value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape

from opsctl.domain import ModelVersion
from opsctl.tui.model import NO_DATA

_VERDICT_STYLE = {"pass": "green", "ok": "green", "healthy": "green", "fail": "red", "degraded": "red",
                  "unknown": "yellow", "inconclusive": "yellow"}


def _styled(word: str | None) -> str:
    if not word:
        return "-"
    style = _VERDICT_STYLE.get(word.lower())
    return f"[{style}]{escape(word)}[/]" if style else escape(word)


def _num(value: Any) -> str:
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
    lines = [f"SLA: {_styled(health.get('status'))}  version {escape(str(health.get('version', '-')))}"
             + (f"  sample age {age:.0f}s" if isinstance(age, int | float) else "")]
    for version in health.get("versions") or []:  # the daemon's /v1/status summary: one line per served version
        lines.append(f"  {escape(str(version.get('version')))} ({escape(str(version.get('role', '')))}):"
                     f" {_styled(version.get('status'))}"
                     + (f" — {escape(str(version['reason']))}" if version.get("reason") else ""))
    for check in health.get("checks") or []:
        unit = check.get("unit") or ""
        lines.append(f"  {escape(str(check.get('name')))}: {_num(check.get('value'))}{escape(unit)}"
                     f" (limit {_num(check.get('threshold'))}) {_styled(check.get('verdict'))}"
                     + (f" — {escape(str(check['reason']))}" if check.get("reason") else ""))
    return "\n".join(lines)


def canary_text(canary: Mapping[str, Any] | None, deployment: Mapping[str, Any] | None = None) -> str:
    """Canary phase, stage, weight and the last evaluation's gates."""
    if not canary:
        if deployment and deployment.get("canary_version"):
            return (f"canary: {escape(str(deployment['canary_version']))} at {deployment.get('canary_weight', 0):g}%"
                    f"  [dim](analysis: {NO_DATA})[/]")
        return "canary: none"
    lines = [f"canary: {escape(str(canary.get('canary_version', '-')))} {_styled(canary.get('phase'))}"
             f"  stage {canary.get('stage', '-')}  weight {_num(canary.get('weight'))}%"
             f"  failed checks {canary.get('failed_checks', 0)}"]
    if canary.get("reason"):
        lines.append(f"  why: {escape(str(canary['reason']))}")
    evaluation = canary.get("last_evaluation") or {}
    for gate in evaluation.get("gates") or evaluation.get("results") or []:
        if isinstance(gate, Mapping):
            lines.append(f"  {escape(str(gate.get('name', gate.get('gate', '?'))))}: {_styled(gate.get('verdict'))}"
                         + (f" — {escape(str(gate['reason']))}" if gate.get("reason") else ""))
    return "\n".join(lines)


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


def drift_text(drift: Mapping[str, Any] | None) -> str:
    if not drift:
        return f"drift: [dim]{NO_DATA}[/]"
    verdict = {True: "[red]drift[/]", False: "[green]no drift[/]", None: "[yellow]unknown[/]"}[
        drift.get("dataset_drift")]
    lines = [f"drift: {verdict}  {drift.get('drifted_count', 0)} of {len(drift.get('features') or [])} features"]
    for feature in (drift.get("features") or [])[:6]:
        lines.append(f"  {escape(str(feature.get('feature', feature.get('name', '?'))))}:"
                     f" p={_num(feature.get('p_value_adjusted', feature.get('p_value')))}"
                     f" effect={_num(feature.get('effect_size'))}"
                     f" {'[red]drifted[/]' if feature.get('drifted') else 'ok'}")
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
    return f'{quoted} --reason "{_dq(reason)}" --yes'


def _dq(text: str) -> str:
    # Inside double quotes the shell still expands these.
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return text
