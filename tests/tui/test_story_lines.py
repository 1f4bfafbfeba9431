"""The drift -> retrain story as the TUI's feed and history tab show it: decisions read as decisions, a held
retrain says why, a run names every trigger that asked for it."""

from __future__ import annotations

from datetime import UTC, datetime

from opsctl.core.retrain import DecisionOutcome, RetrainDecision
from opsctl.tui.model import Fleet, describe_event
from opsctl.tui.panels import retrain_runs_text

AT = "2026-03-02T09:00:05Z"


def _audit(action: str, detail: str, *, from_version: str | None = "1.0.0",
           to_version: str | None = None) -> dict[str, object]:
    return {"kind": "audit", "at": AT, "data": {"id": 7, "action": action, "model": "fraud-detector",
                                                 "from_version": from_version, "to_version": to_version,
                                                 "actor": "opsctld", "via": "retrain", "reason": "", "detail": detail}}


def _keep() -> RetrainDecision:
    return RetrainDecision(
        outcome=DecisionOutcome.KEEP, metric="roc_auc", higher_is_better=True, min_improvement=0.01,
        champion_version="1.0.0", challenger_version="1.0.1", champion_score=0.9, challenger_score=0.904,
        improvement=0.004, holdout_rows=3000, holdout_sha256="ab" * 32, champion_metrics={"roc_auc": 0.9},
        challenger_metrics={"roc_auc": 0.904}, reason="...")


def test_a_keep_decision_reads_as_a_decision_not_a_version_change() -> None:
    decision = _keep()
    line = describe_event(_audit("retrain-decision", decision.headline, to_version="1.0.1"))
    assert line == ("09:00:05 retrain-decision fraud-detector: kept 1.0.0: challenger 1.0.1 roc_auc +0.0040"
                    " < margin 0.01 (0.9000 -> 0.9040 on the same 3000 holdout rows) by opsctld")
    assert "1.0.0 -> 1.0.1" not in line


def test_held_retrain_and_drift_verdicts_say_why_and_a_promotion_still_reads_as_a_change() -> None:
    held = describe_event(_audit("retrain-held", "retrain held: cooldown, 212 s left after run abc"))
    assert held == "09:00:05 retrain-held fraud-detector: retrain held: cooldown, 212 s left after run abc by opsctld"
    drift = describe_event(_audit("drift", "drift detected on 1.0.0 (production): v1 (PSI 0.8), v2 (PSI 0.6)"))
    assert drift.endswith("drift fraud-detector: drift detected on 1.0.0 (production): v1 (PSI 0.8), v2 (PSI 0.6)"
                          " by opsctld")
    promote = describe_event(_audit("promote", "promote fraud-detector to 1.0.1", to_version="1.0.1"))
    assert promote == "09:00:05 promote fraud-detector 1.0.0 -> 1.0.1 by opsctld"


def test_a_held_retrain_event_enters_the_feed_once_as_its_audit_entry() -> None:
    fleet = Fleet()
    now = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
    fleet.apply_event("retrain", {"id": 1, "at": AT, "data": {"event": "held", "model": "fraud-detector",
                                                              "message": "retrain held: cooldown"}}, now)
    fleet.apply_event("audit", {"id": 2, "at": AT, "data": _audit("retrain-held", "retrain held: cooldown")["data"]},
                      now)
    assert [describe_event(e) for e in fleet.feed.values()] == [
        "09:00:05 retrain-held fraud-detector: retrain held: cooldown by opsctld"]


def test_the_retrain_tab_names_every_trigger_and_the_decision_with_numbers() -> None:
    run = {"id": "abc123", "started_at": "2026-03-02T09:10:00Z", "trigger": "performance",
           "status": "canary_rolled_back", "candidate_version": "1.0.2",
           "triggers": [{"kind": "drift", "verdict": "held", "reason": "data drift on fraud-detector 1.0.0: v1, v2",
                         "actor": "opsctld via drift", "at": AT},
                        {"kind": "performance", "verdict": "started", "actor": "opsctld via performance", "at": AT,
                         "reason": "performance drop on fraud-detector 1.0.0: recall 0.612 < floor 0.700"}],
           "decision": {"headline": "canary for 1.0.2: roc_auc +0.0300 over 1.0.0 >= margin 0.01"},
           "message": "canary of 1.0.2 rolled back: accuracy 0.61 below production's"}
    text = retrain_runs_text([run])
    lines = text.splitlines()
    assert "performance+drift" in lines[0] and "canary_rolled_back" in lines[0] and "1.0.2" in lines[0]
    assert "drift held:[/] data drift on fraud-detector 1.0.0: v1, v2" in lines[1]
    assert "performance started:[/] performance drop on fraud-detector 1.0.0: recall 0.612 < floor 0.700" in lines[2]
    assert lines[3].strip() == "canary for 1.0.2: roc_auc +0.0300 over 1.0.0 >= margin 0.01"
    assert lines[4].strip() == "canary of 1.0.2 rolled back: accuracy 0.61 below production's"


def test_canary_evaluations_that_change_nothing_and_deployment_echoes_stay_out_of_the_feed() -> None:
    fleet = Fleet()
    now = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
    doc = {"model": "fraud-detector", "canary_version": "1.0.1", "phase": "progressing", "stage": 1, "stages": 2,
           "weight": 20.0, "failed_checks": 0, "verdict": "inconclusive", "transition": "stage 1 evaluated"}

    def canary(number: int, **changes: object) -> None:
        event = {"id": number, "at": AT, "data": {**doc, **changes}}
        fleet.apply_event("canary", event, now)
        fleet.apply_canary(event["data"])  # as the app does, after the feed

    canary(1)
    for number in range(2, 12):  # an evaluation every 3 s, all inconclusive
        canary(number)
    canary(12, verdict="pass")
    canary(13, verdict="pass", stage=2, weight=50.0)
    canary(14, verdict="fail", failed_checks=1)
    fleet.apply_event("deployment", {"id": 15, "at": AT, "data": {"model": "fraud-detector", "generation": 9}}, now)
    lines = [describe_event(e) for e in fleet.feed.values()]
    assert lines == [
        "09:00:05 canary fraud-detector 1.0.1 progressing stage 1/2 20% gates inconclusive stage 1 evaluated",
        "09:00:05 canary fraud-detector 1.0.1 progressing stage 1/2 20% gates pass stage 1 evaluated",
        "09:00:05 canary fraud-detector 1.0.1 progressing stage 2/2 50% gates pass stage 1 evaluated",
        "09:00:05 canary fraud-detector 1.0.1 progressing stage 1/2 20% gates fail failed checks 1 stage 1 evaluated"]
