"""The retraining pipeline: trigger -> one training run -> registered candidate -> champion vs
challenger on the same holdout -> a canary (never a promotion).

::

    retrain = RetrainService(registry, artifacts, registry_service, policy=settings.section("retrain"),
                             workdir=state_dir / "retrain", events=bus.publish, start_canary=...)
    result = retrain.trigger("fraud-detector", "drift", "PSI 0.31 on v1", actor)   # returns at once
    run = retrain.wait(result.run.id, timeout=600)

Single flight: the check for a run in flight (and for the cooldown) and the insert of a new run
share one ``BEGIN IMMEDIATE`` transaction on ``retrain_runs``, so ten triggers from ten threads,
or from two processes, start one run; the rest join it (``joined_triggers`` counts them). A run
found in flight at start-up was cut off by a restart and is recorded as ``abandoned``.

The training itself runs in its own process (``opsctl.adapters.training``) supervised from a
dedicated thread per run, never the daemon's event loop or job pool, so a run that hangs until
its timeout holds up nothing else. Logs and progress go out as ``retrain`` events (SSE).

Every step is audited (``retrain``, ``register``, ``retrain-decision``, ``retrain-approve``), a
failed or timed-out run is recorded with its log tail and error (the traceback for a raised
exception) and raises an ``alert`` event, and a candidate is either fully registered (one
transaction) or absent.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import shutil
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from opsctl import __version__
from opsctl.adapters import retrain_store as store
from opsctl.adapters.artifact_storage import ArtifactStorage
from opsctl.adapters.registry import Registry, RegistryTx
from opsctl.adapters.training import (
    TrainingOutcome,
    TrainingProcesses,
    TrainingProgress,
    TrainingSpec,
    TrainingStatus,
    run_training,
)
from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.retrain import (
    CANARY_END_STATUSES,
    TRIGGERS,
    DecisionOutcome,
    ModelRetrainPolicy,
    RetrainDecision,
    RetrainPolicy,
    RetrainRun,
    RunStatus,
    TriggerAsk,
    TriggerVerdict,
    VersionBumpError,
    binary_metrics,
    bump_version,
    decide_champion,
    decide_trigger,
    due_fire_time,
    next_fire_time,
)
from opsctl.domain import Actor, AuditEvent, Lineage, ModelVersion, Outcome
from opsctl.errors import ConflictError, NotFoundError, OpsctlError, UsageError
from opsctl.services.registry import RegisterRequest, RegistryService, validate_model_name

log = logging.getLogger("opsctl.retrain")

EventSink = Callable[[str, dict[str, Any]], None]
# (model, candidate version, actor, reason) -> the started canary as JSON; raises OpsctlError.
CanaryStarter = Callable[[str, str, Actor, str], dict[str, Any]]

_LIVE_LOG_LINES = 2000
_STREAMED_LINES_PER_SECOND = 50
_KEEP_RUN_DIRS = 10
SYSTEM_ACTOR = Actor(user="opsctld", uid=None, via="retrain")


@dataclass(frozen=True)
class TriggerResult:
    """What a trigger did: started a run, joined the one in flight, or was held by the cooldown."""

    verdict: TriggerVerdict
    message: str
    run: RetrainRun | None
    retry_after_seconds: float | None = None

    @property
    def started(self) -> bool:
        return self.verdict is TriggerVerdict.START

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "message": self.message,
            "run": None if self.run is None else self.run.to_json(with_logs=False),
            "retry_after_seconds": self.retry_after_seconds,
        }


@dataclass(frozen=True)
class ModelRetrainStatus:
    """One configured model: its cron schedule, the next fire time, its last run."""

    schedule: str | None
    next_scheduled_at: datetime | None
    last_run: RetrainRun | None

    def to_json(self) -> dict[str, Any]:
        last = self.last_run
        return {
            "schedule": self.schedule,
            "next_scheduled_at": utc_iso(self.next_scheduled_at) if self.next_scheduled_at else None,
            "last_run": None if last is None else {
                "id": last.id, "status": last.status.value, "trigger": last.trigger,
                "started_at": utc_iso(last.started_at), "candidate_version": last.candidate_version,
                "message": last.message},
        }


@dataclass(frozen=True)
class RunningRun:
    """A run in flight in this process and its latest progress report."""

    run: RetrainRun
    progress: TrainingProgress | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.run.id, "model": self.run.model, "status": self.run.status.value,
                "trigger": self.run.trigger, "progress": None if self.progress is None else self.progress.to_json()}


@dataclass(frozen=True)
class RetrainStatus:
    """The ``retrain`` section of ``/v1/status``."""

    models: Mapping[str, ModelRetrainStatus]
    running: tuple[RunningRun, ...]

    def to_json(self) -> dict[str, Any]:
        return {"models": {model: status.to_json() for model, status in self.models.items()},
                "running": [r.to_json() for r in self.running]}


class _LiveRun:
    """A run in flight in this process: its log lines so far, progress, and a done flag."""

    def __init__(self, run: RetrainRun, clock: Clock) -> None:
        self.run = run
        self.lines: collections.deque[str] = collections.deque(maxlen=_LIVE_LOG_LINES)
        self.progress: TrainingProgress | None = None
        self.done = threading.Event()
        self.clock = clock
        self.total = 0  # lines seen, including those the bounded deque has let go
        self.window = -1
        self.streamed = 0
        self.dropped = 0


class RetrainService:
    """Triggers, runs, evaluates and hands over retraining runs (see the module docstring)."""

    def __init__(
        self,
        registry: Registry,
        artifacts: ArtifactStorage,
        service: RegistryService,
        *,
        policy: RetrainPolicy | Callable[[], RetrainPolicy],
        workdir: Path,
        clock: Clock | None = None,
        events: EventSink | None = None,
        start_canary: CanaryStarter | None = None,
        processes: TrainingProcesses | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
    ) -> None:
        self.registry = registry
        self.artifacts = artifacts
        self.service = service
        self._policy = policy
        self.workdir = Path(workdir)
        self.clock = clock or SystemClock()
        self._events = events
        self.processes = processes or TrainingProcesses()
        self.start_canary = start_canary
        self._new_id = new_id
        self._lock = threading.Lock()
        self._live: dict[str, _LiveRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._closing = False

    @property
    def policy(self) -> RetrainPolicy:
        return self._policy() if callable(self._policy) else self._policy

    def model_policy(self, model: str) -> ModelRetrainPolicy:
        found = self.policy.for_model(model)
        if found is None:
            raise NotFoundError("retraining entry", model,
                                f"add [retrain.models.{model}] with an entrypoint or command to the config")
        return found

    # -- events ------------------------------------------------------------------------------

    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self._events is None:
            return
        try:
            self._events(kind, payload)
        except Exception:  # a broken subscriber must never break a run
            log.exception("publishing a retrain event failed")

    def _publish_status(self, run: RetrainRun) -> None:
        self._publish("retrain", {"event": "status", "run_id": run.id, "model": run.model,
                                  "status": run.status.value, "candidate_version": run.candidate_version,
                                  "message": run.message, "error": run.error})

    # -- trigger -----------------------------------------------------------------------------

    def trigger(self, model: str, trigger: str, reason: str, actor: Actor) -> TriggerResult:
        """Start a retraining run for ``model``, or join the one in flight; returns at once.

        ``trigger`` is ``drift``, ``performance``, ``schedule`` or ``manual``. Automatic triggers
        inside the cooldown after the last run get ``verdict == "cooldown"``; manual ones are held
        only by single flight. Automatic triggers are also held (``cooldown`` verdict, saying why)
        while a canary of the model is still deciding: a second candidate trained meanwhile could not
        start its canary, and the drift that asked is what the running candidate was trained on.

        Every ask is kept: the run records the trigger that started it, those that joined it, and
        those held since the last run (``RetrainRun.triggers``). A hold is an audit entry
        (``retrain-held``) and a ``retrain`` event once per cause and trigger kind, not at every check.
        Raises ``NotFoundError`` for a model without a ``[retrain.models]`` entry and ``UsageError``
        for an unknown trigger.
        """
        validate_model_name(model)
        if trigger not in TRIGGERS:
            raise UsageError(f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
        policy = self.model_policy(model)
        now = self.clock.now()
        ask = TriggerAsk(kind=trigger, reason=reason, actor=actor.label(), at=now, verdict="started")
        held_audit: dict[str, Any] | None = None
        with self.registry.write() as tx:
            latest = store.latest_run(tx, model)
            decision = decide_trigger(trigger=trigger, latest=None if latest is None else latest.ref(),
                                      cooldown_seconds=policy.cooldown_seconds, now=now)
            in_flight = None
            if decision.verdict is not TriggerVerdict.JOIN and trigger != "manual":
                in_flight = _canary_in_flight(tx, model)
            if decision.verdict is TriggerVerdict.JOIN:
                assert latest is not None
                joined = replace(latest, joined_triggers=latest.joined_triggers + 1,
                                 triggers=(*latest.triggers, replace(ask, verdict="joined")))
                store.update_run(tx, joined)
                if trigger == "manual":
                    tx.append_audit(actor=actor, action="retrain", model=model, from_version=latest.parent_version,
                                    to_version=None, reason=reason, outcome=Outcome.NOOP,
                                    detail=f"joined run {latest.id}: {decision.message}", now=now)
                result = TriggerResult(decision.verdict, decision.message, joined)
            elif decision.verdict is TriggerVerdict.COOLDOWN or in_flight is not None:
                if in_flight is not None and decision.verdict is TriggerVerdict.START:
                    why, cause = f"the canary of {model} {in_flight} is still deciding", f"canary {in_flight}"
                    result = TriggerResult(TriggerVerdict.COOLDOWN, f"held: {why}", latest, policy.cooldown_seconds)
                else:
                    assert latest is not None
                    wait = decision.retry_after_seconds or 0.0
                    why = (f"cooldown, {wait:.0f} s left after run {latest.id}"
                           f" ({latest.status.value} at {utc_iso(latest.finished_at or latest.started_at)})")
                    if in_flight is not None:  # both hold it; the canary may well outlast the cooldown
                        why += f"; the canary of {model} {in_flight} is still deciding"
                    cause = f"cooldown after {latest.id}"
                    result = TriggerResult(decision.verdict, decision.message, latest, decision.retry_after_seconds)
                held_audit = self._hold(tx, model, ask, actor, why, cause)
            else:
                run = self._new_run(tx, model, ask, actor, policy, now)
                result = TriggerResult(decision.verdict, run.message or decision.message, run)
        run = result.run
        if result.started and run is not None:
            log.info("retrain run started", extra={"run": run.id, "model": model, "trigger": trigger})
            self._publish_status(run)
            if run.status is RunStatus.FAILED:
                self._alert(run)
            else:
                self._start_thread(run, policy)
        elif result.verdict is TriggerVerdict.COOLDOWN:
            log.info("retrain trigger held", extra={"model": model, "trigger": trigger, "detail": result.message})
            if held_audit is not None:
                self._publish("retrain", {"event": "held", "model": model, "trigger": trigger, "reason": reason,
                                          "message": held_audit["detail"],
                                          "retry_after_seconds": result.retry_after_seconds})
                self._publish("audit", held_audit)
        return result

    def skip(self, model: str, trigger: str, reason: str, actor: Actor, why: str) -> bool:
        """An automatic trigger that cannot start a run (no ``[retrain.models.MODEL]`` entry, say): audited
        (``retrain-skipped``) and announced once per reason, so the story says why nothing followed the drift.

        Returns whether this call wrote the entry.
        """
        now = self.clock.now()
        key, cause = f"retrain.skip.{model}.{trigger}", f"{why} | {reason}"
        detail = f"retrain skipped: {why}; {trigger} asked ({reason or 'no reason given'})"
        with self.registry.write() as tx:
            if tx.get_kv(key) == cause:
                return False
            tx.put_kv(key, cause)
            deployment = tx.get_deployment(model)
            production = deployment.production_version if deployment else None
            audit_id = tx.append_audit(actor=actor, action="retrain-skipped", model=model, from_version=production,
                                       to_version=None, reason=reason, outcome=Outcome.NOOP, detail=detail, now=now)
        self._publish("retrain", {"event": "skipped", "model": model, "trigger": trigger, "reason": reason,
                                  "message": detail})
        self._publish("audit", AuditEvent(audit_id, now, actor.user, actor.uid, actor.via, "retrain-skipped", model,
                                          production, None, reason, Outcome.NOOP, detail).to_json())
        return True

    def _hold(self, tx: RegistryTx, model: str, ask: TriggerAsk, actor: Actor, why: str,
              cause: str) -> dict[str, Any] | None:
        """Keep a held ask for the next run; audit the hold once per cause and trigger kind.

        Returns the audit row as an event payload when one was written. Drift asks at every check
        while it lasts: one entry says the retrain is held and why, the next cause (a new run's
        cooldown, a canary, another production version) gets its own.
        """
        pending = _pending(tx, model)
        if not any(p.kind == ask.kind for p in pending):  # the first ask of each kind says since when
            tx.put_kv(_pending_key(model), _dump_asks((*pending, replace(ask, verdict="held"))))
        deployment = tx.get_deployment(model)
        production = deployment.production_version if deployment else None
        # A new production version drifting is a new ask, even under the same hold.
        key, cause = f"retrain.hold.{model}.{ask.kind}", f"{cause} on {production}"
        if tx.get_kv(key) == cause:
            return None
        tx.put_kv(key, cause)
        detail = f"retrain held: {why}; {ask.kind} asked ({ask.reason or 'no reason given'})"
        audit_id = tx.append_audit(actor=actor, action="retrain-held", model=model, from_version=production,
                                   to_version=None, reason=ask.reason, outcome=Outcome.NOOP, detail=detail,
                                   now=ask.at)
        return AuditEvent(audit_id, ask.at, actor.user, actor.uid, actor.via, "retrain-held", model, production, None,
                          ask.reason, Outcome.NOOP, detail).to_json()

    def _new_run(self, tx: RegistryTx, model: str, ask: TriggerAsk, actor: Actor,
                 policy: ModelRetrainPolicy, now: Any) -> RetrainRun:
        deployment = tx.get_deployment(model)
        parent = deployment.production_version if deployment else None
        trigger, reason = ask.kind, ask.reason
        held = _pending(tx, model)
        tx.put_kv(_pending_key(model), _dump_asks(()))
        run = RetrainRun(id=self._new_id(), model=model, trigger=trigger, reason=reason, actor=actor.label(),
                         actor_uid=actor.uid, status=RunStatus.RUNNING, started_at=now, parent_version=parent,
                         triggers=(*held, ask), message=f"training {model} (trigger: {trigger})")
        # Fail before training when the version cannot be bumped: an hour of training for a
        # candidate that cannot be named would be wasted.
        try:
            bump_version(parent, policy.version_bump, {v.version for v in tx.list_versions(model)})
        except VersionBumpError as error:
            run = replace(run, status=RunStatus.FAILED, finished_at=now, error=str(error),
                          message="not started: the candidate's version cannot be chosen")
        store.insert_run(tx, run)
        outcome = Outcome.FAILED if run.status is RunStatus.FAILED else Outcome.OK
        asked = "; ".join(f"{a.kind} since {utc_iso(a.at)}" for a in held)
        detail = (f"run {run.id} ({trigger})"
                  + (f": {run.error}" if run.error else " started: training")
                  + (f"; also asked while held: {asked}" if asked else ""))
        tx.append_audit(actor=actor, action="retrain", model=model, from_version=parent, to_version=None,
                        reason=reason, outcome=outcome, detail=detail, now=now)
        tx.append_event(kind="retrain", model=model, payload={"run_id": run.id, "status": run.status.value,
                                                              "trigger": trigger}, now=now)
        return run

    def _start_thread(self, run: RetrainRun, policy: ModelRetrainPolicy) -> None:
        live = _LiveRun(run, self.clock)
        with self._lock:
            self._live[run.id] = live
            thread = threading.Thread(target=self._execute, args=(live, policy), name=f"retrain-{run.model}",
                                      daemon=True)
            self._threads[run.id] = thread
        thread.start()

    # -- the run -----------------------------------------------------------------------------

    def _execute(self, live: _LiveRun, policy: ModelRetrainPolicy) -> None:
        run = live.run
        try:
            run = self._train_and_hand_over(live, policy)
        except Exception as error:  # a bug here must end the run as failed, not leave it "running"
            log.exception("retrain run crashed", extra={"run": run.id})
            run = self._finish(live.run, RunStatus.FAILED, error="".join(traceback.format_exception(error)),
                               message="the retraining pipeline failed", alert=True)
        finally:
            with self._lock:
                self._live.pop(run.id, None)
                self._threads.pop(run.id, None)
            live.run = run
            live.done.set()
            self._prune_workdir(run.model)

    def _train_and_hand_over(self, live: _LiveRun, policy: ModelRetrainPolicy) -> RetrainRun:
        run = live.run
        try:
            spec = TrainingSpec(entrypoint=policy.entrypoint, command=list(policy.command),
                                timeout_seconds=policy.timeout_seconds, memory_limit_mb=policy.memory_limit_mb,
                                env=dict(policy.env), working_dir=policy.working_dir,
                                kill_grace_seconds=policy.kill_grace_seconds)
        except ValueError as error:
            return self._finish(run, RunStatus.FAILED, error=f"bad training settings: {error}",
                                message="not started", alert=True)
        params = {**policy.params, "model": run.model, "run_id": run.id, "trigger": run.trigger,
                  "parent_version": run.parent_version or ""}
        outcome = run_training(spec, workdir=self.workdir / run.model, params=params,
                               on_log=lambda line: self._on_log(live, line),
                               on_progress=lambda p: self._on_progress(live, p),
                               clock=self.clock, new_id=lambda: run.id)
        training = {k: v for k, v in outcome.to_json().items() if k != "log_tail"}
        run = replace(live.run, training=training, logs=outcome.log_tail)
        if outcome.status is not TrainingStatus.SUCCEEDED or outcome.result is None:
            status = RunStatus.TIMED_OUT if outcome.status is TrainingStatus.TIMED_OUT else RunStatus.FAILED
            return self._finish(run, status, error=outcome.error or outcome.status.value,
                                message=f"training {outcome.status.value} after {outcome.duration_seconds:.1f} s",
                                alert=True)
        trained = f"training succeeded in {outcome.duration_seconds:.1f} s"
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(outcome.result.metrics.items())[:4]
                            if isinstance(v, int | float) and not isinstance(v, bool))
        with self.registry.write() as tx:
            tx.append_audit(actor=_run_actor(run), action="retrain-trained", model=run.model,
                            from_version=run.parent_version, to_version=None, reason=run.reason, outcome=Outcome.OK,
                            detail=f"run {run.id}: {trained}" + (f" (its own metrics: {metrics})" if metrics else ""),
                            now=self.clock.now())
        run = self._save(replace(run, status=RunStatus.EVALUATING, message=f"{trained}; registering"))
        try:
            candidate = self._register(run, policy, outcome)
        except OpsctlError as error:
            return self._finish(run, RunStatus.FAILED, error=f"registering the candidate failed: {error}",
                                message="no version was registered", alert=True)
        run = self._save(replace(run, candidate_version=candidate.version,
                                 message=f"registered {candidate.version}; scoring champion and challenger"))
        try:
            decision = self._evaluate(run, policy, outcome, candidate)
        except (OpsctlError, ValueError, OSError, KeyError) as error:
            return self._finish(run, RunStatus.FAILED,
                                error=f"evaluating {candidate.version} failed: {error}",
                                message=f"{candidate.version} stays registered; no canary was started", alert=True)
        return self._hand_over(run, policy, decision)

    def _register(self, run: RetrainRun, policy: ModelRetrainPolicy, outcome: TrainingOutcome) -> ModelVersion:
        result = outcome.result
        assert result is not None
        lineage = Lineage(training_data_hash=result.training_data_hash,
                          code_version=policy.lineage_code_version(__version__),
                          parent_version=run.parent_version, trigger=run.trigger)
        actor = _run_actor(run)
        for attempt in range(3):
            # Rejected candidates stay registered, so pick a number nobody holds; someone may
            # register the same number meanwhile, hence the retry.
            existing = {v.version for v in self.registry.list_versions(run.model)}
            version = bump_version(run.parent_version, policy.version_bump, existing)
            request = RegisterRequest(
                model=run.model, version=version, artifact=result.artifact_path, metrics=dict(result.metrics),
                reference=result.reference_sample_path,
                description=f"retrained by run {run.id} (trigger: {run.trigger})",
                tags={"retrain_run": run.id, "trigger": run.trigger}, lineage=lineage)
            try:
                return self.service.register(request, actor=actor, reason=f"retrain run {run.id}: {run.reason}")
            except ConflictError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _evaluate(self, run: RetrainRun, policy: ModelRetrainPolicy, outcome: TrainingOutcome,
                  candidate: ModelVersion) -> RetrainDecision:
        result = outcome.result
        assert result is not None
        if result.holdout_path is None:
            raise UsageError("the training returned no holdout, so champion and challenger cannot be compared")
        import pandas as pd

        stored = self.artifacts.put(result.holdout_path)  # keep the exact rows the decision was made on
        holdout_path = self.artifacts.verified_path(stored.name, stored.sha256)
        frame = pd.read_csv(holdout_path)
        if policy.label_column not in frame.columns:
            raise UsageError(f"the holdout has no label column {policy.label_column!r}"
                             f" (columns: {', '.join(map(str, frame.columns))})")
        labels = frame[policy.label_column].to_numpy()
        features = frame.drop(columns=[policy.label_column])
        challenger = self.artifacts.load_model(candidate.artifact_name, candidate.sha256)
        challenger_metrics = _score_model(challenger, features, labels)
        champion_metrics = None
        champion = self.registry.get_version(run.model, run.parent_version) if run.parent_version else None
        if champion is not None:
            champion_metrics = _score_model(self.artifacts.load_model(champion.artifact_name, champion.sha256),
                                            features, labels)
        return decide_champion(metric=policy.metric, higher_is_better=policy.higher_is_better,
                               min_improvement=policy.min_improvement,
                               champion_version=None if champion is None else champion.version,
                               champion_metrics=champion_metrics, challenger_version=candidate.version,
                               challenger_metrics=challenger_metrics, holdout_rows=len(frame),
                               holdout_sha256=stored.sha256)

    def _hand_over(self, run: RetrainRun, policy: ModelRetrainPolicy, decision: RetrainDecision) -> RetrainRun:
        run = replace(run, decision=decision)
        now = self.clock.now()
        with self.registry.write() as tx:
            tx.append_audit(actor=_run_actor(run), action="retrain-decision", model=run.model,
                            from_version=decision.champion_version, to_version=decision.challenger_version,
                            reason=run.reason, outcome=Outcome.OK, detail=decision.headline, now=now)
        if decision.outcome is not DecisionOutcome.CANARY:
            return self._finish(run, RunStatus.KEPT, message=decision.headline)
        if policy.approval_before_canary:
            return self._finish(run, RunStatus.AWAITING_APPROVAL,
                                message=f"{decision.reason}; waiting for approval"
                                        f" (`opsctl retrain approve {run.id}`)")
        return self._start_canary(run, _run_actor(run))

    def _start_canary(self, run: RetrainRun, actor: Actor) -> RetrainRun:
        assert run.candidate_version is not None and run.decision is not None
        if self.start_canary is None:
            # A service built without a canary starter (no canary service in this process): the decision
            # is recorded, nothing moves, and the run says so.
            return self._finish(run, RunStatus.CANARY_PENDING,
                                message=f"{run.decision.reason}; canary would start for {run.candidate_version}"
                                        " (no canary service is available in this process)")
        try:
            canary = self.start_canary(run.model, run.candidate_version, actor,
                                       f"retrain run {run.id} ({run.trigger}): {run.decision.reason}")
        except OpsctlError as error:
            return self._finish(run, RunStatus.CANARY_PENDING, error=f"the canary could not start: {error}",
                                message=f"{run.candidate_version} is registered and better, but its canary did"
                                        " not start", alert=True)
        return self._finish(replace(run, canary=canary), RunStatus.CANARY_STARTED,
                            message=f"canary of {run.candidate_version} started: {run.decision.reason}")

    def canary_ended(self, model: str, version: str, phase: str, reason: str) -> RetrainRun | None:
        """The canary of ``version`` ended in ``phase``: the run that started it says so.

        Called by the canary service when a canary finishes, and by the ``retrain-schedule`` job for
        canaries that ended while no one was listening; a run already past ``canary_started`` is left
        alone, so both may call it. Returns the updated run, or None when no run waited on this canary.
        """
        status = CANARY_END_STATUSES.get(phase)
        if status is None:
            return None
        now = self.clock.now()
        with self.registry.write() as tx:
            run = next((r for r in store.list_runs(tx, model, 20)
                        if r.candidate_version == version and r.status is RunStatus.CANARY_STARTED), None)
            if run is None:
                return None
            ended = phase.replace("_", " ")
            message = f"canary of {version} {ended}" + (f": {reason}" if reason else "")
            run = replace(run, status=status, message=message,
                          canary={**(run.canary or {}), "phase": phase, "reason": reason, "ended_at": utc_iso(now)})
            run = _write_run(tx, run)
            tx.append_event(kind="retrain", model=model, payload={"run_id": run.id, "status": status.value,
                                                                  "message": run.message}, now=now)
        self._publish_status(run)
        log.info("retrain run follows its canary", extra={"run": run.id, "model": model, "status": status.value})
        return run

    def approve(self, run_id: str, *, actor: Actor, reason: str = "") -> RetrainRun:
        """Let a run that waits for approval start its canary (audited)."""
        run = self.get(run_id)
        if run.status is not RunStatus.AWAITING_APPROVAL:
            raise ConflictError(f"run {run_id} is {run.status.value}, not awaiting approval")
        now = self.clock.now()
        with self.registry.write() as tx:
            current = store.get_run(tx, run_id)
            if current is None or current.status is not RunStatus.AWAITING_APPROVAL:
                raise ConflictError(f"run {run_id} changed meanwhile; nothing was done")
            tx.append_audit(actor=actor, action="retrain-approve", model=run.model,
                            from_version=run.parent_version, to_version=run.candidate_version, reason=reason,
                            outcome=Outcome.OK, detail=f"run {run_id}: start the canary", now=now)
            # Claim it in the same transaction, so two approvals cannot start two canaries.
            store.update_run(tx, replace(current, status=RunStatus.EVALUATING, message="approved; starting canary"))
        return self._start_canary(run, actor)

    def reject(self, run_id: str, *, actor: Actor, reason: str = "") -> RetrainRun:
        """Turn down a run that waits for approval: its candidate stays registered, no canary starts (audited)."""
        run = self.get(run_id)
        if run.status is not RunStatus.AWAITING_APPROVAL:
            raise ConflictError(f"run {run_id} is {run.status.value}, not awaiting approval")
        now = self.clock.now()
        with self.registry.write() as tx:
            current = store.get_run(tx, run_id)
            if current is None or current.status is not RunStatus.AWAITING_APPROVAL:
                raise ConflictError(f"run {run_id} changed meanwhile; nothing was done")
            tx.append_audit(actor=actor, action="retrain-reject", model=run.model,
                            from_version=run.parent_version, to_version=run.candidate_version, reason=reason,
                            outcome=Outcome.OK, detail=f"run {run_id}: no canary; {run.parent_version} stays",
                            now=now)
            run = _write_run(tx, replace(current, status=RunStatus.REJECTED, finished_at=now,
                                         message=f"rejected by {actor.user}: {reason or 'no reason given'}"))
            tx.append_event(kind="retrain", model=run.model,
                            payload={"run_id": run.id, "status": run.status.value, "message": run.message}, now=now)
        self._publish_status(run)
        return run

    # -- bookkeeping -------------------------------------------------------------------------

    def _save(self, run: RetrainRun) -> RetrainRun:
        with self.registry.write() as tx:
            run = _write_run(tx, run)
        with self._lock:
            live = self._live.get(run.id)
            if live is not None:
                live.run = run
        self._publish_status(run)
        return run

    def _finish(self, run: RetrainRun, status: RunStatus, *, message: str, error: str | None = None,
                alert: bool = False) -> RetrainRun:
        now = self.clock.now()
        if self._closing and status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            # shutdown() killed the training: say so rather than blame the training code.
            status, message = RunStatus.ABANDONED, "abandoned: the daemon stopped during the run"
            error = f"the daemon stopped while this run was in flight; its training was killed ({error})"
        run = replace(run, status=status, finished_at=now, message=message, error=error or run.error)
        if not run.logs:
            live = self._live.get(run.id)
            if live is not None:
                run = replace(run, logs="\n".join(live.lines))
        with self.registry.write() as tx:
            run = _write_run(tx, run)
            if status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                tx.append_audit(actor=_run_actor(run), action="retrain", model=run.model,
                                from_version=run.parent_version, to_version=run.candidate_version,
                                reason=run.reason, outcome=Outcome.FAILED,
                                detail=f"run {run.id} {status.value}: {_first_line(run.error)}", now=now)
            tx.append_event(kind="retrain", model=run.model,
                            payload={"run_id": run.id, "status": status.value, "message": message}, now=now)
        self._publish_status(run)
        if alert:
            self._alert(run)
        log.info("retrain run finished", extra={"run": run.id, "model": run.model, "status": status.value})
        return run

    def _alert(self, run: RetrainRun) -> None:
        self._publish("alert", {"source": "retrain", "severity": "warning", "model": run.model,
                                "run_id": run.id, "status": run.status.value,
                                "summary": f"retraining {run.model} {run.status.value}: {_first_line(run.error)}"})

    def _on_log(self, live: _LiveRun, line: str) -> None:
        live.lines.append(line)
        live.total += 1
        # Rate-limit what goes out as events: a chatty training must not flush everything else
        # out of the event bus's replay buffer. The full tail is in the run record.
        second = int(live.clock.monotonic())
        if second != live.window:
            if live.dropped:
                self._publish("retrain", {"event": "log", "run_id": live.run.id, "model": live.run.model,
                                          "line": f"[{live.dropped} log lines not streamed; see"
                                                  f" `opsctl retrain show {live.run.id}`]"})
            live.window, live.streamed, live.dropped = second, 0, 0
        if live.streamed >= _STREAMED_LINES_PER_SECOND:
            live.dropped += 1
            return
        live.streamed += 1
        self._publish("retrain", {"event": "log", "run_id": live.run.id, "model": live.run.model, "line": line})

    def _on_progress(self, live: _LiveRun, progress: TrainingProgress) -> None:
        live.progress = progress
        self._publish("retrain", {"event": "progress", "run_id": live.run.id, "model": live.run.model,
                                  **progress.to_json()})

    def _prune_workdir(self, model: str) -> None:
        """Keep the working directories of the last few runs per model (the registry has the rest)."""
        root = self.workdir / model
        with contextlib.suppress(OSError):
            with self._lock:
                busy = set(self._live)
            dirs = sorted((p for p in root.iterdir() if p.is_dir() and p.name not in busy),
                          key=lambda p: p.stat().st_mtime)
            for old in dirs[:-_KEEP_RUN_DIRS]:
                shutil.rmtree(old, ignore_errors=True)

    # -- reading -----------------------------------------------------------------------------

    def get(self, run_id: str) -> RetrainRun:
        """A run with its logs (the live lines so far while it is running)."""
        with self._lock:
            live = self._live.get(run_id)
        with self.registry.read() as tx:
            run = store.get_run(tx, run_id)
        if run is None:
            raise NotFoundError("retrain run", run_id, "see `opsctl retrain runs`")
        if live is not None and not run.logs:
            run = replace(run, logs="\n".join(live.lines))
        return run

    def log_lines(self, run_id: str, offset: int = 0) -> tuple[list[str], int]:
        """Log lines after the first ``offset`` and the number seen so far, for followers that poll.

        While the run is live the count includes lines the in-memory buffer has let go of; once it
        has ended, lines come from the stored tail.
        """
        with self._lock:
            live = self._live.get(run_id)
            if live is not None:
                lines, total = list(live.lines), live.total
        if live is None:
            lines = self.get(run_id).logs.splitlines()
            return lines[offset:], len(lines)
        first = total - len(lines)  # index of the oldest line still held
        return lines[max(0, offset - first):], total

    def progress(self, run_id: str) -> TrainingProgress | None:
        with self._lock:
            live = self._live.get(run_id)
        return None if live is None else live.progress

    def runs(self, model: str | None = None, limit: int = 50) -> list[RetrainRun]:
        """Newest first."""
        if limit <= 0:
            raise UsageError("limit must be positive")
        with self.registry.read() as tx:
            return store.list_runs(tx, model, limit)

    def wait(self, run_id: str, timeout: float | None = None) -> RetrainRun:
        """Block until the run is no longer training or evaluating (or ``timeout`` s pass)."""
        with self._lock:
            live = self._live.get(run_id)
        if live is not None:
            live.done.wait(timeout)
        return self.get(run_id)

    def join_threads(self, timeout: float) -> bool:
        """Wait for the run threads of this process (tests, shutdown); False if some still run."""
        deadline = self.clock.monotonic() + timeout
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock.monotonic()))
        return not any(t.is_alive() for t in threads)

    def shutdown(self, timeout: float = 3.0) -> list[str]:
        """Stop the runs in flight (daemon shutdown): kill their training processes, record them abandoned.

        The training runs in its own session, so without this it would outlive the daemon.
        """
        self._closing = True
        with self._lock:
            live = dict(self._live)
        for run_id, entry in live.items():
            self.processes.kill(self.workdir / entry.run.model / run_id / "output")
        self.join_threads(timeout)
        return list(live)

    # -- start-up and the schedule -----------------------------------------------------------

    def recover(self) -> list[RetrainRun]:
        """Runs left training or evaluating by an earlier process are recorded as abandoned (and their
        training processes, if any survived, killed)."""
        now = self.clock.now()
        abandoned = []
        with self.registry.write() as tx:
            for run in store.active_runs(tx):
                if run.id in self._live:
                    continue
                run = replace(run, status=RunStatus.ABANDONED, finished_at=now,
                              error="the daemon stopped while this run was in flight",
                              message="abandoned at daemon start-up; trigger a new run")
                store.update_run(tx, run)
                tx.append_audit(actor=SYSTEM_ACTOR, action="retrain", model=run.model,
                                from_version=run.parent_version, to_version=run.candidate_version, reason="",
                                outcome=Outcome.FAILED, detail=f"run {run.id} abandoned: {run.error}", now=now)
                abandoned.append(run)
        for run in abandoned:
            # A daemon killed outright (SIGKILL, OOM) ran no exit handler: its training may still run.
            self.processes.kill(self.workdir / run.model / run.id / "output")
            self._alert(run)
        return abandoned

    def check_schedules(self) -> list[TriggerResult]:
        """Trigger every model whose cron schedule came due since the last check."""
        policy = self.policy
        now = self.clock.now()
        results = []
        for model in sorted(policy.models):
            model_policy = policy.for_model(model)
            if model_policy is None or model_policy.schedule is None:
                continue
            key = f"retrain.schedule.{model}"
            with self.registry.write() as tx:
                raw = tx.get_kv(key)
                tx.put_kv(key, utc_iso(now))
            if raw is None:
                continue  # first look: start counting from now
            from opsctl.clock import parse_utc

            due = due_fire_time(model_policy.schedule, last_checked=parse_utc(raw), now=now,
                                timezone=policy.schedule_timezone,
                                misfire_grace_seconds=policy.schedule_misfire_grace_seconds)
            if due is not None:
                results.append(self.trigger(model, "schedule", f"cron {model_policy.schedule!r} at {utc_iso(due)}",
                                            SYSTEM_ACTOR))
        return results

    def status(self) -> RetrainStatus:
        """The ``retrain`` section of ``/v1/status``: configured models, runs in flight, last runs."""
        policy = self.policy
        now = self.clock.now()
        with self._lock:
            live = [RunningRun(entry.run, entry.progress) for entry in self._live.values()]
        models = {}
        for model in sorted(policy.models):
            model_policy = policy.for_model(model)
            assert model_policy is not None
            with self.registry.read() as tx:
                last = store.latest_run(tx, model)
            next_at = (next_fire_time(model_policy.schedule, now, policy.schedule_timezone)
                       if model_policy.schedule else None)
            models[model] = ModelRetrainStatus(schedule=model_policy.schedule, next_scheduled_at=next_at,
                                               last_run=last)
        return RetrainStatus(models=models, running=tuple(live))


def _write_run(tx: RegistryTx, run: RetrainRun) -> RetrainRun:
    """Update the row, keeping the joined triggers other threads added meanwhile."""
    current = store.get_run(tx, run.id)
    if current is not None and current.joined_triggers > run.joined_triggers:
        run = replace(run, joined_triggers=current.joined_triggers)
    if current is not None and len(current.triggers) > len(run.triggers):
        run = replace(run, triggers=current.triggers)
    store.update_run(tx, run)
    return run


def _score_model(estimator: Any, features: Any, labels: Any) -> dict[str, float]:
    if not hasattr(estimator, "predict_proba"):
        raise UsageError(f"the model ({type(estimator).__name__}) has no predict_proba; only binary classifiers"
                         " can be compared on a holdout for now")
    scores = estimator.predict_proba(features)
    return binary_metrics(labels, scores[:, 1])


def _run_actor(run: RetrainRun) -> Actor:
    """The actor who triggered the run: its later audit events (register, decision) name them too."""
    user, _, via = run.actor.partition(" via ")
    return Actor(user=user or "unknown", uid=run.actor_uid, via=via or "retrain")


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # A traceback's last line names the exception; everything else is the first line.
    return lines[-1] if text.startswith("Traceback") and lines else (lines[0] if lines else "")


def _pending_key(model: str) -> str:
    return f"retrain.pending.{model}"


def _pending(tx: RegistryTx, model: str) -> tuple[TriggerAsk, ...]:
    """Asks held since the model's last run, oldest first."""
    raw = tx.get_kv(_pending_key(model))
    if not raw:
        return ()
    return tuple(TriggerAsk.from_json(item) for item in json.loads(raw))


def _dump_asks(asks: tuple[TriggerAsk, ...]) -> str:
    return json.dumps([a.to_json() for a in asks], sort_keys=True)


def _canary_in_flight(tx: RegistryTx, model: str) -> str | None:
    """The version of ``model`` whose canary is still deciding, if any."""
    deployment = tx.get_deployment(model)
    return deployment.canary_version if deployment is not None else None
