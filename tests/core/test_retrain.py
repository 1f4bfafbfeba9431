"""The pure retraining rules: settings, single flight and cooldown, version bumps, champion vs challenger."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from opsctl.config import parse_settings
from opsctl.core.retrain import (
    DecisionOutcome,
    RetrainDecision,
    RetrainRun,
    RunRef,
    RunStatus,
    TriggerVerdict,
    VersionBumpError,
    binary_metrics,
    bump_version,
    decide_champion,
    decide_trigger,
    due_fire_time,
    next_fire_time,
)
from opsctl.errors import ConfigError

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# -- settings ---------------------------------------------------------------------------------


def test_retrain_section_resolves_per_model_overrides_over_section_defaults() -> None:
    settings = parse_settings(
        """
[retrain]
cooldown_seconds = 600
metric = "roc_auc"
min_improvement = 0.01

[retrain.models.fraud-detector]
entrypoint = "opsctl.demo.training:train"
schedule = "0 2 * * *"
params = { n_samples = "2000" }
min_improvement = 0.02
approval_before_canary = true

[retrain.models.churn]
command = ["python", "train.py"]
version_bump = "minor"
"""
    )
    policy = settings.retrain
    fraud = policy.for_model("fraud-detector")
    churn = policy.for_model("churn")
    assert fraud is not None and churn is not None
    assert (fraud.metric, fraud.min_improvement, fraud.cooldown_seconds) == ("roc_auc", 0.02, 600.0)
    assert fraud.approval_before_canary and fraud.schedule == "0 2 * * *" and fraud.params == {"n_samples": "2000"}
    assert (churn.min_improvement, churn.version_bump, churn.command) == (0.01, "minor", ("python", "train.py"))
    assert not churn.approval_before_canary
    assert policy.for_model("unknown") is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[retrain.models.m]\nentrypoint = "a.b:c"\nschedule = "0 25 * * *"', "schedule"),
        ('[retrain.models.m]\nentrypoint = "a.b:c"\nschedule = "@daily"', "five-field"),
        ("[retrain.models.m]\nparams = {}", "exactly one of entrypoint"),
        ('[retrain.models.m]\nentrypoint = "nocolon"', "module:function"),
        ('[retrain]\nversion_bump = "major"', "version_bump"),
        ("[retrain]\nmin_improvement = -0.1", "min_improvement"),
        ('[retrain]\nschedule_timezone = "Mars/Olympus"', "schedule_timezone"),
        ('[retrain.models.m]\nentrypoint = "a.b:c"\ntimeout_seconds = 0', "timeout_seconds"),
    ],
)
def test_impossible_retrain_settings_name_the_key(table: str, message: str) -> None:
    settings = parse_settings(table)
    with pytest.raises(ConfigError, match=message) as raised:
        settings.validate()
    assert "retrain" in str(raised.value)


# -- cron -------------------------------------------------------------------------------------


def test_daily_two_am_schedule_fires_once_when_the_check_crosses_it() -> None:
    before = datetime(2026, 3, 2, 1, 59, 40, tzinfo=UTC)
    after = datetime(2026, 3, 2, 2, 0, 10, tzinfo=UTC)
    assert due_fire_time("0 2 * * *", last_checked=before, now=after) == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    # The next check, 30 s later, does not fire again.
    assert due_fire_time("0 2 * * *", last_checked=after, now=after + timedelta(seconds=30)) is None
    assert next_fire_time("0 2 * * *", after) == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


def test_missed_schedules_coalesce_and_stale_ones_are_skipped() -> None:
    # Down from 01:00 to 02:30 across a "*/30" schedule: one run for the latest (02:30) fire time.
    due = due_fire_time("*/30 * * * *", last_checked=datetime(2026, 3, 2, 1, 0, 5, tzinfo=UTC),
                        now=datetime(2026, 3, 2, 2, 30, 1, tzinfo=UTC))
    assert due == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
    # Back on Monday noon after Saturday's 02:00: too late to be useful, skipped.
    assert due_fire_time("0 2 * * 6", last_checked=datetime(2026, 2, 27, tzinfo=UTC),
                         now=datetime(2026, 3, 2, 12, 0, tzinfo=UTC), misfire_grace_seconds=3600) is None


def test_schedule_timezone_is_honoured() -> None:
    # 02:00 in Berlin (UTC+1 in March before DST) is 01:00 UTC.
    assert next_fire_time("0 2 * * *", datetime(2026, 3, 2, tzinfo=UTC), "Europe/Berlin") == datetime(
        2026, 3, 2, 1, 0, tzinfo=UTC)


# -- single flight and cooldown ----------------------------------------------------------------


def _ref(status: RunStatus, started: datetime = T0, finished: datetime | None = None) -> RunRef:
    return RunRef("run-1", status, started, finished)


def test_first_trigger_starts_a_run() -> None:
    assert decide_trigger(trigger="drift", latest=None, cooldown_seconds=3600, now=T0).verdict is TriggerVerdict.START


@pytest.mark.parametrize("trigger", ["drift", "performance", "schedule", "manual"])
@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.EVALUATING])
def test_any_trigger_joins_the_run_in_flight(trigger: str, status: RunStatus) -> None:
    decision = decide_trigger(trigger=trigger, latest=_ref(status), cooldown_seconds=0, now=T0 + timedelta(days=1))
    assert decision.verdict is TriggerVerdict.JOIN and decision.run_id == "run-1"


def test_automatic_triggers_wait_out_the_cooldown_counted_from_the_end_of_the_last_run() -> None:
    latest = _ref(RunStatus.FAILED, started=T0, finished=T0 + timedelta(minutes=50))
    held = decide_trigger(trigger="drift", latest=latest, cooldown_seconds=3600, now=T0 + timedelta(minutes=80))
    assert held.verdict is TriggerVerdict.COOLDOWN
    assert held.retry_after_seconds == pytest.approx(30 * 60)
    later = decide_trigger(trigger="drift", latest=latest, cooldown_seconds=3600, now=T0 + timedelta(minutes=111))
    assert later.verdict is TriggerVerdict.START


def test_a_person_is_not_held_by_the_cooldown() -> None:
    latest = _ref(RunStatus.KEPT, finished=T0)
    decision = decide_trigger(trigger="manual", latest=latest, cooldown_seconds=3600, now=T0 + timedelta(seconds=1))
    assert decision.verdict is TriggerVerdict.START


def test_unknown_trigger_is_refused() -> None:
    with pytest.raises(ValueError, match="trigger"):
        decide_trigger(trigger="cosmic-ray", latest=None, cooldown_seconds=0, now=T0)


# -- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "rule", "existing", "expected"),
    [
        ("1.2.3", "patch", set(), "1.2.4"),  # the chapter's rule
        ("1.2.3", "minor", set(), "1.3.0"),
        ("v2.0.9", "patch", set(), "v2.0.10"),
        ("1.2.3", "patch", {"1.2.3", "1.2.4", "1.2.5"}, "1.2.6"),  # rejected candidates keep their numbers
        ("1.2.3", "minor", {"1.3.0"}, "1.4.0"),
        (None, "patch", set(), "1.0.0"),
        (None, "patch", {"0.9.0", "0.10.2", "weird"}, "0.10.3"),
    ],
)
def test_bump_version(current: str | None, rule: str, existing: set[str], expected: str) -> None:
    assert bump_version(current, rule, existing) == expected


@pytest.mark.parametrize("current", ["2024-06-01", "1.2.3-rc1", "1.2", "latest", "01.2.3"])
def test_non_semver_production_version_is_refused_clearly(current: str) -> None:
    with pytest.raises(VersionBumpError, match=re.escape(f"{current!r} is not MAJOR.MINOR.PATCH")):
        bump_version(current, "patch")


def test_no_semver_anywhere_is_refused() -> None:
    with pytest.raises(VersionBumpError, match=r"no registered version is MAJOR\.MINOR\.PATCH"):
        bump_version(None, "patch", {"alpha", "beta"})


# -- champion vs challenger ---------------------------------------------------------------------


def _decide(champion: float | None, challenger: float, margin: float = 0.01, higher: bool = True) -> RetrainDecision:
    return decide_champion(metric="accuracy", higher_is_better=higher, min_improvement=margin,
                           champion_version=None if champion is None else "1.0.0",
                           champion_metrics=None if champion is None else {"accuracy": champion},
                           challenger_version="1.0.1", challenger_metrics={"accuracy": challenger},
                           holdout_rows=500, holdout_sha256="ab" * 32)


def test_challenger_better_by_the_margin_goes_to_a_canary() -> None:
    decision = _decide(0.90, 0.91)  # exactly the margin (0.91 - 0.90 is 0.010000000000000009 in floats)
    assert decision.outcome is DecisionOutcome.CANARY
    assert decision.improvement == pytest.approx(0.01)
    assert (decision.champion_score, decision.challenger_score) == (0.90, 0.91)
    assert "0.9000 (1.0.0) -> 0.9100 (1.0.1)" in decision.reason and "500 holdout rows" in decision.reason


@pytest.mark.parametrize(("champion", "challenger"), [(0.90, 0.905), (0.90, 0.90), (0.90, 0.85)])
def test_challenger_not_better_by_the_margin_is_kept(champion: float, challenger: float) -> None:
    decision = _decide(champion, challenger)
    assert decision.outcome is DecisionOutcome.KEEP
    assert "keep 1.0.0" in decision.reason


def test_zero_margin_still_needs_a_real_improvement() -> None:
    assert _decide(0.9, 0.9, margin=0.0).outcome is DecisionOutcome.KEEP
    assert _decide(0.9, 0.9001, margin=0.0).outcome is DecisionOutcome.CANARY


def test_lower_is_better_metrics() -> None:
    assert _decide(0.30, 0.25, margin=0.02, higher=False).outcome is DecisionOutcome.CANARY
    assert _decide(0.30, 0.35, margin=0.0, higher=False).outcome is DecisionOutcome.KEEP


def test_no_champion_keeps_the_candidate_registered() -> None:
    decision = _decide(None, 0.8)
    assert decision.outcome is DecisionOutcome.NO_CHAMPION and decision.improvement is None


def test_missing_metric_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="no 'roc_auc'"):
        decide_champion(metric="roc_auc", higher_is_better=True, min_improvement=0, champion_version="1",
                        champion_metrics={"roc_auc": 0.9}, challenger_version="2",
                        challenger_metrics={"accuracy": 0.9}, holdout_rows=1, holdout_sha256="x")


def test_decision_and_run_round_trip_through_json() -> None:
    decision = _decide(0.9, 0.95)
    run = RetrainRun(id="r1", model="m", trigger="drift", reason="psi", actor="opsctld via drift",
                     status=RunStatus.CANARY_STARTED, started_at=T0, finished_at=T0 + timedelta(minutes=3),
                     parent_version="1.0.0", candidate_version="1.0.1", joined_triggers=9, decision=decision,
                     canary={"id": 4}, logs="line 1\nline 2", actor_uid=0)
    assert RetrainRun.from_json(run.to_json()) == run
    assert "logs" not in run.to_json(with_logs=False)


def test_binary_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(labels * 0.3 + rng.random(400) * 0.7, 0, 1)
    predicted = (scores >= 0.5).astype(int)
    metrics = binary_metrics(labels, scores)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert metrics["precision"] == pytest.approx(precision_score(labels, predicted))
    assert metrics["recall"] == pytest.approx(recall_score(labels, predicted))
    assert metrics["f1"] == pytest.approx(f1_score(labels, predicted))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert "roc_auc" not in binary_metrics(np.ones(5), np.full(5, 0.7))  # undefined with one class
