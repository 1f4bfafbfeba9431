"""Property tests: random sequences of evaluations, operator commands and clock advances.

Whatever happens, the invariants an on-call engineer relies on hold: traffic never exceeds the
current stage, never grows without a passing evaluation in the stage, a rollback or abort always
ends at weight 0 without touching production, a canary is promoted at most once, terminal states
stay terminal, and the persisted state reloads exactly (so a restart changes nothing).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsctl.core.canary import (
    CanaryPolicy,
    CanaryState,
    Command,
    CommandKind,
    Phase,
    PromoteVersion,
    SetWeight,
    new_canary,
    step,
)
from opsctl.core.gates import Evaluation, GateResult, Verdict
from opsctl.errors import ConflictError

T0 = datetime(2026, 3, 1, tzinfo=UTC)

EVALUATIONS = {
    "pass": Evaluation.of([GateResult("g", Verdict.PASS)]),
    "fail": Evaluation.of([GateResult("g", Verdict.FAIL)]),
    "inconclusive": Evaluation.of([GateResult("g", Verdict.INCONCLUSIVE)]),
    "error": Evaluation.of([GateResult("g", Verdict.INCONCLUSIVE)], metrics_error=True),
    "error_pass": Evaluation.of([GateResult("g", Verdict.PASS)], metrics_error=True),
    "error_fail": Evaluation.of([GateResult("g", Verdict.FAIL)], metrics_error=True),
}
STOPPED = {Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED}


@st.composite
def policies(draw: st.DrawFn) -> CanaryPolicy:
    interval = draw(st.sampled_from([10.0, 30.0, 60.0]))
    min_stage = draw(st.sampled_from([0.0, 30.0, 120.0]))
    common = {
        "min_stage_seconds": min_stage,
        "analysis_interval_seconds": interval,
        "progress_deadline_seconds": min_stage + interval + draw(st.sampled_from([0.0, 100.0, 1000.0])),
        "failure_threshold": draw(st.integers(1, 4)),
        "inconclusive_limit": draw(st.integers(1, 4)),
        "metrics_error_limit": draw(st.integers(1, 3)),
        "on_metrics_error": draw(st.sampled_from(["pause", "rollback"])),
        "on_progress_deadline": draw(st.sampled_from(["pause", "fail"])),
        "manual_approval": draw(st.booleans()),
    }
    if draw(st.booleans()):
        stages = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=5)))
        return CanaryPolicy(stages=[float(s) for s in stages], **common)
    step_weight = draw(st.sampled_from([5.0, 10.0, 25.0, 33.3]))
    max_weight = draw(st.sampled_from([None, 50.0, 100.0]))
    return CanaryPolicy(step_weight=step_weight, max_weight=max_weight, **common)


inputs = st.one_of(
    st.tuples(st.just("tick"), st.none()),
    st.tuples(st.just("evaluation"), st.sampled_from(sorted(EVALUATIONS))),
    st.tuples(st.just("command"), st.sampled_from(list(CommandKind))),
)
# Mostly passes so runs get deep into the stages; the other inputs still appear often.
weighted_inputs = st.one_of(
    st.tuples(st.just("evaluation"), st.just("pass")),
    inputs,
)
sequences = st.lists(
    st.tuples(st.integers(0, 200), weighted_inputs),
    min_size=1,
    max_size=40,
)


def _reload(state: CanaryState) -> CanaryState:
    return CanaryState.from_json(json.loads(json.dumps(state.to_json())))


def _counted(before: CanaryState, policy: CanaryPolicy, now: datetime) -> bool:
    last = before.last_evaluation_at
    return last is None or (now - last).total_seconds() >= policy.analysis_interval_seconds


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), script=sequences, start_first=st.booleans())
def test_canary_invariants_hold_for_any_sequence_of_inputs(policy, script, start_first):
    weights = policy.stage_weights
    state = new_canary("m", "v2", "v1", T0)
    now = T0
    if start_first:
        script = [(0, ("command", CommandKind.START)), *script]
    promotions = 0
    for advance, (kind, payload) in script:
        now += timedelta(seconds=advance)
        before = state
        evaluation = EVALUATIONS[payload] if kind == "evaluation" else None
        command = Command(payload) if kind == "command" else None
        try:
            transition = step(state, policy, now, evaluation=evaluation, command=command)
        except ConflictError:
            assert command is not None, "only operator commands may be refused"
            continue
        state = transition.state
        actions = transition.actions

        # No transition out of a terminal state.
        if before.terminal:
            assert command is None
            assert state == before and actions == ()
            continue

        # The weight is the current stage's (0 before start and after a stop, 100 once promoted).
        if state.phase is Phase.PENDING or state.phase in STOPPED:
            assert state.weight == 0.0
        elif state.phase is Phase.SUCCEEDED:
            assert state.weight == 100.0
        else:
            assert state.weight == weights[state.stage]
        for action in actions:
            if isinstance(action, SetWeight):
                assert action.weight in (0.0, *weights)
                assert action.weight <= (100.0 if state.phase is Phase.SUCCEEDED else weights[state.stage])
                assert action.weight == state.weight

        # The weight never increases without a passing evaluation in the stage (start aside).
        raised = [a for a in actions if isinstance(a, SetWeight) and a.weight > before.weight]
        if raised:
            if command is not None:
                assert command.kind is CommandKind.START and raised[0].weight == weights[0]
            else:
                assert evaluation is not None
                assert evaluation.verdict is Verdict.PASS and not evaluation.metrics_error
                assert before.phase is Phase.PROGRESSING and _counted(before, policy, now)
                assert before.stage_started_at is not None
                assert (now - before.stage_started_at).total_seconds() >= policy.min_stage_seconds
                assert state.stage == before.stage + 1 and state.last_evaluation_at == now
        if state.stage != before.stage:
            assert raised, "a stage changed without a weight change"
        # Paused traffic stays where it is.
        if before.phase is Phase.PAUSED and state.phase is Phase.PAUSED:
            assert state.weight == before.weight and actions == ()

        # Rollback, failure and abort end at weight 0 and never promote.
        if state.phase in STOPPED:
            assert SetWeight("m", "v2", 0.0) in actions
            assert not any(isinstance(a, PromoteVersion) for a in actions)
        # Promotion happens once, only into succeeded, only with approval when required.
        promoted = [a for a in actions if isinstance(a, PromoteVersion)]
        promotions += len(promoted)
        assert promotions <= 1
        if promoted:
            assert state.phase is Phase.SUCCEEDED and promoted == [PromoteVersion("m", "v2", "v1")]
            if policy.manual_approval and command is None:
                raise AssertionError("promoted without approval")
        if state.phase is Phase.SUCCEEDED:
            assert promoted
        if state.phase is Phase.PROMOTING:
            assert policy.manual_approval and state.stage == len(weights) - 1

        # Counters stay within their limits unless the canary has stopped.
        if not state.terminal:
            assert state.failed_checks < policy.failure_threshold
            if state.phase is Phase.PROGRESSING:
                assert state.inconclusive_streak < policy.inconclusive_limit
                assert state.metrics_error_streak < policy.metrics_error_limit
        if state != before:
            assert state.revision > before.revision

        # The persisted state reloads exactly, and a restarted daemon would take the same step.
        assert _reload(state) == state
        assert step(_reload(before), policy, now, evaluation=evaluation, command=command) == transition

    # A terminal canary refuses every command.
    if state.terminal:
        for kind in CommandKind:
            try:
                step(state, policy, now, command=Command(kind))
            except ConflictError:
                continue
            raise AssertionError(f"{kind} accepted on a {state.phase} canary")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(policy=policies(), seconds=st.lists(st.integers(1, 100), min_size=1, max_size=60))
def test_a_canary_that_only_ever_passes_is_promoted_after_every_stage_in_order(policy, seconds):
    state = step(new_canary("m", "v2", "v1", T0), policy, T0, command=Command("start")).state
    now = T0
    seen = [state.weight]
    for advance in seconds:
        now += timedelta(seconds=advance)
        transition = step(state, policy, now, evaluation=EVALUATIONS["pass"])
        state = transition.state
        seen.extend(a.weight for a in transition.actions if isinstance(a, SetWeight))
        assert state.phase in (Phase.PROGRESSING, Phase.PROMOTING, Phase.SUCCEEDED)
        if state.terminal:
            break
    # Never skips a stage and never goes backwards.
    assert seen == list(policy.stage_weights[: len(seen)])
