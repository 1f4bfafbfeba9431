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
from dataclasses import replace
from datetime import datetime
from typing import Any

from opsctl.core.canary.actions import (
    ALERT_AWAITING_APPROVAL,
    ALERT_FAILED,
    ALERT_PAUSED,
    ALERT_ROLLED_BACK,
    Action,
    HookKind,
    PromoteVersion,
    RaiseAlert,
    ResolveAlert,
    RunHook,
    SetWeight,
    Severity,
)
from opsctl.core.canary.inputs import Command, CommandKind
from opsctl.core.canary.policy import CanaryPolicy
from opsctl.core.canary.state import CanaryState, Phase, Transition, check_now
from opsctl.core.durations import format_duration
from opsctl.core.gates import Evaluation, Verdict
from opsctl.core.sequential import describe_seconds
from opsctl.errors import ConflictError

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
    check_now(now)
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
        # Rounded up: "needs 0s more" would read as done.
        reason = f"passed at {where}; stage needs {format_duration(math.ceil(policy.min_stage_seconds - elapsed))} more"
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
