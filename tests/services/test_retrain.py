"""The retraining pipeline end to end on a real registry and real training processes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsctl.adapters.actuators import ActuatorSettings, Hooks, Retrying, RoutingTableActuator
from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.canary_store import CanaryRecord
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.core.canary import CanaryPolicy, Phase
from opsctl.core.gates import GateInputs, SlaInput, VersionWindow
from opsctl.core.retrain import (
    DecisionOutcome,
    ModelRetrainSettings,
    RetrainPolicy,
    RunStatus,
    TriggerVerdict,
    binary_metrics,
)
from opsctl.domain import Actor, Outcome
from opsctl.errors import ConflictError, NotFoundError
from opsctl.services.canary import CanaryService
from opsctl.services.registry import RegisterRequest, RegistryService
from opsctl.services.retrain import RetrainService
from tests.fixtures.wait import wait_for
from tests.retrain_entrypoints import CurveModel, holdout, write_model

MODEL = "fraud"
ALICE = Actor("alice", 1000, "test")
DRIFT_JOB = Actor("opsctld", None, "drift")
EP = "tests.retrain_entrypoints"


class World:
    def __init__(self, tmp_path: Path, *, production: str | None = "1.2.3", champion_weight: float = -0.5,
                 clock: ManualClock | None = None) -> None:
        self.tmp = tmp_path
        self.clock = clock
        self.registry = Registry(tmp_path / "registry.db")
        self.artifacts = ArtifactStore(tmp_path / "artifacts")
        self.service = RegistryService(self.registry, self.artifacts, clock=clock)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.canaries: list[tuple[str, str, str]] = []
        if production is not None:
            artifact = write_model(champion_weight, tmp_path / "champion.joblib")
            self.service.register(RegisterRequest(MODEL, production, artifact, metrics={"accuracy": 0.99}),
                                  actor=ALICE)
            self.service.promote(MODEL, production, actor=ALICE)

    def retrain(self, *, entrypoint: str = "train_curve", params: dict[str, str] | None = None,
                start_canary: Callable[..., dict[str, Any]] | str | None = "record", **settings: Any
                ) -> RetrainService:
        entry = ModelRetrainSettings(entrypoint=f"{EP}:{entrypoint}", params=params or {})
        defaults: dict[str, Any] = dict(cooldown_seconds=3600.0, min_improvement=0.02, timeout_seconds=30.0,
                                        memory_limit_mb=0, kill_grace_seconds=0.2)
        policy = RetrainPolicy(**{**defaults, **settings}, models={MODEL: entry})

        def record(model: str, version: str, actor: Actor, reason: str) -> dict[str, Any]:
            self.canaries.append((model, version, reason))
            return {"model": model, "canary_version": version, "state": "progressing"}

        starter = record if start_canary == "record" else start_canary
        return RetrainService(self.registry, self.artifacts, self.service, policy=policy,
                              workdir=self.tmp / "work", clock=self.clock,
                              events=lambda kind, data: self.events.append((kind, data)),
                              start_canary=starter)  # type: ignore[arg-type]

    def audit(self) -> list[tuple[str, str, str | None]]:
        return [(e.action, e.outcome.value, e.to_version) for e in self.registry.audit(MODEL, limit=100)]


def finished(service: RetrainService, run_id: str, timeout: float = 30) -> Any:
    run = service.wait(run_id, timeout)
    assert run.status not in (RunStatus.RUNNING, RunStatus.EVALUATING), f"run still {run.status}"
    return run


# -- single flight ----------------------------------------------------------------------------


def test_ten_triggers_within_a_minute_start_one_run(tmp_path: Path) -> None:
    world = World(tmp_path)
    release = tmp_path / "release"
    retrain = world.retrain(params={"release": str(release), "weight": "5"})
    results = [retrain.trigger(MODEL, "drift", f"alert {i}", DRIFT_JOB) for i in range(10)]
    assert [r.verdict for r in results] == [TriggerVerdict.START] + [TriggerVerdict.JOIN] * 9
    run_id = results[0].run.id  # type: ignore[union-attr]
    assert {r.run.id for r in results} == {run_id}  # type: ignore[union-attr]
    release.touch()
    run = finished(retrain, run_id)
    assert run.joined_triggers == 9
    assert len(retrain.runs(MODEL)) == 1
    # After the run, automatic triggers wait out the cooldown; the audit shows one retrain.
    held = retrain.trigger(MODEL, "performance", "accuracy dropped", DRIFT_JOB)
    assert held.verdict is TriggerVerdict.COOLDOWN and held.retry_after_seconds and held.retry_after_seconds > 3000
    assert len(retrain.runs(MODEL)) == 1
    assert [a for a in world.audit() if a[0] == "retrain"] == [("retrain", "ok", None)]


PERFORMANCE_JOB = Actor("opsctld", None, "performance")


def test_a_held_trigger_is_audited_once_per_cause_and_every_ask_reaches_the_next_run(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    world = World(tmp_path, clock=clock)
    retrain = world.retrain(params={"weight": "5"}, cooldown_seconds=600.0, min_improvement=5.0)  # always kept
    first = finished(retrain, retrain.trigger(MODEL, "manual", "checking", ALICE).run.id)  # type: ignore[union-attr]
    assert first.status is RunStatus.KEPT
    assert [(t.kind, t.actor, t.verdict) for t in first.triggers] == [("manual", "alice via test", "started")]
    clock.advance(388)
    drift = "data drift on fraud 1.2.3: v1 (wasserstein_norm 0.8), v2 (wasserstein_norm 0.7)"
    for _ in range(5):  # the drift job asks at every check while the drift lasts
        held = retrain.trigger(MODEL, "drift", drift, DRIFT_JOB)
        assert held.verdict is TriggerVerdict.COOLDOWN
        clock.advance(10)
    performance = "performance drop on fraud 1.2.3: recall 0.612 < floor 0.700 (180 labelled)"
    retrain.trigger(MODEL, "performance", performance, PERFORMANCE_JOB)
    holds = [e for e in world.registry.audit(MODEL, limit=100) if e.action == "retrain-held"]
    # One entry per trigger kind for this cooldown, saying why and how long, with the trigger's own words.
    assert [(e.via, e.outcome.value) for e in holds] == [("drift", "noop"), ("performance", "noop")]
    assert holds[0].detail == (f"retrain held: cooldown, 212 s left after run {first.id} (kept at"
                               f" {first.finished_at.isoformat().replace('+00:00', 'Z')}); drift asked ({drift})")
    assert holds[0].reason == drift and holds[1].reason == performance
    events = [data for kind, data in world.events if kind == "retrain" and data.get("event") == "held"]
    assert [(e["trigger"], e["message"]) for e in events] == [("drift", holds[0].detail),
                                                              ("performance", holds[1].detail)]
    assert [data["id"] for kind, data in world.events if kind == "audit"] == [holds[0].id, holds[1].id]
    # Someone promotes the kept candidate meanwhile: drift on the new production version is a new ask.
    world.service.promote(MODEL, "1.2.4", actor=ALICE)
    retrain.trigger(MODEL, "drift", drift.replace("1.2.3", "1.2.4"), DRIFT_JOB)
    retrain.trigger(MODEL, "drift", drift.replace("1.2.3", "1.2.4"), DRIFT_JOB)
    holds = [e for e in world.registry.audit(MODEL, limit=100) if e.action == "retrain-held"]
    assert [(e.via, e.from_version) for e in holds] == [("drift", "1.2.3"), ("performance", "1.2.3"),
                                                        ("drift", "1.2.4")]
    # After the cooldown the next ask starts a run that names every trigger that asked for it.
    clock.advance(600)
    second = retrain.trigger(MODEL, "performance", performance, PERFORMANCE_JOB)
    assert second.started and second.run is not None
    joined = retrain.trigger(MODEL, "drift", drift, DRIFT_JOB)
    assert joined.verdict is TriggerVerdict.JOIN
    run = finished(retrain, second.run.id)
    assert [(t.kind, t.actor, t.verdict, t.reason) for t in run.triggers] == [
        ("drift", "opsctld via drift", "held", drift),
        ("performance", "opsctld via performance", "held", performance),
        ("performance", "opsctld via performance", "started", performance),
        ("drift", "opsctld via drift", "joined", drift)]
    assert run.trigger == "performance" and run.actor == "opsctld via performance"
    start = next(e for e in world.registry.audit(MODEL, limit=100)
                 if e.action == "retrain" and second.run.id in e.detail)
    assert start.via == "performance" and "also asked while held: drift since" in start.detail
    # The next cooldown is a new cause: held again, audited again.
    clock.advance(10)
    retrain.trigger(MODEL, "drift", drift, DRIFT_JOB)
    holds = [e for e in world.registry.audit(MODEL, limit=100) if e.action == "retrain-held"]
    assert len(holds) == 4 and f"after run {run.id}" in holds[-1].detail


def test_ten_threads_triggering_at_once_start_one_run(tmp_path: Path) -> None:
    world = World(tmp_path)
    release = tmp_path / "release"
    retrain = world.retrain(params={"release": str(release)})
    barrier = threading.Barrier(10)
    results: list[Any] = []

    def fire(i: int) -> None:
        barrier.wait()
        results.append(retrain.trigger(MODEL, "drift" if i % 2 else "manual", f"storm {i}", DRIFT_JOB))

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(r.verdict.value for r in results) == ["joined"] * 9 + ["started"]
    release.touch()
    started = next(r for r in results if r.started)
    assert finished(retrain, started.run.id).joined_triggers == 9
    assert len(retrain.runs(MODEL)) == 1


def test_single_flight_holds_across_processes_and_restarts(tmp_path: Path) -> None:
    world = World(tmp_path)
    release = tmp_path / "release"
    first = world.retrain(params={"release": str(release)})
    run = first.trigger(MODEL, "drift", "psi", DRIFT_JOB).run
    assert run is not None
    # Another process on the same registry file sees the run in flight and joins it.
    other = World.__new__(World)
    other.__dict__.update(world.__dict__)
    other.registry = Registry(tmp_path / "registry.db")
    second = other.retrain(params={"release": str(release)})
    assert second.trigger(MODEL, "manual", "me too", ALICE).verdict is TriggerVerdict.JOIN
    release.touch()
    assert finished(first, run.id).status is RunStatus.CANARY_STARTED


def test_a_run_cut_off_by_a_restart_is_recorded_as_abandoned(tmp_path: Path) -> None:
    world = World(tmp_path)
    release = tmp_path / "release"
    crashed = world.retrain(params={"release": str(release)})
    run = crashed.trigger(MODEL, "schedule", "02:00", DRIFT_JOB).run
    assert run is not None
    # A new daemon starts on the same registry while the row still says "running".
    restarted = world.retrain(params={"release": str(release)})
    abandoned = restarted.recover()
    assert [r.id for r in abandoned] == [run.id]
    assert restarted.get(run.id).status is RunStatus.ABANDONED
    assert ("alert", run.id) in {(kind, data.get("run_id")) for kind, data in world.events}
    # The old process's thread ends; its run stays abandoned only in the restarted view here, so
    # release it and let it finish before the tmp dir goes.
    release.touch()
    crashed.join_threads(30)


# -- failures ---------------------------------------------------------------------------------


def test_a_hanging_training_is_killed_at_its_timeout_and_recorded(tmp_path: Path) -> None:
    world = World(tmp_path)
    retrain = world.retrain(entrypoint="hang", timeout_seconds=1.0)
    started = time.monotonic()
    run = finished(retrain, retrain.trigger(MODEL, "manual", "try", ALICE).run.id)  # type: ignore[union-attr]
    assert time.monotonic() - started < 10
    assert run.status is RunStatus.TIMED_OUT
    assert "did not finish within 1 s" in (run.error or "")
    assert "training forever" in run.logs
    assert run.candidate_version is None
    assert [v.version for v in world.registry.list_versions(MODEL)] == ["1.2.3"]  # nothing half-registered
    assert world.audit()[-1] == ("retrain", "failed", None)
    assert any(kind == "alert" and data["status"] == "timed_out" for kind, data in world.events)


def test_a_training_that_raises_is_recorded_with_its_traceback(tmp_path: Path) -> None:
    world = World(tmp_path)
    retrain = world.retrain(entrypoint="raise_error")
    run = finished(retrain, retrain.trigger(MODEL, "manual", "try", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.FAILED
    assert "Traceback" in (run.error or "") and "ValueError: bad training data: column 'x' missing" in run.error
    assert "loading training data" in run.logs
    assert [v.version for v in world.registry.list_versions(MODEL)] == ["1.2.3"]
    failed = [e for e in world.registry.audit(MODEL) if e.outcome is Outcome.FAILED]
    assert len(failed) == 1 and "ValueError: bad training data" in failed[0].detail
    # Failed runs count for the cooldown: a drift check five minutes later does not retry.
    assert retrain.trigger(MODEL, "drift", "still drifting", DRIFT_JOB).verdict is TriggerVerdict.COOLDOWN


def test_a_chatty_training_is_rate_limited_on_the_event_bus_not_in_the_record(tmp_path: Path) -> None:
    world = World(tmp_path)
    retrain = world.retrain(entrypoint="chatty")
    run = finished(retrain, retrain.trigger(MODEL, "manual", "talk", ALICE).run.id)  # type: ignore[union-attr]
    assert "line 0" in run.logs and "line 499" in run.logs
    streamed = [d for k, d in world.events if k == "retrain" and d["event"] == "log"]
    assert 50 <= len(streamed) < 500


def test_a_version_that_cannot_be_bumped_fails_before_training(tmp_path: Path) -> None:
    world = World(tmp_path, production="2024-06-01")
    retrain = world.retrain()
    result = retrain.trigger(MODEL, "manual", "go", ALICE)
    assert result.run is not None and result.run.status is RunStatus.FAILED
    assert "'2024-06-01' is not MAJOR.MINOR.PATCH" in (result.run.error or "")
    assert result.run.training is None
    assert world.audit()[-1] == ("retrain", "failed", None)


def test_unconfigured_model_is_not_found(tmp_path: Path) -> None:
    retrain = World(tmp_path).retrain()
    with pytest.raises(NotFoundError, match=r"retrain.models.churn"):
        retrain.trigger("churn", "manual", "", ALICE)


# -- registration, evaluation, handover -------------------------------------------------------


def test_better_candidate_is_registered_with_lineage_evaluated_on_the_same_holdout_and_canaried(
        tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=-0.5)  # a champion that got the sign wrong
    retrain = world.retrain(params={"weight": "5"}, metric="roc_auc", min_improvement=0.05)
    run = finished(retrain, retrain.trigger(MODEL, "drift", "PSI 0.4 on x", DRIFT_JOB).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.CANARY_STARTED
    assert (run.parent_version, run.candidate_version) == ("1.2.3", "1.2.4")
    candidate = world.registry.get_version(MODEL, "1.2.4")
    assert candidate is not None
    assert candidate.lineage.parent_version == "1.2.3" and candidate.lineage.trigger == "drift"
    assert candidate.lineage.training_data_hash.startswith("sha256:")
    assert "tests.retrain_entrypoints:train_curve" in (candidate.lineage.code_version or "")
    assert candidate.reference_name is not None
    # Both scored on the same holdout with the same metrics: recompute them independently.
    x, labels = holdout()
    import pandas as pd

    frame = pd.DataFrame({"x": x})
    expected_champion = binary_metrics(labels, CurveModel(-0.5).predict_proba(frame)[:, 1])
    expected_challenger = binary_metrics(labels, CurveModel(5.0).predict_proba(frame)[:, 1])
    decision = run.decision
    assert decision is not None and decision.outcome is DecisionOutcome.CANARY
    assert decision.holdout_rows == 400
    assert decision.champion_metrics == pytest.approx(expected_champion)
    assert decision.challenger_metrics == pytest.approx(expected_challenger)
    assert decision.champion_score == pytest.approx(expected_champion["roc_auc"])
    assert decision.challenger_score == pytest.approx(expected_challenger["roc_auc"])
    assert decision.improvement == pytest.approx(expected_challenger["roc_auc"] - expected_champion["roc_auc"])
    # Handover is a canary, never a promotion.
    assert world.canaries == [(MODEL, "1.2.4", world.canaries[0][2])] and "retrain run" in world.canaries[0][2]
    deployment = world.registry.get_deployment(MODEL)
    assert deployment is not None and deployment.production_version == "1.2.3"
    assert world.audit()[-4:] == [("retrain", "ok", None), ("retrain-trained", "ok", None),
                                  ("register", "ok", "1.2.4"), ("retrain-decision", "ok", "1.2.4")]
    rows = world.registry.audit(MODEL, limit=100)
    assert rows[-4].detail == f"run {run.id} (drift) started: training"
    assert rows[-3].detail.startswith(f"run {run.id}: training succeeded in ")
    # The decision reads as one, with its numbers.
    assert rows[-1].detail == (
        f"canary for 1.2.4: roc_auc {decision.improvement:+.4f} over 1.2.3 >= margin 0.05"
        f" ({decision.champion_score:.4f} -> {decision.challenger_score:.4f} on the same 400 holdout rows)")


def test_roc_auc_tie_keeps_the_candidate_registered_and_starts_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=0.2)
    retrain = world.retrain(params={"weight": "5"}, metric="roc_auc", min_improvement=0.0)
    # Curves with positive weights rank rows alike: the AUCs tie exactly, so the challenger is not better.
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.KEPT
    assert run.decision is not None and run.decision.outcome is DecisionOutcome.KEEP
    assert run.decision.improvement == pytest.approx(0.0)
    assert world.canaries == []
    assert world.registry.get_version(MODEL, "1.2.4") is not None
    assert run.message.startswith("kept 1.2.3: challenger 1.2.4 roc_auc +0.0000 < margin 0 ("), run.message
    decision = world.registry.audit(MODEL, limit=100)[-1]
    assert (decision.action, decision.detail) == ("retrain-decision", run.message)


def test_accuracy_margin_decides(tmp_path: Path) -> None:
    x, labels = holdout()
    import pandas as pd

    frame = pd.DataFrame({"x": x})
    gap = (binary_metrics(labels, CurveModel(5.0).predict_proba(frame)[:, 1])["accuracy"]
           - binary_metrics(labels, CurveModel(-0.5).predict_proba(frame)[:, 1])["accuracy"])
    assert gap > 0.5
    world = World(tmp_path, champion_weight=-0.5)  # a champion that got the sign wrong
    retrain = world.retrain(params={"weight": "5"}, metric="accuracy", min_improvement=gap + 0.01)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.KEPT and run.decision is not None
    assert run.decision.improvement == pytest.approx(gap)
    retrain = world.retrain(params={"weight": "5"}, metric="accuracy", min_improvement=gap - 0.01)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.CANARY_STARTED and run.candidate_version == "1.2.5"  # 1.2.4 kept, skipped


def test_approval_before_canary(tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=-0.5)
    retrain = world.retrain(approval_before_canary=True)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.AWAITING_APPROVAL and world.canaries == []
    approved = retrain.approve(run.id, actor=ALICE, reason="looked at the numbers")
    assert approved.status is RunStatus.CANARY_STARTED and [c[1] for c in world.canaries] == ["1.2.4"]
    assert ("retrain-approve", "ok", "1.2.4") in world.audit()
    # The candidate's registration and the decision are attributed to whoever triggered the run.
    attributed = {e.action: (e.actor, e.uid) for e in world.registry.audit(MODEL, limit=100)}
    assert attributed["register"] == attributed["retrain-decision"] == ("alice", 1000)
    with pytest.raises(ConflictError, match="not awaiting approval"):
        retrain.approve(run.id, actor=ALICE)


def test_without_a_canary_service_the_decision_says_a_canary_would_start(tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=-0.5)
    retrain = world.retrain(start_canary=None)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.CANARY_PENDING and "canary would start for 1.2.4" in run.message


def test_a_canary_that_cannot_start_is_recorded_and_alerted(tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=-0.5)

    def refuse(model: str, version: str, actor: Actor, reason: str) -> dict[str, Any]:
        raise ConflictError(f"{model} already has an active canary")

    retrain = world.retrain(start_canary=refuse)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.CANARY_PENDING and "already has an active canary" in (run.error or "")
    assert any(kind == "alert" and data["run_id"] == run.id for kind, data in world.events)


def test_no_holdout_means_no_decision_and_no_canary(tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=-0.5)
    retrain = world.retrain(params={"no_holdout": "yes"})
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.FAILED and "no holdout" in (run.error or "")
    assert run.candidate_version == "1.2.4" and world.canaries == []
    assert "1.2.4 stays registered" in run.message


def test_nothing_in_production_keeps_the_first_version_registered(tmp_path: Path) -> None:
    world = World(tmp_path, production=None)
    retrain = world.retrain()
    run = finished(retrain, retrain.trigger(MODEL, "manual", "first", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.KEPT and run.candidate_version == "1.0.0"
    assert run.decision is not None and run.decision.outcome is DecisionOutcome.NO_CHAMPION


# -- schedule ---------------------------------------------------------------------------------


def test_cron_schedule_triggers_a_scheduled_run(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 1, 59, 45, tzinfo=UTC))
    world = World(tmp_path, champion_weight=-0.5, clock=clock)
    entry = ModelRetrainSettings(entrypoint=f"{EP}:train_curve", schedule="0 2 * * *")
    retrain = RetrainService(world.registry, world.artifacts, world.service,
                             policy=RetrainPolicy(models={MODEL: entry}, timeout_seconds=30, memory_limit_mb=0),
                             workdir=tmp_path / "work", clock=clock, start_canary=None)
    assert retrain.check_schedules() == []  # first look: starts counting
    clock.advance(10)
    assert retrain.check_schedules() == []  # 01:59:55
    clock.advance(10)
    [result] = retrain.check_schedules()  # 02:00:05
    assert result.started and result.run is not None and result.run.trigger == "schedule"
    assert retrain.status().to_json()["models"][MODEL]["next_scheduled_at"] == "2026-03-03T02:00:00Z"
    clock.advance(30)
    assert retrain.check_schedules() == []  # no second run for the same 02:00
    assert finished(retrain, result.run.id).status is RunStatus.CANARY_PENDING


# -- with the real canary service ---------------------------------------------------------------


class HealthyGates:
    def inputs(self, record: CanaryRecord, now: datetime) -> GateInputs:
        return GateInputs(VersionWindow(requests=20000, errors=200, p95_seconds=0.1, p99_seconds=0.2, slow=100),
                          VersionWindow(requests=80000, errors=800, p95_seconds=0.1, p99_seconds=0.2, slow=400),
                          sla=SlaInput("healthy"), latency_bound_seconds=0.5)


def test_handover_starts_a_real_canary_that_completes(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    world = World(tmp_path, champion_weight=-0.5, clock=clock)
    policy = CanaryPolicy(stages=[10.0, 50.0, 100.0], min_stage_seconds=60, analysis_interval_seconds=10,
                          accuracy_gate=False, progress_deadline_seconds=600)
    canary = CanaryService(world.registry, policy=policy,
                           actuator=Retrying(RoutingTableActuator(), attempts=2, sleep=lambda s: None),
                           hooks=Hooks(ActuatorSettings()), gate_source=HealthyGates(), clock=clock)

    def start(model: str, version: str, actor: Actor, reason: str) -> dict[str, Any]:
        return canary.status_document(canary.start(model, version, actor=actor, reason=reason))

    retrain = world.retrain(start_canary=start)
    canary.on_end = lambda record: retrain.canary_ended(record.model, record.state.canary_version,
                                                        record.state.phase.value, record.state.reason)
    run = finished(retrain, retrain.trigger(MODEL, "drift", "PSI 0.4 on x", DRIFT_JOB).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.CANARY_STARTED and run.canary is not None
    deployment = world.registry.get_deployment(MODEL)
    assert deployment is not None and deployment.canary_version == "1.2.4" and deployment.production_version == "1.2.3"
    for _ in range(200):
        clock.advance(5)
        canary.tick()
        if canary.status(MODEL)[0]["phase"] == Phase.SUCCEEDED.value:
            break
    deployment = world.registry.get_deployment(MODEL)
    assert deployment is not None and deployment.production_version == "1.2.4"
    # The audit log tells the story in order: trigger, training, register, decision, canary start, ..., promotion.
    actions = [e.action for e in world.registry.audit(MODEL, limit=200)]
    story = actions[actions.index("retrain"):]
    assert story[:5] == ["retrain", "retrain-trained", "register", "retrain-decision", "canary_start"]
    assert story[-1] == "canary_promote" and "promote" not in story[:-1]
    # The run follows its canary to the end instead of saying canary_started for ever.
    ended = retrain.get(run.id)
    assert ended.status is RunStatus.CANARY_PROMOTED and ended.message.startswith("canary of 1.2.4 succeeded")
    assert ("retrain", {"event": "status", "run_id": run.id, "model": MODEL, "status": "canary_promoted",
                        "candidate_version": "1.2.4", "message": ended.message, "error": None}) in world.events


def test_a_run_whose_canary_was_aborted_says_so_once(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    world = World(tmp_path, champion_weight=-0.5, clock=clock)
    policy = CanaryPolicy(stages=[10.0, 100.0], min_stage_seconds=60, analysis_interval_seconds=10,
                          accuracy_gate=False, progress_deadline_seconds=600)
    canary = CanaryService(world.registry, policy=policy,
                           actuator=Retrying(RoutingTableActuator(), attempts=2, sleep=lambda s: None),
                           hooks=Hooks(ActuatorSettings()), gate_source=HealthyGates(), clock=clock)

    def start(model: str, version: str, actor: Actor, reason: str) -> dict[str, Any]:
        return canary.status_document(canary.start(model, version, actor=actor, reason=reason))

    retrain = world.retrain(start_canary=start)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.CANARY_STARTED
    # No listener on the canary here: the retrain-schedule job's catch-up call is what updates the run.
    canary.command(MODEL, "abort", actor=ALICE, reason="not today")
    record = canary.store.list_latest()[0]
    assert record.state.phase is Phase.ABORTED
    assert retrain.canary_ended(MODEL, "1.2.4", "aborted", record.state.reason) is not None
    assert retrain.canary_ended(MODEL, "1.2.4", "aborted", record.state.reason) is None  # already followed
    ended = retrain.get(run.id)
    assert ended.status is RunStatus.CANARY_ABORTED and ended.canary is not None
    assert ended.canary["phase"] == "aborted" and "not today" in ended.message


def test_shutdown_kills_the_training_and_records_the_run_abandoned(tmp_path: Path) -> None:
    from opsctl.adapters.training import training_pids

    world = World(tmp_path)
    retrain = world.retrain(entrypoint="hang", timeout_seconds=60.0)
    run = retrain.trigger(MODEL, "manual", "", ALICE).run
    assert run is not None
    output = tmp_path / "work" / MODEL / run.id / "output"
    pids = wait_for(lambda: "training forever" in retrain.get(run.id).logs and training_pids(output), 20,
                    what="the hanging training process")
    assert retrain.shutdown(timeout=10) == [run.id]
    assert training_pids(output) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    stopped = retrain.get(run.id)
    assert stopped.status is RunStatus.ABANDONED and "the daemon stopped" in (stopped.error or "")


def test_followers_page_through_the_logs_by_offset(tmp_path: Path) -> None:
    world = World(tmp_path)
    retrain = world.retrain(entrypoint="chatty")
    run = retrain.trigger(MODEL, "manual", "", ALICE).run
    assert run is not None
    seen: list[str] = []
    while True:
        lines, total = retrain.log_lines(run.id, len(seen))
        seen.extend(lines)
        assert len(seen) == total
        if retrain.get(run.id).status not in (RunStatus.RUNNING, RunStatus.EVALUATING):
            lines, total = retrain.log_lines(run.id, len(seen))
            seen.extend(lines)
            break
        time.sleep(0.01)
    assert [line for line in seen if line.startswith("line ")] == [f"line {i}" for i in range(500)]


def test_recovery_kills_a_training_that_survived_a_killed_daemon(tmp_path: Path) -> None:
    from opsctl.adapters.training import training_pids

    world = World(tmp_path)
    killed = world.retrain(entrypoint="hang", timeout_seconds=60.0)  # stands in for a SIGKILLed daemon
    run = killed.trigger(MODEL, "drift", "psi", DRIFT_JOB).run
    assert run is not None
    output = tmp_path / "work" / MODEL / run.id / "output"
    wait_for(lambda: training_pids(output), 20, what="the training process")
    restarted = world.retrain(entrypoint="hang")
    assert [r.id for r in restarted.recover()] == [run.id]
    wait_for(lambda: training_pids(output) == [], 20, what="the training process to be gone")
    assert killed.join_threads(10)
    abandoned = [e for e in world.registry.audit(MODEL) if e.outcome is Outcome.FAILED and "abandoned" in e.detail]
    assert len(abandoned) == 1


def test_automatic_triggers_are_held_while_the_candidates_canary_decides(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    world = World(tmp_path, champion_weight=-0.5, clock=clock)
    policy = CanaryPolicy(stages=[10.0, 100.0], min_stage_seconds=60, analysis_interval_seconds=10,
                          accuracy_gate=False, progress_deadline_seconds=600)
    canary = CanaryService(world.registry, policy=policy,
                           actuator=Retrying(RoutingTableActuator(), attempts=2, sleep=lambda s: None),
                           hooks=Hooks(ActuatorSettings()), gate_source=HealthyGates(), clock=clock)

    def start(model: str, version: str, actor: Actor, reason: str) -> dict[str, Any]:
        return canary.status_document(canary.start(model, version, actor=actor, reason=reason))

    retrain = world.retrain(start_canary=start)
    first = finished(retrain, retrain.trigger(MODEL, "drift", "PSI 0.4 on x", DRIFT_JOB).run.id)  # type: ignore[union-attr]
    assert first.status is RunStatus.CANARY_STARTED
    retrain.trigger(MODEL, "drift", "PSI 0.4 on x", DRIFT_JOB)  # inside the cooldown, with the canary deciding
    clock.advance(100_000)  # far past any cooldown: only the canary in flight holds the drift job now
    held = retrain.trigger(MODEL, "drift", "PSI 0.4 on x", DRIFT_JOB)
    assert not held.started and held.verdict.value == "cooldown"
    assert held.message == f"held: the canary of {MODEL} 1.2.4 is still deciding"
    assert held.run is not None and held.run.id == first.id
    # Each cause is one audit entry: both holds at first, then the canary alone.
    holds = [e.detail for e in world.registry.audit(MODEL, limit=100) if e.action == "retrain-held"]
    assert len(holds) == 2, holds
    assert holds[0].startswith(f"retrain held: cooldown, 3600 s left after run {first.id} (canary_started at ")
    assert f"; the canary of {MODEL} 1.2.4 is still deciding; drift asked (PSI 0.4 on x)" in holds[0]
    assert holds[1] == f"retrain held: the canary of {MODEL} 1.2.4 is still deciding; drift asked (PSI 0.4 on x)"
    # Once the canary has decided, the same trigger starts a run again.
    for _ in range(200):
        clock.advance(5)
        canary.tick()
        if canary.status(MODEL)[0]["phase"] == Phase.SUCCEEDED.value:
            break
    again = retrain.trigger(MODEL, "drift", "PSI 0.4 on x", DRIFT_JOB)
    assert again.started, again.message
    finished(retrain, again.run.id)  # type: ignore[union-attr]


def test_reject_a_run_awaiting_approval(tmp_path: Path) -> None:
    world = World(tmp_path, champion_weight=-0.5)
    retrain = world.retrain(approval_before_canary=True)
    run = finished(retrain, retrain.trigger(MODEL, "manual", "", ALICE).run.id)  # type: ignore[union-attr]
    assert run.status is RunStatus.AWAITING_APPROVAL
    rejected = retrain.reject(run.id, actor=ALICE, reason="trained on the incident week")
    assert rejected.status is RunStatus.REJECTED and rejected.finished_at is not None
    assert "trained on the incident week" in (rejected.message or "")
    assert world.canaries == []  # no canary, production unchanged
    assert ("retrain-reject", "ok", "1.2.4") in world.audit()
    assert retrain.get(run.id).status is RunStatus.REJECTED
    with pytest.raises(ConflictError, match="not awaiting approval"):
        retrain.reject(run.id, actor=ALICE)
    with pytest.raises(ConflictError, match="not awaiting approval"):
        retrain.approve(run.id, actor=ALICE)


def test_a_skipped_trigger_is_audited_once_per_reason(tmp_path: Path) -> None:
    world = World(tmp_path)
    retrain = world.retrain()
    why = f"{MODEL} has no [retrain.models.{MODEL}] entry"
    drift = "data drift on fraud 1.2.3: v1, v2"
    assert retrain.skip(MODEL, "drift", drift, DRIFT_JOB, why)
    assert not retrain.skip(MODEL, "drift", drift, DRIFT_JOB, why)  # the next check of the same drift
    assert retrain.skip(MODEL, "drift", "data drift on fraud 1.2.3: v3", DRIFT_JOB, why)  # another drift
    rows = [e for e in world.registry.audit(MODEL, limit=100) if e.action == "retrain-skipped"]
    assert [(e.via, e.outcome.value, e.reason) for e in rows] == [("drift", "noop", drift),
                                                                  ("drift", "noop", "data drift on fraud 1.2.3: v3")]
    assert rows[0].detail == f"retrain skipped: {why}; drift asked ({drift})"
    assert [d["action"] for k, d in world.events if k == "audit"] == ["retrain-skipped", "retrain-skipped"]
    assert retrain.runs(MODEL) == []
