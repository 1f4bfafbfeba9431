"""The TUI's audited actions other than rollback/promote: what each sends to the daemon and its CLI twin.

An :class:`Action` is plain data built from what the screen shows (an alert document, a model
name); :class:`~opsctl.tui.dialogs.ActionDialog` asks for the reason (and, for the dangerous ones,
the model name typed out), shows :meth:`Action.command` and has the feed :meth:`Action.send` it
through the daemon's client (``client.<resource>.<operation>(*args, **request)``): the TUI names
operations, never URLs. Every one of these operations writes an audit event with the caller from
the socket's peer credentials, so the TUI never writes audit entries itself.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl.tui.model import CANARY_COMMANDS
from opsctl.tui.panels import shell_double_quoted

if TYPE_CHECKING:
    from opsctl.client import DaemonClient

SILENCE_SECONDS = 3600.0
REASON_SLOT = "\0reason"  # where the CLI command repeats the reason (silence --comment)
_CANARY_EFFECT = {
    "pause": "hold the canary at its current weight (analysis stops until resumed)",
    "resume": "continue the paused canary in its current stage",
    "promote": "skip the remaining stages: the canary becomes production NOW",
    "abort": "send all traffic back to production now (no analysis); the canary ends",
}


@dataclass(frozen=True)
class Action:
    """One audited request to the daemon and the equivalent one-shot command."""

    name: str
    title: str
    effect: str
    resource: str  # the client's namespace: "alerts", "canaries", "retrain"
    operation: str  # its method, called with ``args`` and the request's keywords
    args: tuple[str, ...]
    cli: tuple[str, ...]
    model: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    reason_keys: tuple[str, ...] = ("reason",)
    confirm_name: bool = False

    def request(self, reason: str) -> dict[str, Any]:
        return {**self.body, **dict.fromkeys(self.reason_keys, reason)}

    def send(self, client: DaemonClient, reason: str) -> dict[str, Any]:
        """Perform the action through the daemon's client; the daemon's answer as its JSON document."""
        result = getattr(getattr(client, self.resource), self.operation)(*self.args, **self.request(reason))
        return dict(getattr(result, "json", result))

    def command(self, reason: str) -> str:
        quoted = f'"{shell_double_quoted(reason)}"'
        parts = " ".join(quoted if p == REASON_SLOT else shlex.quote(p) for p in self.cli)
        return f"{parts} --reason {quoted}"


def alert_model(alert: Mapping[str, Any]) -> str | None:
    model = (alert.get("labels") or {}).get("model") or alert.get("model")
    return model if isinstance(model, str) else None


def alert_ack(alert: Mapping[str, Any]) -> Action:
    alert_id = str(alert["id"])
    model = alert_model(alert)
    return Action(
        name="alert.ack", title=f"Acknowledge alert {alert_id[:12]}",
        effect=f"{alert.get('rule', '?')} on {model or '-'} ({alert.get('state', '?')}): notifications stop"
               " until it resolves; it still resolves on its own",
        resource="alerts", operation="ack", args=(alert_id,), model=model, body={"for_seconds": None},
        reason_keys=("reason", "comment"), cli=("opsctl", "alerts", "ack", alert_id))


def silence_matchers(alert: Mapping[str, Any]) -> list[str]:
    """Silence what this alert is: its rule on its model (and version when it has one)."""
    labels = dict(alert.get("labels") or {})
    matchers = [f"{k}={labels[k]}" for k in ("alertname", "model", "model_version") if labels.get(k)]
    if not matchers:
        matchers = [f"{k}={v}" for k, v in sorted(labels.items())]
    return matchers


def alert_silence(alert: Mapping[str, Any], seconds: float = SILENCE_SECONDS) -> Action:
    matchers = silence_matchers(alert)
    cli: list[str] = ["opsctl", "alerts", "silence"]
    for matcher in matchers:
        cli += ["--match", matcher]
    cli += ["--for", f"{seconds / 60:g}m", "--comment", REASON_SLOT]
    return Action(
        name="alert.silence", title=f"Silence {' '.join(matchers)} for {seconds / 60:g} minutes",
        effect="no notifications for any alert matching every matcher until the silence ends",
        resource="alerts", operation="silence", args=(), model=alert_model(alert),
        body={"matchers": matchers, "for_seconds": seconds}, reason_keys=("reason", "comment"), cli=tuple(cli))


def canary_action(model: str, command: str) -> Action:
    if command not in CANARY_COMMANDS:
        raise ValueError(f"unknown canary command {command!r}")
    dangerous = command in ("abort", "promote")
    return Action(
        name=f"canary.{command}", title=f"{command.capitalize()} the canary of {model}",
        effect=_CANARY_EFFECT[command], resource="canaries", operation="command", args=(model, command),
        model=model,
        cli=("opsctl", "canary", command, model) + (("--yes",) if command == "promote" else ()),
        confirm_name=dangerous)


def canary_start_action(model: str, version: str) -> Action:
    """Start a canary of ``version``: the safe path to production (stages, gates, automatic rollback)."""
    return Action(
        name="canary.start", title=f"Start a canary of {model} {version}",
        effect="stage 1's weight of traffic goes to the canary at once; it advances only while its gates pass"
               " (the [canary] policy; `--set KEY=VALUE` in the CLI overrides it for this canary)",
        resource="canaries", operation="start", args=(model, version), model=model,
        cli=("opsctl", "canary", "start", model, version))


def retrain_action(model: str) -> Action:
    return Action(
        name="retrain", title=f"Retrain {model}",
        effect="train a candidate on fresh data; a better one goes through a canary, never straight to production",
        resource="retrain", operation="trigger", args=(model,), model=model, body={"trigger": "manual"},
        cli=("opsctl", "retrain", model))


def silence_end(silence: Mapping[str, Any]) -> Action:
    """End a silence now: alerts it matched notify again."""
    silence_id = str(silence["id"])
    matchers = " ".join(str(m) for m in silence.get("matchers") or ()) or "-"
    return Action(
        name="alert.unsilence", title=f"End silence {silence_id[:12]}",
        effect=f"{matchers}: alerts matching it notify again from now (it was set by"
               f" {silence.get('author') or '?'} until {silence.get('ends_at') or '?'})",
        resource="alerts", operation="unsilence", args=(silence_id,), cli=("opsctl", "alerts", "unsilence", silence_id))


def retrain_decision(model: str, run: Mapping[str, Any], *, approve: bool) -> Action:
    """Approve (its canary starts) or reject (no canary) a retraining run awaiting approval."""
    run_id = str(run["id"])
    candidate = run.get("candidate_version") or "?"
    parent = run.get("parent_version") or "production"
    verb = "approve" if approve else "reject"
    effect = (f"a canary of {candidate} starts (stages and gates of the [canary] policy); {parent} stays in"
              " production until the canary promotes it" if approve else
              f"no canary: {candidate} stays registered, {parent} stays in production")
    return Action(
        name=f"retrain.{verb}", title=f"{verb.capitalize()} retrain run {run_id} of {model} ({candidate})",
        effect=effect, resource="retrain", operation=verb, args=(run_id,), model=model,
        cli=("opsctl", "retrain", verb, run_id))
