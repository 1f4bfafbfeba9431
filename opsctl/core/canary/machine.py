"""Canary progression as a pure state machine: (state, policy, clock, input) -> (new state, actions).

Nothing here performs I/O or reads a clock. The daemon's canary job persists a
:class:`CanaryState` in the registry, calls :func:`step` on every tick with ``now`` and at most
one input (a gate :class:`~opsctl.core.gates.Evaluation` or an operator :class:`Command`), stores
the new state and then carries out the returned actions (set a traffic weight, promote, run a
hook, raise or resolve an alert). Every timer lives in the state as a timestamp, so a daemon
killed at any instant resumes from the stored state.

Phases::

    pending --start--> progressing(stage k) --pass after min_stage_seconds--> progressing(k+1)
                          |  ^                    (last stage) --> promoting --approve--> succeeded
                          |  |resume                        (no manual approval) --------> succeeded
                          v  |
                        paused      (pause command, inconclusive_limit, metrics_error_limit with
                                     on_metrics_error="pause", progress deadline with "pause")
    any live phase --abort--> aborted                    (weight 0 now)
    any live phase --promote--> succeeded                (skip the remaining stages; a human decided)
    failure_threshold failed checks, or metrics_error_limit with "rollback" --> rolled_back (weight 0)
    progress deadline with on_progress_deadline="fail" --> failed (weight 0)

Rules:

- an evaluation counts at most once per ``analysis_interval_seconds`` (measured from the last
  counted one, held in the state); one that arrives early is ignored, so the job may tick faster;
- a stage advances only on a passing evaluation made in that stage once the stage has lasted
  ``min_stage_seconds``; inconclusive evaluations and metrics-source errors never advance;
- an inconclusive evaluation that is only collecting evidence (every undecided gate's sequential
  test is underway) never counts towards ``inconclusive_limit``; when its expected time to a
  decision runs past the progress deadline, the reason says so at once;
- ``failed_checks`` counts failed evaluations over the whole canary (like Flagger's
  ``failedChecks``); an evaluation with a failing gate counts as failed even when the metrics
  source also had trouble (evidence of harm is still evidence);
- while paused, the weight stays where it is and evaluations are still recorded: failures still
  count towards rollback (users are still exposed), passes never advance;
- the progress deadline runs while progressing, from entering the stage or resuming, whichever
  is later; it does not run while paused or while waiting for approval;
- terminal phases (succeeded, failed, aborted, rolled_back) never change; an operator command on
  one raises :class:`~opsctl.errors.ConflictError` saying why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from opsctl.clock import parse_utc, utc_iso
from opsctl.core.gates import CustomGate, Evaluation, GatePolicy, Verdict
from opsctl.core.sequential import describe_seconds
from opsctl.errors import ConflictError

DEFAULT_STAGES: tuple[float, ...] = (5.0, 20.0, 50.0, 100.0)

# --------------------------------------------------------------------------- policy


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


@dataclass(frozen=True)
class CanaryPolicy:
    """The ``[canary]`` section: how a canary moves traffic and how it is judged.

    Traffic steps are either ``stages`` (percent of traffic to the canary, strictly increasing)
    or, Flagger-style, ``step_weight`` up to ``max_weight`` (5, 10, ... 50). After the last
    stage passes, the canary version is promoted to production (after ``approve`` when
    ``manual_approval``). Per-model and per-start overrides: :meth:`merged`.
    """

    stages: list[float] = field(default_factory=lambda: list(DEFAULT_STAGES))
    step_weight: float | None = None
    max_weight: float | None = None
    min_stage_seconds: float = 300.0
    analysis_interval_seconds: float = 60.0
    # Failed evaluations (over the whole canary) before an automatic rollback.
    failure_threshold: int = 3
    # Consecutive inconclusive evaluations with missing data before pausing for a human; an
    # evaluation that is only collecting evidence (sequential tests underway) does not count.
    inconclusive_limit: int = 5
    # Consecutive metrics-source errors before on_metrics_error applies.
    metrics_error_limit: int = 3
    on_metrics_error: Literal["pause", "rollback"] = "pause"
    # Longest a stage may go without advancing while progressing.
    progress_deadline_seconds: float = 1800.0
    on_progress_deadline: Literal["pause", "fail"] = "pause"
    manual_approval: bool = False
    # Error rate, canary vs production and against the ceiling (opsctl.core.sequential): fail on
    # an exact test valid under continuous looks at error_rate_alpha over the whole canary; pass
    # on Wald's SPRT of "as good as production" against "worse by the margin" at this power.
    error_rate_alpha: float = 0.01
    error_rate_power: float = 0.8
    # The margin: production's rate times this (1.0 = a doubling) ...
    error_rate_mde_relative: float = 1.0
    # ... with production's rate floored at this (a spotless production still leaves a margin).
    error_rate_min_baseline: float = 0.001
    # Absolute ceiling in percent; unset = the SLA's error_rate_percent passed in by the daemon.
    max_error_rate_percent: float | None = None
    # Latency: the share of requests over the SLA's p95 bound, canary vs production, same tests;
    # the margin is this times production's share, floored at latency_min_share.
    latency_margin_relative: float = 1.0
    latency_min_share: float = 0.01
    # Turn off for services that export no latency histogram.
    latency_gate: bool = True
    sla_gate: bool = True
    # Model quality from delayed labels (turn off for models without feedback).
    accuracy_gate: bool = True
    # Absolute accuracy drop tolerated against production (0.02 = two points): the pass margin.
    accuracy_tolerance: float = 0.02
    accuracy_alpha: float = 0.05
    drift_gate: bool = False
    custom_gates: list[CustomGate] = field(default_factory=list)

    _FLOATS: ClassVar[tuple[str, ...]] = (
        "min_stage_seconds",
        "analysis_interval_seconds",
        "progress_deadline_seconds",
        "error_rate_alpha",
        "error_rate_power",
        "error_rate_mde_relative",
        "error_rate_min_baseline",
        "latency_margin_relative",
        "latency_min_share",
        "accuracy_tolerance",
        "accuracy_alpha",
    )
    _OPTIONAL_FLOATS: ClassVar[tuple[str, ...]] = ("step_weight", "max_weight", "max_error_rate_percent")
    _INTS: ClassVar[tuple[str, ...]] = (
        "failure_threshold",
        "inconclusive_limit",
        "metrics_error_limit",
    )
    _BOOLS: ClassVar[tuple[str, ...]] = ("manual_approval", "latency_gate", "sla_gate", "accuracy_gate", "drift_gate")

    def __post_init__(self) -> None:
        self._coerce_types()
        if self.step_weight is None:
            if self.max_weight is not None:
                raise ValueError("max_weight needs step_weight (or use stages)")
            self._check_stages(self.stages, "stages")
        else:
            if [float(s) for s in self.stages] != list(DEFAULT_STAGES):
                raise ValueError("set either stages or step_weight/max_weight, not both")
            if not 0 < self.step_weight <= 100:
                raise ValueError(f"step_weight must be a percentage in (0, 100], got {self.step_weight}")
            top = 100.0 if self.max_weight is None else self.max_weight
            if not self.step_weight <= top <= 100:
                raise ValueError(f"max_weight must be between step_weight and 100, got {self.max_weight}")
        if self.min_stage_seconds < 0:
            raise ValueError(f"min_stage_seconds must be >= 0, got {self.min_stage_seconds}")
        if self.analysis_interval_seconds <= 0:
            raise ValueError(f"analysis_interval_seconds must be > 0, got {self.analysis_interval_seconds}")
        for name in ("failure_threshold", "inconclusive_limit", "metrics_error_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.on_metrics_error not in ("pause", "rollback"):
            raise ValueError(f"on_metrics_error must be 'pause' or 'rollback', got {self.on_metrics_error!r}")
        if self.on_progress_deadline not in ("pause", "fail"):
            raise ValueError(f"on_progress_deadline must be 'pause' or 'fail', got {self.on_progress_deadline!r}")
        # A stage cannot advance before min_stage_seconds and an evaluation after it, so a shorter
        # deadline would fail every canary.
        shortest = self.min_stage_seconds + self.analysis_interval_seconds
        if self.progress_deadline_seconds < shortest:
            raise ValueError(
                f"progress_deadline_seconds ({self.progress_deadline_seconds:g}) must be at least "
                f"min_stage_seconds + analysis_interval_seconds ({shortest:g})"
            )
        for name in ("error_rate_alpha", "error_rate_power", "accuracy_alpha", "error_rate_min_baseline"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {getattr(self, name)}")
        if self.error_rate_mde_relative <= 0:
            raise ValueError(f"error_rate_mde_relative must be > 0, got {self.error_rate_mde_relative}")
        if self.error_rate_min_baseline * (1 + self.error_rate_mde_relative) >= 1:
            raise ValueError("error_rate_min_baseline * (1 + error_rate_mde_relative) must stay below 1")
        if self.max_error_rate_percent is not None and not 0 < self.max_error_rate_percent <= 100:
            raise ValueError(f"max_error_rate_percent must be in (0, 100], got {self.max_error_rate_percent}")
        if self.latency_margin_relative <= 0:
            raise ValueError(f"latency_margin_relative must be > 0, got {self.latency_margin_relative}")
        if not 0 < self.latency_min_share < 1:
            raise ValueError(f"latency_min_share must be strictly between 0 and 1, got {self.latency_min_share}")
        if not 0 < self.accuracy_tolerance < 1:
            raise ValueError(f"accuracy_tolerance must be in (0, 1), got {self.accuracy_tolerance}")
        names = [g.name for g in self.custom_gates]
        if len(set(names)) != len(names):
            raise ValueError(f"custom gate names must be unique, got {names}")

    def _coerce_types(self) -> None:
        # TOML integers arrive for float keys, and JSON round trips need plain floats.
        for name in self._FLOATS:
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in self._OPTIONAL_FLOATS:
            value = getattr(self, name)
            if value is not None:
                if not _is_number(value) or not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, got {value!r}")
                object.__setattr__(self, name, float(value))
        for name in self._INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        for name in self._BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.stages, str) or not isinstance(self.stages, list | tuple):
            raise ValueError(f"stages must be a list of percentages, got {self.stages!r}")
        for value in self.stages:
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"stages must hold numbers, got {value!r}")
        object.__setattr__(self, "stages", [float(s) for s in self.stages])
        gates = []
        for gate in self.custom_gates:
            if isinstance(gate, Mapping):
                unknown = set(gate) - {f.name for f in fields(CustomGate)}
                if unknown:
                    raise ValueError(f"custom gate has unknown keys: {sorted(unknown)}")
                try:
                    gate = CustomGate(**gate)
                except TypeError as error:
                    raise ValueError(f"custom gate is incomplete: {error}") from None
            if not isinstance(gate, CustomGate):
                raise ValueError(f"custom_gates must hold tables of name, query, comparator, threshold, got {gate!r}")
            gates.append(gate)
        object.__setattr__(self, "custom_gates", gates)

    @staticmethod
    def _check_stages(stages: list[float], name: str) -> None:
        if not stages:
            raise ValueError(f"{name} must not be empty")
        previous = 0.0
        for weight in stages:
            if not 0 < weight <= 100:
                raise ValueError(f"{name} must be percentages in (0, 100], got {weight:g}")
            if weight <= previous:
                raise ValueError(f"{name} must be strictly increasing, got {[f'{s:g}' for s in stages]}")
            previous = weight

    @property
    def stage_weights(self) -> tuple[float, ...]:
        """The traffic percentage of each stage, in order."""
        if self.step_weight is None:
            return tuple(self.stages)
        top = 100.0 if self.max_weight is None else self.max_weight
        weights: list[float] = []
        k = 1
        while True:
            # Rounded so 3 x 0.1 is 0.3, not 0.30000000000000004.
            weight = round(self.step_weight * k, 9)
            if weight >= top:
                break
            weights.append(weight)
            k += 1
        weights.append(top)
        return tuple(weights)

    def merged(self, overrides: Mapping[str, Any]) -> CanaryPolicy:
        """This policy with ``overrides`` (per model, then per start) applied; validated again.

        Setting ``stages`` drops an inherited ``step_weight``/``max_weight`` and vice versa, so a
        start can switch styles.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown canary policy keys: {', '.join(unknown)}")
        changes = dict(overrides)
        if "stages" in changes and "step_weight" not in changes:
            changes.setdefault("max_weight", None)
            changes["step_weight"] = None
        if ("step_weight" in changes or "max_weight" in changes) and "stages" not in changes:
            changes["stages"] = list(DEFAULT_STAGES)
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "custom_gates":
                value = [g.to_json() for g in value]
            elif f.name == "stages":
                value = list(value)
            data[f.name] = value
        return data

    @property
    def gate_policy(self) -> GatePolicy:
        """The analysis part of this policy, as the gates take it."""
        return GatePolicy(
            error_rate_alpha=self.error_rate_alpha,
            error_rate_power=self.error_rate_power,
            error_rate_mde_relative=self.error_rate_mde_relative,
            error_rate_min_baseline=self.error_rate_min_baseline,
            max_error_rate_percent=self.max_error_rate_percent,
            latency_margin_relative=self.latency_margin_relative,
            latency_min_share=self.latency_min_share,
            latency_gate=self.latency_gate,
            sla_gate=self.sla_gate,
            accuracy_gate=self.accuracy_gate,
            accuracy_tolerance=self.accuracy_tolerance,
            accuracy_alpha=self.accuracy_alpha,
            drift_gate=self.drift_gate,
            custom_gates=tuple(self.custom_gates),
            stages=len(self.stage_weights),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryPolicy:
        """Rebuild a policy saved with :meth:`to_json` (raises ValueError on unknown keys).

        Keys of the fixed-sample gates (``min_requests``, ``min_labels``, ``latency_ratio_tolerance``,
        ``latency_slack_seconds``) in policies stored before the sequential gates are dropped.
        """
        data = {k: v for k, v in data.items() if k not in _RETIRED_KEYS}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown canary policy keys: {', '.join(unknown)}")
        return cls(**dict(data))


_RETIRED_KEYS = frozenset({"min_requests", "min_labels", "latency_ratio_tolerance", "latency_slack_seconds"})


# --------------------------------------------------------------------------- inputs


class CommandKind(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"  # skip the remaining stages
    ABORT = "abort"  # back to weight 0 now
    APPROVE = "approve"  # the manual approval before the final promotion


@dataclass(frozen=True)
class Command:
    """An operator command; ``actor`` and ``reason`` end up in the transition reason and the audit log."""

    kind: CommandKind
    reason: str = ""
    actor: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CommandKind(self.kind))


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
    _check_now(now)
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


# --------------------------------------------------------------------------- the machine


def step(
    state: CanaryState,
    policy: CanaryPolicy,
    now: datetime,
    *,
    evaluation: Evaluation | None = None,
    command: Command | None = None,
) -> Transition:
    """Advance the canary by one input (an evaluation, a command, or only the clock when both are None).

    Raises ConflictError for an operator command the current phase forbids (nothing changes).
    """
    _check_now(now)
    if evaluation is not None and command is not None:
        raise ValueError("step takes an evaluation or a command, not both")
    weights = policy.stage_weights
    if state.stage >= len(weights):
        raise ValueError(f"state is at stage {state.stage + 1} but the policy has {len(weights)} stages")
    if command is not None:
        return _on_command(state, policy, now, command)
    if state.terminal:
        return Transition(state, (), f"canary {state.phase.value}: no further transitions ({state.reason})")
    if state.phase is Phase.PENDING:
        return Transition(state, (), "canary not started; waiting for start")
    if evaluation is not None:
        result = _on_evaluation(state, policy, now, evaluation)
        if result.state.phase is not Phase.PROGRESSING or result.state.stage != state.stage:
            return result  # a decision was made; the deadline no longer applies
        deadline = _check_deadline(result.state, policy, now)
        if deadline is not None:
            return Transition(deadline.state, result.actions + deadline.actions, f"{result.reason}; {deadline.reason}")
        return result
    if state.phase is Phase.PROGRESSING:
        deadline = _check_deadline(state, policy, now)
        if deadline is not None:
            return deadline
        return Transition(state, (), _waiting_reason(state, policy, now))
    return Transition(state, (), f"canary {state.phase.value}: {state.reason}")


def _on_command(state: CanaryState, policy: CanaryPolicy, now: datetime, command: Command) -> Transition:
    kind = command.kind
    who = f" by {command.actor}" if command.actor else ""
    why = f": {command.reason}" if command.reason else ""
    said = f"operator {kind.value}{who}{why}"
    if state.terminal:
        raise ConflictError(
            f"canary {state.model} {state.canary_version} is already {state.phase.value} "
            f"({state.reason}); {kind.value} is not possible, start a new canary instead"
        )
    phase = state.phase
    if kind is CommandKind.START:
        if phase is not Phase.PENDING:
            raise ConflictError(f"canary {state.model} {state.canary_version} is already {phase.value}; cannot start")
        weight = policy.stage_weights[0]
        new = _changed(
            state,
            reason=said,
            phase=Phase.PROGRESSING,
            stage=0,
            weight=weight,
            started_at=now,
            stage_started_at=now,
            progress_since=now,
            evaluations_in_stage=0,
        )
        actions: tuple[Action, ...] = (
            _hook(state, HookKind.PRE_ROLLOUT, 0.0),
            SetWeight(state.model, state.canary_version, weight),
        )
        return Transition(new, actions, f"{said}; stage 1/{len(policy.stage_weights)} at {weight:g}%")
    if phase is Phase.PENDING and kind is not CommandKind.ABORT:
        raise ConflictError(
            f"canary {state.model} {state.canary_version} has not started; {kind.value} needs start first"
        )
    if kind is CommandKind.PAUSE:
        if phase is Phase.PAUSED:
            raise ConflictError(f"canary {state.model} {state.canary_version} is already paused ({state.reason})")
        return _pause(state, now, said, alert=False)
    if kind is CommandKind.RESUME:
        if phase is not Phase.PAUSED:
            raise ConflictError(
                f"canary {state.model} {state.canary_version} is {phase.value}, not paused; nothing to resume"
            )
        return _resume(state, policy, now, said)
    if kind is CommandKind.PROMOTE:
        return _promote(state, now, f"{said}; remaining stages skipped")
    if kind is CommandKind.ABORT:
        return _stop(state, now, Phase.ABORTED, said)
    if kind is CommandKind.APPROVE:
        if phase is not Phase.PROMOTING:
            if not policy.manual_approval:
                detail = "this canary's policy does not require approval"
            else:
                detail = f"it is {phase.value} at stage {state.stage + 1}/{len(policy.stage_weights)}"
            raise ConflictError(
                f"nothing awaits approval for canary {state.model} {state.canary_version}: {detail}"
            )
        return _promote(state, now, f"{said}; promotion approved")
    raise ValueError(f"unknown command {kind!r}")  # pragma: no cover - CommandKind is closed


def _classify(evaluation: Evaluation) -> str:
    if evaluation.verdict is Verdict.FAIL:
        return "fail"
    if evaluation.metrics_error:
        return "error"
    if evaluation.verdict is Verdict.INCONCLUSIVE:
        return "inconclusive"
    return "pass"


def _on_evaluation(state: CanaryState, policy: CanaryPolicy, now: datetime, evaluation: Evaluation) -> Transition:
    interval = policy.analysis_interval_seconds
    if state.last_evaluation_at is not None:
        since = (now - state.last_evaluation_at).total_seconds()
        if since < interval:
            return Transition(
                state, (), f"evaluation ignored: {since:g}s since the last counted one, interval {interval:g}s"
            )
    outcome = _classify(evaluation)
    counted = {
        "last_evaluation_at": now,
        "last_evaluation": evaluation,
        "evaluations_in_stage": state.evaluations_in_stage + 1,
    }
    total = len(policy.stage_weights)
    where = f"stage {state.stage + 1}/{total} at {state.weight:g}%"

    if outcome == "fail":
        failed = state.failed_checks + 1
        reason = f"failed check {failed}/{policy.failure_threshold} at {where}: {evaluation.reason}"
        new = _changed(
            state, reason=reason, failed_checks=failed, inconclusive_streak=0, metrics_error_streak=0, **counted
        )
        if failed >= policy.failure_threshold:
            return _stop(new, now, Phase.ROLLED_BACK, f"rolled back after {reason}")
        return Transition(new, (), reason)

    if state.phase is Phase.PAUSED:
        # Paused means a human decides what happens next; only failures keep counting.
        reason = f"paused; {outcome} evaluation recorded ({evaluation.reason})"
        return Transition(_changed(state, reason=state.reason, **counted), (), reason)

    if outcome == "error":
        streak = state.metrics_error_streak + 1
        reason = f"metrics source error {streak}/{policy.metrics_error_limit} at {where}: {evaluation.reason}"
        new = _changed(state, reason=reason, metrics_error_streak=streak, **counted)
        if streak >= policy.metrics_error_limit:
            if policy.on_metrics_error == "rollback":
                return _stop(new, now, Phase.ROLLED_BACK, f"rolled back: {reason}")
            return _pause(new, now, f"paused: {reason}", alert=True)
        return Transition(new, (), reason)

    if outcome == "inconclusive" and evaluation.collecting:
        # Evidence is accumulating towards a decision: not a reason to call a human, unless the
        # decision cannot come before the progress deadline, which is said now rather than then.
        reason = f"collecting evidence at {where}: {evaluation.reason}"
        late = _too_late(state, policy, now, evaluation.expected_seconds)
        if late:
            reason = f"{reason}; {late}"
        new = _changed(state, reason=reason, inconclusive_streak=0, metrics_error_streak=0, **counted)
        return Transition(new, (), reason)

    if outcome == "inconclusive":
        streak = state.inconclusive_streak + 1
        reason = f"inconclusive {streak}/{policy.inconclusive_limit} at {where}: {evaluation.reason}"
        new = _changed(state, reason=reason, inconclusive_streak=streak, metrics_error_streak=0, **counted)
        if streak >= policy.inconclusive_limit:
            return _pause(new, now, f"paused for a human: {reason}", alert=True)
        return Transition(new, (), reason)

    # A pass.
    new_fields = {"inconclusive_streak": 0, "metrics_error_streak": 0, **counted}
    if state.phase is Phase.PROMOTING:
        reason = f"passed at {where}; waiting for approval"
        return Transition(_changed(state, reason=state.reason, **new_fields), (), reason)
    assert state.stage_started_at is not None
    elapsed = (now - state.stage_started_at).total_seconds()
    if elapsed < policy.min_stage_seconds:
        reason = f"passed at {where}; stage needs {policy.min_stage_seconds - elapsed:g}s more"
        return Transition(_changed(state, reason=reason, **new_fields), (), reason)
    passed = _changed(state, reason=state.reason, **new_fields)
    return _advance(passed, policy, now, f"stage {state.stage + 1}/{total} passed ({evaluation.reason})")


def _advance(state: CanaryState, policy: CanaryPolicy, now: datetime, reason: str) -> Transition:
    weights = policy.stage_weights
    nxt = state.stage + 1
    if nxt < len(weights):
        weight = weights[nxt]
        text = f"{reason}; stage {nxt + 1}/{len(weights)}: {state.weight:g}% -> {weight:g}%"
        new = _changed(
            state,
            reason=text,
            stage=nxt,
            weight=weight,
            stage_started_at=now,
            progress_since=now,
            evaluations_in_stage=0,
            inconclusive_streak=0,
        )
        return Transition(new, (SetWeight(state.model, state.canary_version, weight),), text)
    if not policy.manual_approval:
        return _promote(state, now, f"{reason}; promoting")
    text = f"{reason}; waiting for approval to promote {state.canary_version}"
    new = _changed(
        state, reason=text, phase=Phase.PROMOTING, open_alerts=_with(state.open_alerts, ALERT_AWAITING_APPROVAL)
    )
    actions: tuple[Action, ...] = (
        _hook(state, HookKind.CONFIRM_PROMOTION, state.weight),
        RaiseAlert(
            state.model,
            ALERT_AWAITING_APPROVAL,
            Severity.INFO,
            f"canary {state.model} {state.canary_version} passed every stage and awaits approval",
        ),
    )
    return Transition(new, actions, text)


def _promote(state: CanaryState, now: datetime, reason: str) -> Transition:
    new = _changed(state, reason=reason, phase=Phase.SUCCEEDED, weight=100.0, finished_at=now, open_alerts=())
    actions: list[Action] = [
        PromoteVersion(state.model, state.canary_version, state.production_version),
        _hook(state, HookKind.POST_ROLLOUT, 100.0),
    ]
    actions.extend(ResolveAlert(state.model, key) for key in state.open_alerts)
    return Transition(new, tuple(actions), reason)


def _stop(state: CanaryState, now: datetime, phase: Phase, reason: str) -> Transition:
    """Back to weight 0 now: rollback, failure or abort. Production is left as it was."""
    alert_key = {Phase.ROLLED_BACK: ALERT_ROLLED_BACK, Phase.FAILED: ALERT_FAILED}.get(phase)
    new = _changed(
        state,
        reason=reason,
        phase=phase,
        weight=0.0,
        finished_at=now,
        open_alerts=() if alert_key is None else (alert_key,),
    )
    actions: list[Action] = [
        SetWeight(state.model, state.canary_version, 0.0),
        _hook(state, HookKind.ROLLBACK, 0.0),
    ]
    actions.extend(ResolveAlert(state.model, key) for key in state.open_alerts)
    if alert_key is not None:
        summary = f"canary {state.model} {state.canary_version} {phase.value.replace('_', ' ')}: {reason}"
        actions.append(RaiseAlert(state.model, alert_key, Severity.CRITICAL, summary))
    return Transition(new, tuple(actions), reason)


def _pause(state: CanaryState, now: datetime, reason: str, *, alert: bool) -> Transition:
    alerts = tuple(a for a in state.open_alerts if a != ALERT_AWAITING_APPROVAL)
    actions: list[Action] = [ResolveAlert(state.model, a) for a in state.open_alerts if a == ALERT_AWAITING_APPROVAL]
    if alert and ALERT_PAUSED not in alerts:
        alerts = (*alerts, ALERT_PAUSED)
        actions.append(
            RaiseAlert(
                state.model,
                ALERT_PAUSED,
                Severity.WARNING,
                f"canary {state.model} {state.canary_version} paused at {state.weight:g}%: {reason}",
            )
        )
    new = _changed(state, reason=reason, phase=Phase.PAUSED, open_alerts=alerts)
    return Transition(new, tuple(actions), reason)


def _resume(state: CanaryState, policy: CanaryPolicy, now: datetime, reason: str) -> Transition:
    # Back to progressing in the same stage: a fresh pass is needed to move on (also at the last
    # stage, which then asks for approval again). Time spent paused at this weight still counts
    # towards min_stage_seconds; the deadline restarts.
    actions = tuple(ResolveAlert(state.model, a) for a in state.open_alerts if a == ALERT_PAUSED)
    new = _changed(
        state,
        reason=f"{reason}; stage {state.stage + 1}/{len(policy.stage_weights)} at {state.weight:g}%",
        phase=Phase.PROGRESSING,
        progress_since=now,
        inconclusive_streak=0,
        metrics_error_streak=0,
        open_alerts=tuple(a for a in state.open_alerts if a != ALERT_PAUSED),
    )
    return Transition(new, actions, new.reason)


def _check_deadline(state: CanaryState, policy: CanaryPolicy, now: datetime) -> Transition | None:
    assert state.progress_since is not None
    waited = (now - state.progress_since).total_seconds()
    if waited <= policy.progress_deadline_seconds:
        return None
    reason = (
        f"progress deadline exceeded: stage {state.stage + 1}/{len(policy.stage_weights)} at {state.weight:g}% "
        f"made no progress for {waited:g}s (deadline {policy.progress_deadline_seconds:g}s)"
    )
    if policy.on_progress_deadline == "fail":
        return _stop(state, now, Phase.FAILED, reason)
    return _pause(state, now, f"paused: {reason}", alert=True)


def _too_late(state: CanaryState, policy: CanaryPolicy, now: datetime, expected: float | None) -> str:
    """Why the stage cannot decide before its progress deadline at current traffic, or ''."""
    if state.progress_since is None or state.phase is not Phase.PROGRESSING:
        return ""
    left = policy.progress_deadline_seconds - (now - state.progress_since).total_seconds()
    if expected is None:
        return "no decision expected at the current traffic before the progress deadline"
    if expected > left:
        return (f"cannot decide before the progress deadline at the current traffic "
                f"(needs {describe_seconds(expected)}, {describe_seconds(max(left, 0.0))} left)")
    return ""


def _waiting_reason(state: CanaryState, policy: CanaryPolicy, now: datetime) -> str:
    assert state.stage_started_at is not None
    elapsed = (now - state.stage_started_at).total_seconds()
    where = f"stage {state.stage + 1}/{len(policy.stage_weights)} at {state.weight:g}%"
    if elapsed < policy.min_stage_seconds:
        return f"{where}: {policy.min_stage_seconds - elapsed:g}s of the minimum stage time left"
    return f"{where}: waiting for a passing evaluation"


# --------------------------------------------------------------------------- helpers


def _changed(state: CanaryState, *, reason: str, **changes: Any) -> CanaryState:
    return replace(state, reason=reason, revision=state.revision + 1, **changes)


def _hook(state: CanaryState, kind: HookKind, weight: float) -> RunHook:
    return RunHook(kind, state.model, state.canary_version, state.production_version, weight)


def _with(keys: tuple[str, ...], key: str) -> tuple[str, ...]:
    return keys if key in keys else (*keys, key)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _check_now(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
