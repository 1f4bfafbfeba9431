"""The canary state machine, example by example: every transition with exactly the actions it emits."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from opsctl.core.canary import (
    ALERT_AWAITING_APPROVAL,
    ALERT_FAILED,
    ALERT_PAUSED,
    ALERT_ROLLED_BACK,
    CanaryPolicy,
    CanaryState,
    Command,
    HookKind,
    Phase,
    PromoteVersion,
    RaiseAlert,
    ResolveAlert,
    RunHook,
    SetWeight,
    Severity,
    Transition,
    action_from_json,
    new_canary,
    step,
)
from opsctl.core.gates import Evaluation, GateResult, Verdict
from opsctl.errors import ConflictError
from opsctl.settings_loader import load_dataclass

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
MODEL, CANARY, PROD = "fraud-detector", "v8", "v7"

PASS = Evaluation.of([GateResult("error_rate", Verdict.PASS), GateResult("sla", Verdict.PASS)])
FAIL = Evaluation.of([GateResult("error_rate", Verdict.FAIL, reason="canary 20% vs production 1%")])
UNSURE = Evaluation.of([GateResult("error_rate", Verdict.INCONCLUSIVE, reason="150 requests, 2881 needed")])
SOURCE_DOWN = Evaluation.of([GateResult("error_rate", Verdict.INCONCLUSIVE)], metrics_error=True, reason="unreachable")
# The source claims a pass while reporting an error: it must still never advance.
ERROR_PASS = Evaluation.of([GateResult("sla", Verdict.PASS)], metrics_error=True)
ERROR_FAIL = Evaluation.of([GateResult("sla", Verdict.FAIL)], metrics_error=True)


def policy(**changes) -> CanaryPolicy:
    base = {
        "stages": [10, 50, 100],
        "min_stage_seconds": 120,
        "analysis_interval_seconds": 60,
        "progress_deadline_seconds": 600,
        "failure_threshold": 2,
        "inconclusive_limit": 3,
        "metrics_error_limit": 2,
    }
    base.update(changes)
    return CanaryPolicy(**base)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def hook(kind: HookKind, weight: float) -> RunHook:
    return RunHook(kind, MODEL, CANARY, PROD, weight)


def started(p: CanaryPolicy | None = None) -> CanaryState:
    p = p or policy()
    return step(new_canary(MODEL, CANARY, PROD, T0), p, T0, command=Command("start")).state


class Run:
    """Drives one canary through steps, remembering every transition."""

    def __init__(self, p: CanaryPolicy, state: CanaryState | None = None) -> None:
        self.policy = p
        self.state = state or new_canary(MODEL, CANARY, PROD, T0)
        self.transitions: list[Transition] = []

    def __call__(self, seconds: float, *, evaluation=None, command=None) -> Transition:
        transition = step(self.state, self.policy, at(seconds), evaluation=evaluation, command=command)
        self.state = transition.state
        self.transitions.append(transition)
        return transition


# --------------------------------------------------------------------------- healthy run


def test_healthy_canary_goes_through_every_stage_to_succeeded_with_exactly_these_actions():
    run = Run(policy())
    start = run(0, command=Command("start", reason="release 8", actor="alice"))
    assert start.actions == (hook(HookKind.PRE_ROLLOUT, 0.0), SetWeight(MODEL, CANARY, 10.0))
    assert "alice" in start.reason and "release 8" in start.reason
    assert run.state.phase is Phase.PROGRESSING and run.state.weight == 10.0

    assert run(60, evaluation=PASS).actions == ()  # stage too young: 60 s of 120
    assert run(120, evaluation=PASS).actions == (SetWeight(MODEL, CANARY, 50.0),)
    assert run.state.stage == 1 and run.state.stage_started_at == at(120)
    assert run(180, evaluation=PASS).actions == ()
    assert run(240, evaluation=PASS).actions == (SetWeight(MODEL, CANARY, 100.0),)
    assert run(300, evaluation=PASS).actions == ()
    final = run(360, evaluation=PASS)
    assert final.actions == (PromoteVersion(MODEL, CANARY, PROD), hook(HookKind.POST_ROLLOUT, 100.0))
    assert run.state.phase is Phase.SUCCEEDED and run.state.weight == 100.0
    assert run.state.finished_at == at(360)
    all_actions = [a for t in run.transitions for a in t.actions]
    assert sum(isinstance(a, PromoteVersion) for a in all_actions) == 1
    assert [a.weight for a in all_actions if isinstance(a, SetWeight)] == [10.0, 50.0, 100.0]


def test_a_stage_too_young_says_how_long_it_still_needs_in_whole_seconds_rounded_up():
    run = Run(policy(analysis_interval_seconds=1))
    run(0, command=Command("start"))
    assert run(60.4, evaluation=PASS).reason.endswith("stage needs 60s more")
    # A few microseconds short is still short: never "needs 0s", never "7.6e-05s".
    assert run(119.999924, evaluation=PASS).reason.endswith("stage needs 1s more")
    assert run.state.stage == 0


def test_stages_from_step_weight_and_max_weight_then_promotion():
    p = CanaryPolicy(step_weight=20, max_weight=50, min_stage_seconds=0, analysis_interval_seconds=10,
                     progress_deadline_seconds=60)
    assert p.stage_weights == (20.0, 40.0, 50.0)
    run = Run(p)
    run(0, command=Command("start"))
    weights = []
    for i in range(1, 4):
        weights += [a.weight for a in run(10 * i, evaluation=PASS).actions if isinstance(a, SetWeight)]
    assert weights == [40.0, 50.0]
    assert run.state.phase is Phase.SUCCEEDED


def test_evaluation_arriving_before_the_analysis_interval_is_ignored():
    run = Run(policy())
    run(0, command=Command("start"))
    run(60, evaluation=UNSURE)
    ignored = run(90, evaluation=FAIL)
    assert "ignored" in ignored.reason
    assert run.state.failed_checks == 0 and run.state.last_evaluation_at == at(60)
    # After the interval the same result counts.
    run(120, evaluation=FAIL)
    assert run.state.failed_checks == 1


def test_a_pass_before_the_minimum_stage_time_does_not_advance_even_after_the_time_is_up():
    run = Run(policy())
    run(0, command=Command("start"))
    run(60, evaluation=PASS)
    # The minimum time is over, but only the clock ticked: no fresh passing evaluation yet.
    tick = run(150)
    assert tick.actions == () and run.state.stage == 0
    assert "waiting for a passing evaluation" in tick.reason


def test_inconclusive_and_metrics_errors_never_advance():
    run = Run(policy(inconclusive_limit=50, metrics_error_limit=50, progress_deadline_seconds=100_000))
    run(0, command=Command("start"))
    for i, evaluation in enumerate([UNSURE, SOURCE_DOWN, ERROR_PASS, UNSURE, ERROR_PASS] * 4, start=1):
        assert run(300 * i, evaluation=evaluation).actions == ()
        assert run.state.stage == 0 and run.state.weight == 10.0
    run(300 * 21, evaluation=PASS)
    assert run.state.stage == 1


# --------------------------------------------------------------------------- rollback


def test_rollback_after_failure_threshold_sets_weight_0_and_never_promotes():
    run = Run(policy())
    run(0, command=Command("start"))
    run(60, evaluation=PASS)
    run(120, evaluation=PASS)  # -> stage 2 at 50 %
    first = run(180, evaluation=FAIL)
    assert first.actions == () and run.state.failed_checks == 1 and run.state.phase is Phase.PROGRESSING
    rollback = run(240, evaluation=FAIL)
    assert run.state.phase is Phase.ROLLED_BACK and run.state.weight == 0.0
    assert rollback.actions[:2] == (SetWeight(MODEL, CANARY, 0.0), hook(HookKind.ROLLBACK, 0.0))
    assert len(rollback.actions) == 3
    alert = rollback.actions[2]
    assert isinstance(alert, RaiseAlert) and alert.severity is Severity.CRITICAL and alert.key == ALERT_ROLLED_BACK
    assert "canary 20% vs production 1%" in alert.summary
    assert run.state.open_alerts == (ALERT_ROLLED_BACK,)


def test_failed_checks_count_over_the_whole_canary_not_per_stage():
    run = Run(policy(failure_threshold=2))
    run(0, command=Command("start"))
    run(60, evaluation=FAIL)
    run(120, evaluation=PASS)  # advances to stage 2 despite one failure
    assert run.state.stage == 1 and run.state.failed_checks == 1
    run(180, evaluation=FAIL)
    assert run.state.phase is Phase.ROLLED_BACK


def test_a_failing_gate_counts_as_a_failure_even_when_the_source_also_reported_an_error():
    run = Run(policy(failure_threshold=1))
    run(0, command=Command("start"))
    run(60, evaluation=ERROR_FAIL)
    assert run.state.phase is Phase.ROLLED_BACK


# --------------------------------------------------------------------------- pause and resume


def test_inconclusive_limit_pauses_with_the_reason_and_an_alert():
    run = Run(policy(inconclusive_limit=3))
    run(0, command=Command("start"))
    run(60, evaluation=UNSURE)
    run(120, evaluation=UNSURE)
    assert run.state.phase is Phase.PROGRESSING and run.state.inconclusive_streak == 2
    paused = run(180, evaluation=UNSURE)
    assert run.state.phase is Phase.PAUSED and run.state.weight == 10.0
    assert "inconclusive 3/3" in run.state.reason and "2881 needed" in run.state.reason
    assert len(paused.actions) == 1
    alert = paused.actions[0]
    assert isinstance(alert, RaiseAlert) and alert.key == ALERT_PAUSED and alert.severity is Severity.WARNING
    assert run.state.open_alerts == (ALERT_PAUSED,)


def collecting(expected_seconds):
    return Evaluation.of([GateResult("error_rate", Verdict.INCONCLUSIVE, sample_size=900, sample_needed=5000,
                                     expected_seconds=expected_seconds, collecting=True,
                                     reason="collecting evidence; pass expected in ~7 min at 10 req/s")])


def test_collecting_evidence_never_pauses_the_canary_for_a_human():
    run = Run(policy(inconclusive_limit=2, progress_deadline_seconds=6000))
    run(0, command=Command("start"))
    for k in range(1, 8):
        run(60 * k, evaluation=collecting(420.0))
    assert run.state.phase is Phase.PROGRESSING and run.state.inconclusive_streak == 0
    assert "collecting evidence" in run.state.reason and "~7 min" in run.state.reason
    assert "progress deadline" not in run.state.reason


def test_a_stage_that_cannot_decide_before_the_deadline_says_so_at_the_first_look():
    run = Run(policy(progress_deadline_seconds=600))
    run(0, command=Command("start"))
    run(60, evaluation=collecting(3600.0))
    assert "cannot decide before the progress deadline" in run.state.reason
    assert "needs ~60 min, ~9 min left" in run.state.reason
    run2 = Run(policy(progress_deadline_seconds=600))
    run2(0, command=Command("start"))
    run2(60, evaluation=collecting(None))
    assert "no decision expected" in run2.state.reason


def test_policies_stored_with_the_retired_fixed_sample_keys_still_load():
    stored = {**policy().to_json(), "min_requests": 200, "min_labels": 100, "latency_ratio_tolerance": 1.2,
              "latency_slack_seconds": 0.01}
    assert CanaryPolicy.from_json(stored) == policy()
    with pytest.raises(ValueError, match="unknown"):
        CanaryPolicy.from_json({**policy().to_json(), "bogus": 1})


def test_the_gate_policy_splits_alpha_over_the_stages():
    gates = policy(error_rate_alpha=0.02).gate_policy
    assert gates.stages == 3 and gates.error_rate_alpha == 0.02


def test_a_pass_between_inconclusives_resets_the_streak():
    run = Run(policy(inconclusive_limit=2, min_stage_seconds=10_000, progress_deadline_seconds=20_000))
    run(0, command=Command("start"))
    for i, evaluation in enumerate([UNSURE, PASS, UNSURE, PASS, UNSURE], start=1):
        run(60 * i, evaluation=evaluation)
    assert run.state.phase is Phase.PROGRESSING and run.state.inconclusive_streak == 1


def test_paused_canary_keeps_its_weight_ignores_passes_and_still_rolls_back_on_failures():
    run = Run(policy(failure_threshold=2))
    run(0, command=Command("start"))
    run(10, command=Command("pause", reason="looking at dashboards"))
    assert run.state.phase is Phase.PAUSED and run.state.weight == 10.0
    assert run(300, evaluation=PASS).actions == ()
    assert run.state.stage == 0 and run.state.phase is Phase.PAUSED
    run(360, evaluation=FAIL)
    run(420, evaluation=FAIL)
    assert run.state.phase is Phase.ROLLED_BACK and run.state.weight == 0.0


def test_resume_needs_a_fresh_pass_resolves_the_pause_alert_and_restarts_the_deadline():
    run = Run(policy(inconclusive_limit=1))
    run(0, command=Command("start"))
    run(60, evaluation=UNSURE)
    assert run.state.phase is Phase.PAUSED
    resumed = run(5000, command=Command("resume", actor="bob"))
    assert resumed.actions == (ResolveAlert(MODEL, ALERT_PAUSED),)
    assert run.state.phase is Phase.PROGRESSING and run.state.open_alerts == ()
    assert run.state.progress_since == at(5000) and run.state.inconclusive_streak == 0
    assert run(5030).actions == ()  # 4970 s since the stage began, but the deadline restarted
    assert run.state.phase is Phase.PROGRESSING
    # Time spent paused at this weight counts towards the minimum stage time.
    assert run(5060, evaluation=PASS).actions == (SetWeight(MODEL, CANARY, 50.0),)


def test_operator_pause_raises_no_alert():
    run = Run(policy())
    run(0, command=Command("start"))
    assert run(10, command=Command("pause")).actions == ()


# --------------------------------------------------------------------------- metrics-source errors


def test_metrics_error_limit_pauses_by_default_policy():
    run = Run(policy(metrics_error_limit=2))
    run(0, command=Command("start"))
    run(60, evaluation=SOURCE_DOWN)
    assert run.state.metrics_error_streak == 1 and run.state.inconclusive_streak == 0
    run(120, evaluation=SOURCE_DOWN)
    assert run.state.phase is Phase.PAUSED and "metrics source error 2/2" in run.state.reason
    assert run.state.weight == 10.0


def test_metrics_error_limit_rolls_back_when_the_policy_says_so():
    run = Run(policy(metrics_error_limit=2, on_metrics_error="rollback"))
    run(0, command=Command("start"))
    run(60, evaluation=SOURCE_DOWN)
    rollback = run(120, evaluation=ERROR_PASS)
    assert run.state.phase is Phase.ROLLED_BACK
    assert rollback.actions[0] == SetWeight(MODEL, CANARY, 0.0)
    assert not any(isinstance(a, PromoteVersion) for a in rollback.actions)


def test_metrics_errors_must_be_consecutive():
    run = Run(policy(metrics_error_limit=2, inconclusive_limit=10, min_stage_seconds=10_000,
                     progress_deadline_seconds=20_000))
    run(0, command=Command("start"))
    for i, evaluation in enumerate([SOURCE_DOWN, UNSURE, SOURCE_DOWN, PASS, SOURCE_DOWN], start=1):
        run(60 * i, evaluation=evaluation)
    assert run.state.phase is Phase.PROGRESSING and run.state.metrics_error_streak == 1


# --------------------------------------------------------------------------- promote, abort, approve


def test_promote_skips_the_remaining_stages():
    run = Run(policy())
    run(0, command=Command("start"))
    promoted = run(30, command=Command("promote", reason="hotfix", actor="carol"))
    assert promoted.actions == (PromoteVersion(MODEL, CANARY, PROD), hook(HookKind.POST_ROLLOUT, 100.0))
    assert run.state.phase is Phase.SUCCEEDED and run.state.weight == 100.0
    assert "hotfix" in run.state.reason


def test_promote_from_paused_resolves_the_pause_alert():
    run = Run(policy(inconclusive_limit=1))
    run(0, command=Command("start"))
    run(60, evaluation=UNSURE)
    promoted = run(70, command=Command("promote"))
    assert promoted.actions[-1] == ResolveAlert(MODEL, ALERT_PAUSED)
    assert run.state.open_alerts == ()


def test_abort_goes_back_to_weight_0_now_and_resolves_open_alerts():
    run = Run(policy(inconclusive_limit=1))
    run(0, command=Command("start"))
    run(60, evaluation=PASS)
    run(120, evaluation=PASS)
    run(180, evaluation=UNSURE)  # paused at 50 %
    aborted = run(200, command=Command("abort", reason="bad feature"))
    assert aborted.actions == (
        SetWeight(MODEL, CANARY, 0.0),
        hook(HookKind.ROLLBACK, 0.0),
        ResolveAlert(MODEL, ALERT_PAUSED),
    )
    assert run.state.phase is Phase.ABORTED and run.state.weight == 0.0 and run.state.open_alerts == ()


def test_abort_before_start_still_says_weight_0():
    run = Run(policy())
    assert run(5, command=Command("abort")).actions[0] == SetWeight(MODEL, CANARY, 0.0)
    assert run.state.phase is Phase.ABORTED


def test_manual_approval_blocks_the_final_promotion_until_approve():
    run = Run(policy(manual_approval=True))
    run(0, command=Command("start"))
    for t in (60, 120, 180, 240, 300):
        run(t, evaluation=PASS)
    waiting = run(360, evaluation=PASS)
    assert run.state.phase is Phase.PROMOTING and run.state.weight == 100.0
    assert waiting.actions[0] == hook(HookKind.CONFIRM_PROMOTION, 100.0)
    assert isinstance(waiting.actions[1], RaiseAlert) and waiting.actions[1].key == ALERT_AWAITING_APPROVAL
    # More passes and a long wait do not promote, and the deadline does not run while waiting.
    for t in (420, 480, 10_000):
        assert run(t, evaluation=PASS).actions == ()
    assert run(50_000).actions == ()
    assert run.state.phase is Phase.PROMOTING
    approved = run(50_001, command=Command("approve", actor="dave"))
    assert approved.actions == (
        PromoteVersion(MODEL, CANARY, PROD),
        hook(HookKind.POST_ROLLOUT, 100.0),
        ResolveAlert(MODEL, ALERT_AWAITING_APPROVAL),
    )
    assert run.state.phase is Phase.SUCCEEDED


def test_failures_while_waiting_for_approval_still_roll_back():
    run = Run(policy(manual_approval=True, failure_threshold=1))
    run(0, command=Command("start"))
    for t in (60, 120, 180, 240, 300, 360):
        run(t, evaluation=PASS)
    assert run.state.phase is Phase.PROMOTING
    rollback = run(420, evaluation=FAIL)
    assert run.state.phase is Phase.ROLLED_BACK
    assert ResolveAlert(MODEL, ALERT_AWAITING_APPROVAL) in rollback.actions


def test_pausing_while_waiting_for_approval_and_resuming_asks_again_after_a_fresh_pass():
    run = Run(policy(manual_approval=True))
    run(0, command=Command("start"))
    for t in (60, 120, 180, 240, 300, 360):
        run(t, evaluation=PASS)
    paused = run(400, command=Command("pause"))
    assert paused.actions == (ResolveAlert(MODEL, ALERT_AWAITING_APPROVAL),)
    with pytest.raises(ConflictError, match="nothing awaits approval"):
        run(410, command=Command("approve"))
    run(420, command=Command("resume"))
    assert run.state.phase is Phase.PROGRESSING
    again = run(480, evaluation=PASS)
    assert run.state.phase is Phase.PROMOTING and again.actions[0] == hook(HookKind.CONFIRM_PROMOTION, 100.0)


def test_approve_without_manual_approval_policy_explains():
    run = Run(policy())
    run(0, command=Command("start"))
    with pytest.raises(ConflictError, match="does not require approval"):
        run(10, command=Command("approve"))


# --------------------------------------------------------------------------- progress deadline


def test_progress_deadline_pauses_with_the_reason():
    run = Run(policy(progress_deadline_seconds=600, inconclusive_limit=100))
    run(0, command=Command("start"))
    for i in range(1, 10):
        run(60 * i, evaluation=UNSURE)
    assert run(600).actions == () and run.state.phase is Phase.PROGRESSING  # exactly at the deadline
    paused = run(601)
    assert run.state.phase is Phase.PAUSED and "progress deadline exceeded" in run.state.reason
    assert isinstance(paused.actions[0], RaiseAlert) and paused.actions[0].key == ALERT_PAUSED
    # While paused the deadline does not run.
    assert run(100_000).actions == () and run.state.phase is Phase.PAUSED


def test_progress_deadline_fails_the_canary_back_to_0_when_the_policy_says_so():
    run = Run(policy(progress_deadline_seconds=600, on_progress_deadline="fail", inconclusive_limit=100))
    run(0, command=Command("start"))
    run(60, evaluation=PASS)
    run(120, evaluation=PASS)  # stage 2 from t=120: its deadline is t=720
    assert run(700).actions == ()
    failed = run(721, evaluation=UNSURE)
    assert run.state.phase is Phase.FAILED and run.state.weight == 0.0
    assert failed.actions[:2] == (SetWeight(MODEL, CANARY, 0.0), hook(HookKind.ROLLBACK, 0.0))
    assert failed.actions[2].key == ALERT_FAILED


def test_an_advancing_pass_beats_the_deadline_in_the_same_step():
    run = Run(policy(progress_deadline_seconds=600))
    run(0, command=Command("start"))
    assert run(700, evaluation=PASS).actions == (SetWeight(MODEL, CANARY, 50.0),)
    assert run.state.phase is Phase.PROGRESSING


# --------------------------------------------------------------------------- conflicts and terminal states


@pytest.mark.parametrize(
    ("setup", "command", "match"),
    [
        ([], "pause", "has not started"),
        ([], "resume", "has not started"),
        ([], "promote", "has not started"),
        (["start"], "start", "already progressing"),
        (["start"], "resume", "not paused"),
        (["start", "pause"], "pause", "already paused"),
    ],
)
def test_impossible_commands_raise_conflict_and_change_nothing(setup, command, match):
    run = Run(policy())
    for i, kind in enumerate(setup):
        run(i, command=Command(kind))
    before = run.state
    with pytest.raises(ConflictError, match=match):
        step(before, run.policy, at(100), command=Command(command))


@pytest.mark.parametrize("ending", ["abort", "promote", "rollback", "fail"])
def test_terminal_states_accept_no_transition_and_explain_why(ending):
    p = policy(failure_threshold=1, on_progress_deadline="fail")
    run = Run(p)
    run(0, command=Command("start"))
    if ending in ("abort", "promote"):
        run(10, command=Command(ending))
    elif ending == "rollback":
        run(60, evaluation=FAIL)
    else:
        run(601)
    final = run.state
    assert final.terminal
    for kind in ("start", "pause", "resume", "promote", "abort", "approve"):
        with pytest.raises(ConflictError, match=f"already {final.phase.value}"):
            step(final, p, at(10_000), command=Command(kind))
    for evaluation in (None, PASS, FAIL):
        t = step(final, p, at(10_000), evaluation=evaluation)
        assert t.state == final and t.actions == ()
        assert final.phase.value in t.reason


def test_pending_canary_ignores_evaluations_and_ticks():
    state = new_canary(MODEL, CANARY, PROD, T0)
    for evaluation in (None, PASS, FAIL):
        t = step(state, policy(), at(1000), evaluation=evaluation)
        assert t.state == state and t.actions == ()


def test_step_refuses_naive_time_and_two_inputs_at_once():
    state = started()
    with pytest.raises(ValueError, match="timezone-aware"):
        step(state, policy(), datetime(2026, 3, 1), evaluation=PASS)
    with pytest.raises(ValueError, match="not both"):
        step(state, policy(), at(60), evaluation=PASS, command=Command("pause"))
    with pytest.raises(ValueError):
        new_canary(MODEL, PROD, PROD, T0)


# --------------------------------------------------------------------------- persistence


def _reload(state: CanaryState) -> CanaryState:
    return CanaryState.from_json(json.loads(json.dumps(state.to_json())))


def test_a_daemon_restarted_after_every_step_ends_exactly_where_an_uninterrupted_one_does():
    script = [
        (0, None, Command("start")),
        (60, PASS, None),
        (90, FAIL, None),  # ignored: early
        (120, PASS, None),
        (180, UNSURE, None),
        (240, FAIL, None),
        (300, UNSURE, None),
        (330, None, None),
        (360, PASS, None),
        (420, SOURCE_DOWN, None),
        (480, PASS, None),
        (540, PASS, None),
    ]
    p = policy(failure_threshold=3)
    straight = Run(p)
    restarted = Run(p)
    for seconds, evaluation, command in script:
        a = straight(seconds, evaluation=evaluation, command=command)
        restarted.state = _reload(restarted.state)
        b = restarted(seconds, evaluation=evaluation, command=command)
        assert a.actions == b.actions and a.state == b.state
    assert straight.state.phase is Phase.SUCCEEDED
    assert straight.state == restarted.state == _reload(straight.state)


def test_state_json_holds_what_status_output_needs():
    run = Run(policy())
    run(0, command=Command("start"))
    run(60, evaluation=FAIL)
    data = run.state.to_json()
    assert data["phase"] == "progressing" and data["stage"] == 0 and data["weight"] == 10.0
    assert data["failed_checks"] == 1
    assert data["last_evaluation"]["results"][0]["verdict"] == "fail"
    assert data["stage_started_at"] == "2026-03-01T03:00:00Z"


def test_every_transition_bumps_the_revision_and_no_op_steps_do_not():
    run = Run(policy())
    revisions = [run.state.revision]
    run(0, command=Command("start"))
    revisions.append(run.state.revision)
    run(60, evaluation=PASS)
    revisions.append(run.state.revision)
    assert revisions == sorted(set(revisions))
    before = run.state
    run(61, evaluation=PASS)  # ignored
    assert run.state == before


def test_actions_round_trip_through_json():
    actions = [
        SetWeight(MODEL, CANARY, 12.5),
        PromoteVersion(MODEL, CANARY, None),
        hook(HookKind.CONFIRM_PROMOTION, 100.0),
        RaiseAlert(MODEL, ALERT_PAUSED, Severity.WARNING, "paused"),
        ResolveAlert(MODEL, ALERT_PAUSED),
    ]
    for action in actions:
        assert action_from_json(json.loads(json.dumps(action.to_json()))) == action


# --------------------------------------------------------------------------- policy settings


def test_default_policy_matches_the_documented_defaults():
    p = CanaryPolicy()
    assert p.stage_weights == (5.0, 20.0, 50.0, 100.0)
    assert p.on_metrics_error == "pause" and not p.manual_approval


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"stages": []}, "must not be empty"),
        ({"stages": [5, 5, 100]}, "strictly increasing"),
        ({"stages": [50, 20]}, "strictly increasing"),
        ({"stages": [5, 150]}, r"\(0, 100\]"),
        ({"stages": [0, 100]}, r"\(0, 100\]"),
        ({"failure_threshold": 0}, "failure_threshold must be at least 1"),
        ({"inconclusive_limit": 0}, "inconclusive_limit"),
        ({"metrics_error_limit": -1}, "metrics_error_limit"),
        ({"latency_min_share": 0.0}, "latency_min_share"),
        ({"latency_margin_relative": 0}, "latency_margin_relative"),
        ({"analysis_interval_seconds": 0}, "analysis_interval_seconds"),
        ({"min_stage_seconds": -1}, "min_stage_seconds"),
        ({"progress_deadline_seconds": 100}, "progress_deadline_seconds"),
        ({"on_metrics_error": "ignore"}, "on_metrics_error"),
        ({"on_progress_deadline": "shrug"}, "on_progress_deadline"),
        ({"error_rate_alpha": 1.5}, "error_rate_alpha"),
        ({"accuracy_tolerance": 0.0}, "accuracy_tolerance"),
        ({"accuracy_tolerance": 1.0}, "accuracy_tolerance"),
        ({"max_error_rate_percent": 0}, "max_error_rate_percent"),
        ({"step_weight": 0}, "step_weight"),
        ({"step_weight": 30, "max_weight": 20}, "max_weight"),
        ({"max_weight": 50}, "needs step_weight"),
        ({"stages": [10, 100], "step_weight": 10}, "not both"),
        ({"failure_threshold": 2.5}, "integer"),
        ({"manual_approval": "yes"}, "true or false"),
        ({"custom_gates": [{"name": "a", "query": "up", "comparator": "~", "threshold": 1}]}, "comparator"),
        ({"custom_gates": [{"name": "a", "query": "up", "bogus": 1}]}, "unknown keys"),
        ({"custom_gates": [{"name": "a", "query": "up"}, {"name": "a", "query": "up"}]}, "unique"),
    ],
)
def test_impossible_policies_are_refused_with_the_key_named(changes, match):
    with pytest.raises(ValueError, match=match):
        CanaryPolicy(**changes)


def test_merged_applies_overrides_and_switches_stage_style():
    base = CanaryPolicy(stages=[10, 50, 100], failure_threshold=4)
    per_model = base.merged({"min_stage_seconds": 60, "progress_deadline_seconds": 900})
    assert per_model.failure_threshold == 4 and per_model.min_stage_seconds == 60.0
    stepped = per_model.merged({"step_weight": 25})
    assert stepped.stage_weights == (25.0, 50.0, 75.0, 100.0)
    back = stepped.merged({"stages": [1, 100]})
    assert back.stage_weights == (1.0, 100.0) and back.step_weight is None
    with pytest.raises(ValueError, match="unknown canary policy keys: stagez"):
        base.merged({"stagez": [1]})
    with pytest.raises(ValueError, match="failure_threshold"):
        base.merged({"failure_threshold": 0})


def test_policy_round_trips_through_json():
    p = CanaryPolicy(
        step_weight=10,
        max_weight=50,
        manual_approval=True,
        custom_gates=[{"name": "gpu", "query": "avg(gpu_util)", "comparator": "<", "threshold": 0.9}],
    )
    again = CanaryPolicy.from_json(json.loads(json.dumps(p.to_json())))
    assert again == p and again.stage_weights == p.stage_weights


def test_policy_loads_from_a_toml_canary_table():
    table = tomllib.loads(
        """
        stages = [5, 25, 100]
        min_stage_seconds = 600
        on_metrics_error = "rollback"
        manual_approval = true

        [[custom_gates]]
        name = "queue"
        query = 'sum(queue_depth{model="{model}"})'
        comparator = "<"
        threshold = 100
        """
    )
    p = load_dataclass(CanaryPolicy, table, key="canary", path="opsctl.toml")
    assert p.stage_weights == (5.0, 25.0, 100.0)
    assert p.min_stage_seconds == 600.0 and p.on_metrics_error == "rollback"
    assert p.custom_gates[0].threshold == 100.0
