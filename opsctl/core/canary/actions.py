"""What the canary machine asks the shell to do: set a weight, promote, run a hook, raise or resolve an alert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

# --------------------------------------------------------------------------- actions


class HookKind(StrEnum):
    PRE_ROLLOUT = "pre_rollout"
    CONFIRM_PROMOTION = "confirm_promotion"
    POST_ROLLOUT = "post_rollout"
    ROLLBACK = "rollback"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


# Alert keys, one per condition, so a later transition can resolve exactly what it raised.
ALERT_PAUSED = "canary_paused"
ALERT_AWAITING_APPROVAL = "canary_awaiting_approval"
ALERT_ROLLED_BACK = "canary_rolled_back"
ALERT_FAILED = "canary_failed"


@dataclass(frozen=True)
class SetWeight:
    """Send ``weight`` percent of the model's traffic to ``canary_version`` (the rest to production)."""

    model: str
    canary_version: str
    weight: float
    action: ClassVar[str] = "set_weight"

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "canary_version": self.canary_version,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class PromoteVersion:
    """Make ``version`` the model's production version and send it all traffic (no canary split left)."""

    model: str
    version: str
    previous_version: str | None
    action: ClassVar[str] = "promote_version"

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "version": self.version,
            "previous_version": self.previous_version,
        }


@dataclass(frozen=True)
class RunHook:
    """Run the configured hook of this kind (command or webhook) with the model, versions and weight.

    ``confirm_promotion`` fires when a canary starts waiting for manual approval; a shell may turn
    a successful confirmation into an ``approve`` command.
    """

    kind: HookKind
    model: str
    canary_version: str
    production_version: str | None
    weight: float
    action: ClassVar[str] = "run_hook"

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind.value,
            "model": self.model,
            "canary_version": self.canary_version,
            "production_version": self.production_version,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class RaiseAlert:
    model: str
    key: str
    severity: Severity
    summary: str
    action: ClassVar[str] = "raise_alert"

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "key": self.key,
            "severity": self.severity.value,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class ResolveAlert:
    model: str
    key: str
    action: ClassVar[str] = "resolve_alert"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "model": self.model, "key": self.key}


Action = SetWeight | PromoteVersion | RunHook | RaiseAlert | ResolveAlert


def action_from_json(data: Mapping[str, Any]) -> Action:
    """Rebuild an action saved with ``to_json`` (for an outbox of actions still to carry out)."""
    kind = data.get("action")
    if kind == SetWeight.action:
        return SetWeight(str(data["model"]), str(data["canary_version"]), float(data["weight"]))
    if kind == PromoteVersion.action:
        return PromoteVersion(str(data["model"]), str(data["version"]), _opt_str(data.get("previous_version")))
    if kind == RunHook.action:
        return RunHook(
            HookKind(data["kind"]),
            str(data["model"]),
            str(data["canary_version"]),
            _opt_str(data.get("production_version")),
            float(data["weight"]),
        )
    if kind == RaiseAlert.action:
        return RaiseAlert(str(data["model"]), str(data["key"]), Severity(data["severity"]), str(data["summary"]))
    if kind == ResolveAlert.action:
        return ResolveAlert(str(data["model"]), str(data["key"]))
    raise ValueError(f"unknown action {kind!r}")


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
