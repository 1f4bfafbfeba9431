"""What a canary remembers (persisted whole after every transition) and a transition's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from opsctl.clock import parse_utc, utc_iso
from opsctl.core.canary.actions import Action
from opsctl.core.gates import Evaluation

# --------------------------------------------------------------------------- state


class Phase(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTING = "promoting"  # last stage passed; waiting for approve
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # progress deadline with on_progress_deadline = "fail"; weight 0
    ABORTED = "aborted"  # operator abort; weight 0
    ROLLED_BACK = "rolled_back"  # automatic rollback; weight 0

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED, Phase.ROLLED_BACK})
_LIVE = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})

_TIMESTAMPS = ("created_at", "started_at", "stage_started_at", "progress_since", "last_evaluation_at", "finished_at")


@dataclass(frozen=True)
class CanaryState:
    """Everything the canary machine remembers; persisted whole after every transition."""

    model: str
    canary_version: str
    production_version: str | None
    created_at: datetime
    phase: Phase = Phase.PENDING
    stage: int = 0  # index into the policy's stage weights
    weight: float = 0.0  # percent of traffic the canary version has (100 once promoted)
    started_at: datetime | None = None
    stage_started_at: datetime | None = None
    progress_since: datetime | None = None  # the progress deadline runs from here
    last_evaluation_at: datetime | None = None  # the last evaluation that counted
    failed_checks: int = 0
    inconclusive_streak: int = 0
    metrics_error_streak: int = 0
    evaluations_in_stage: int = 0
    last_evaluation: Evaluation | None = None
    open_alerts: tuple[str, ...] = ()
    finished_at: datetime | None = None
    reason: str = ""
    revision: int = 0  # +1 on every change; the registry can compare-and-swap on it

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", Phase(self.phase))
        object.__setattr__(self, "open_alerts", tuple(self.open_alerts))
        for name in _TIMESTAMPS:
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware, got {value!r}")

    @property
    def terminal(self) -> bool:
        return self.phase.terminal

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "canary_version": self.canary_version,
            "production_version": self.production_version,
            "phase": self.phase.value,
            "stage": self.stage,
            "weight": self.weight,
            "failed_checks": self.failed_checks,
            "inconclusive_streak": self.inconclusive_streak,
            "metrics_error_streak": self.metrics_error_streak,
            "evaluations_in_stage": self.evaluations_in_stage,
            "last_evaluation": None if self.last_evaluation is None else self.last_evaluation.to_json(),
            "open_alerts": list(self.open_alerts),
            "reason": self.reason,
            "revision": self.revision,
        }
        for name in _TIMESTAMPS:
            value = getattr(self, name)
            data[name] = None if value is None else utc_iso(value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryState:
        times = {name: None if data.get(name) is None else parse_utc(data[name]) for name in _TIMESTAMPS}
        evaluation = data.get("last_evaluation")
        return cls(
            model=str(data["model"]),
            canary_version=str(data["canary_version"]),
            production_version=_opt_str(data.get("production_version")),
            phase=Phase(data["phase"]),
            stage=int(data["stage"]),
            weight=float(data["weight"]),
            failed_checks=int(data["failed_checks"]),
            inconclusive_streak=int(data["inconclusive_streak"]),
            metrics_error_streak=int(data["metrics_error_streak"]),
            evaluations_in_stage=int(data["evaluations_in_stage"]),
            last_evaluation=None if evaluation is None else Evaluation.from_json(evaluation),
            open_alerts=tuple(str(a) for a in data.get("open_alerts", ())),
            reason=str(data.get("reason", "")),
            revision=int(data.get("revision", 0)),
            **times,  # type: ignore[arg-type]
        )


def new_canary(model: str, canary_version: str, production_version: str | None, now: datetime) -> CanaryState:
    """A canary that exists but moves no traffic until ``start``."""
    check_now(now)
    if not model or not canary_version:
        raise ValueError("a canary needs a model and a canary version")
    if canary_version == production_version:
        raise ValueError(f"version {canary_version!r} is already production for {model!r}")
    return CanaryState(
        model=model,
        canary_version=canary_version,
        production_version=production_version,
        created_at=now,
        reason="created; waiting for start",
    )


@dataclass(frozen=True)
class Transition:
    """The new state, the actions to carry out in order, and why."""

    state: CanaryState
    actions: tuple[Action, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.to_json(), "actions": [a.to_json() for a in self.actions], "reason": self.reason}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def check_now(now: datetime) -> None:
    """Refuse a naive or non-datetime ``now`` (every timer in the state is UTC-aware)."""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
