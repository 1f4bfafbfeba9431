"""The canary's service layer: start, pause, resume, promote, abort, approve, and the tick.

The daemon's canary job and its API both go through :class:`CanaryService`; it wires the pure
state machine (:mod:`opsctl.core.canary`), the gates (:mod:`opsctl.core.gates`), the store
(:mod:`opsctl.adapters.canary_store`) and the actuator (:mod:`opsctl.adapters.actuators`).

**Level-triggered.** :meth:`CanaryService.tick` re-reads every active canary and the weight traffic
has, and converges: a desired weight (the persisted state) that traffic does not have yet is
applied, a terminal canary whose traffic has not followed is finished, outboxed hooks run. It does
not matter whether the previous tick finished, failed, or the daemon was killed in between.

**Order of a weight change.** The transition (new stage, desired weight) is committed first with
its audit event; then the actuator applies the weight; only then is the weight written to the
deployment (the routing table). A failing actuator is retried, audited with outcome ``failed`` and
alerted; the deployment keeps the old weight, evaluations wait (traffic is not at the stage's
weight), and the next tick tries again. When the weight reaches traffic late, the stage timer
restarts, so every stage is judged for its full minimum duration at its weight.

**Evaluations.** At most one per ``analysis_interval_seconds``; its window runs from the stage's
start to now (the evidence of a stage accumulates, so low-traffic services reach a decision; no
cap by the SLA's sliding ``[prometheus] window``) and is at least ``[prometheus] staleness_seconds``
long (``rate`` needs two scrapes; early in a stage the window therefore reaches into the previous
stage). Latency counts come from the histogram's buckets: requests above the SLA's p95 bound.
Metrics-source errors (Prometheus down, the canary's
or production's series stale) make the evaluation a ``metrics_error``: never a pass.

**Accuracy.** The accuracy gate's labelled/correct counts come from the gate source's
:data:`~opsctl.adapters.prometheus_gates.LabelCounter` (in the
daemon: the drift service's live window, where feedback is joined to predictions by
``prediction_id``): per version, the predictions made since the stage started whose label has
arrived. Until ``min_labels`` have arrived the gate is inconclusive; without a counter it says
"no labels".

**At 100 %** production serves nothing; the source passes the canary's weight in the gate inputs
and :func:`~opsctl.core.gates.evaluate_gates` judges the stage on the absolute gates, the
comparative ones reporting ``not_applicable`` (a missing production series is then no error).

**Alerts.** Canary alerts (paused, awaiting approval, rolled back, failed, actuator failing) are
conditions of the alert engine with source ``canary`` (:meth:`CanaryService.step_alerts`): stored
with the other alerts, acked and silenced the same way, and sent to Alertmanager by the daemon's
notifier; SSE events announce every change as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from opsctl.adapters.actuators import HookCall, Hooks, Retrying, Split
from opsctl.adapters.alert_store import AlertStore
from opsctl.adapters.canary_store import CanaryRecord, CanaryStore
from opsctl.adapters.registry import Registry
from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.alerts import AlertRule, AlertSource, Condition, Notification
from opsctl.core.alerts import Severity as AlertSeverity
from opsctl.core.alerts import step as alert_step
from opsctl.core.canary import (
    ALERT_AWAITING_APPROVAL,
    ALERT_FAILED,
    ALERT_PAUSED,
    ALERT_ROLLED_BACK,
    CanaryPolicy,
    Command,
    CommandKind,
    HookKind,
    Phase,
    RaiseAlert,
    ResolveAlert,
    RunHook,
    Transition,
    new_canary,
    step,
)
from opsctl.core.gates import Evaluation, GateInputs, VersionWindow, evaluate_gates
from opsctl.domain import Actor, Outcome
from opsctl.errors import ActuatorError, ConflictError, MetricsSourceError, NotFoundError, OpsctlError, UsageError
from opsctl.services.registry import validate_model_name, validate_version

if TYPE_CHECKING:
    from opsctl.adapters.canary_gauges import CanaryGauges

log = logging.getLogger("opsctl.canary")

EventSink = Callable[[str, dict[str, Any]], None]
SYSTEM_ACTOR = Actor(user="opsctld", uid=None, via="canary-job")
ALERT_ACTUATOR = "canary_actuator_failed"
_WEIGHT_EPSILON = 1e-6

NotifyHook = Callable[[Sequence[Notification]], None]


def _rule(name: str, severity: AlertSeverity, description: str) -> AlertRule:
    return AlertRule(name, severity, for_seconds=0.0, source=AlertSource.CANARY,
                     annotations={"description": description})


# One alert rule per condition the canary raises; labels model and model_version (the canary's).
CANARY_ALERT_RULES: dict[str, AlertRule] = {
    ALERT_PAUSED: _rule("CanaryPaused", AlertSeverity.WARNING,
                        "A canary paused by itself (inconclusive analysis, metrics source errors or its progress"
                        " deadline) and waits for a human (opsctl canary status MODEL)."),
    ALERT_AWAITING_APPROVAL: _rule("CanaryAwaitingApproval", AlertSeverity.INFO,
                                   "A canary passed every stage and waits for `opsctl canary approve MODEL`."),
    ALERT_ROLLED_BACK: _rule("CanaryRolledBack", AlertSeverity.CRITICAL,
                             "A canary was rolled back automatically: its gates failed (opsctl canary status"
                             " MODEL). Production is unchanged."),
    ALERT_FAILED: _rule("CanaryFailed", AlertSeverity.CRITICAL,
                        "A canary missed its progress deadline and was sent back to weight 0."),
    ALERT_ACTUATOR: _rule("CanaryActuatorFailed", AlertSeverity.CRITICAL,
                          "The traffic split of a canary could not be applied; traffic keeps its last weight and"
                          " the daemon retries."),
}


class GateSource(Protocol):
    """Reads one analysis window for a canary: the gate inputs, or metrics_error set when it cannot."""

    def inputs(self, record: CanaryRecord, now: datetime) -> GateInputs: ...


@dataclass(frozen=True)
class AlertNotice:
    model: str
    key: str
    severity: str
    summary: str
    firing: bool

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "key": self.key, "severity": self.severity, "summary": self.summary,
                "status": "firing" if self.firing else "resolved"}


AlertSink = Callable[[AlertNotice], None]


@dataclass(frozen=True)
class TickResult:
    canaries: int
    transitions: int
    errors: tuple[str, ...] = ()

    def summary(self) -> str:
        text = f"{self.canaries} active canaries, {self.transitions} transitions"
        return text + (f"; {len(self.errors)} errors: {'; '.join(self.errors)}" if self.errors else "")


class CanaryService:
    """Canary commands and the tick; thread-safe (one lock per model)."""

    def __init__(self, registry: Registry, *, policy: CanaryPolicy, actuator: Retrying, hooks: Hooks,
                 gate_source: GateSource | None = None, clock: Clock | None = None,
                 events: EventSink | None = None, alerts: AlertSink | None = None,
                 hook_max_attempts: int = 5, gauges: CanaryGauges | None = None,
                 on_end: Callable[[CanaryRecord], None] | None = None) -> None:
        self.registry = registry
        self.store = CanaryStore(registry)
        self.policy = policy
        self.actuator = actuator
        self.hooks = hooks
        self.gate_source = gate_source
        self.clock = clock or SystemClock()
        self._events = events
        self._alerts = alerts
        self.hook_max_attempts = hook_max_attempts
        self.gauges = gauges
        # Told when a canary has finished and its traffic converged (the retrain run that started it follows).
        self.on_end = on_end
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._verified: set[int] = set()  # canaries whose actuator weight this process has (re)applied
        self._hook_failures: dict[tuple[int, str], int] = {}
        self.actuator_errors: dict[str, str] = {}  # model -> last actuator error, cleared on success
        self.alert_store = AlertStore()

    # -- plumbing -----------------------------------------------------------------------------

    def _lock(self, model: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(model, threading.RLock())

    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self._events is not None:
            self._events(kind, payload)

    def _alert(self, notice: AlertNotice) -> None:
        log.log(logging.WARNING if notice.firing else logging.INFO, "canary alert",
                extra={"alert": notice.to_json()})
        self._publish("alert", {"source": "canary", **notice.to_json()})
        if self._alerts is not None:
            self._alerts(notice)

    def _active(self, model: str) -> CanaryRecord:
        found = self.store.active(model)
        if not found:
            raise NotFoundError("canary", model, f"no active canary for {model}; see `opsctl canary status`")
        return found[0]

    # -- commands -----------------------------------------------------------------------------

    def start(self, model: str, version: str, *, actor: Actor, reason: str = "",
              overrides: Mapping[str, Any] | None = None) -> CanaryRecord:
        """Create and start a canary of ``version``; stage 1's weight is applied before returning."""
        validate_model_name(model)
        validate_version(version)
        try:
            policy = self.policy.merged(dict(overrides or {}))
        except (ValueError, TypeError) as error:
            raise UsageError(f"canary policy: {error}") from error
        with self._lock(model):
            deployment = self.store.deployment(model)
            if self.registry.get_version(model, version) is None:
                raise NotFoundError("version", f"{model} {version}", f"see `opsctl versions {model}`")
            if self.store.active(model):
                raise ConflictError(f"{model} already has an active canary; see `opsctl canary status {model}`")
            now = self.clock.now()
            try:
                state = new_canary(model, version, deployment.production_version, now)
            except ValueError as error:
                raise ConflictError(str(error)) from error
            transition = step(state, policy, now, command=Command(CommandKind.START, reason=reason, actor=actor.user))
            done: tuple[RunHook, ...] = ()
            pre = next((a for a in transition.actions if isinstance(a, RunHook) and a.kind is HookKind.PRE_ROLLOUT),
                       None)
            if pre is not None:
                # Flagger's pre-rollout: checked before any traffic moves; a failure starts nothing.
                try:
                    self._run_hook(pre)
                except ActuatorError as error:
                    with self.registry.write() as tx:
                        tx.append_audit(actor=actor, action="canary_start", model=model,
                                        from_version=deployment.production_version, to_version=version,
                                        reason=reason, outcome=Outcome.FAILED, detail=str(error), now=now)
                    raise
                done = (pre,)
            record = self.store.create(state, policy, actor=actor, reason=reason, now=now, transition=transition,
                                       done=done)
            self._announce(record, transition, None)
            record = self._converge(record, late=False)
            self._drain_outbox(record.id)
        return self.store.get(record.id)

    def command(self, model: str, kind: CommandKind | str, *, actor: Actor, reason: str = "") -> CanaryRecord:
        """pause / resume / promote / abort / approve the model's active canary (audited)."""
        kind = CommandKind(kind)
        if kind is CommandKind.START:
            raise UsageError("use start() to start a canary")
        with self._lock(model):
            record = self._active(model)
            now = self.clock.now()
            transition = step(record.state, record.policy, now,
                              command=Command(kind, reason=reason, actor=actor.user))
            record = self.store.save(record, transition, actor=actor, action=f"canary_{kind.value}", reason=reason,
                                     now=now)
            self._announce(record, transition, None)
            record = self._converge(record, late=False)
            self._drain_outbox(record.id)
        return self.store.get(record.id)

    # -- the job ------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """One pass over every active canary, then every pending outbox."""
        transitions = 0
        errors: list[str] = []
        records = self.store.active()
        for record in records:
            try:
                transitions += self.tick_one(record.model)
            except OpsctlError as error:
                errors.append(f"{record.model}: {error}")
                log.warning("canary tick failed", extra={"model": record.model, "error": str(error)})
        for canary_id in list(self.store.outboxes()):
            try:
                self._drain_outbox(canary_id)
            except OpsctlError as error:
                errors.append(f"outbox {canary_id}: {error}")
        return TickResult(len(records), transitions, tuple(errors))

    def tick_one(self, model: str) -> int:
        """Converge, maybe evaluate, step; returns how many transitions were saved."""
        found = self.store.active(model)
        if not found:
            return 0
        record = found[0]
        # Read metrics outside the lock: operators' commands should not wait for Prometheus.
        inputs = self._inputs_if_due(record)
        with self._lock(model):
            record = self._converge(self.store.get(record.id), late=True)
            if not record.active or record.state.terminal:
                return 0
            if not self._traffic_matches(record):
                return 0  # the weight has not reached traffic: judging this stage now would be wrong
            saved = 0
            now = self.clock.now()
            if record.state.phase is Phase.PROMOTING and self.hooks.configured(HookKind.CONFIRM_PROMOTION.value):
                call = RunHook(HookKind.CONFIRM_PROMOTION, model, record.state.canary_version,
                               record.state.production_version, record.state.weight)
                try:
                    self._run_hook(call)
                except ActuatorError as error:
                    log.info("confirm-promotion hook not yet", extra={"model": model, "error": str(error)})
                else:
                    transition = step(record.state, record.policy, now, command=Command(
                        CommandKind.APPROVE, reason="confirm-promotion hook succeeded", actor="hook"))
                    record = self.store.save(record, transition, actor=SYSTEM_ACTOR, action="canary_approve",
                                             reason="confirm-promotion hook succeeded", now=now)
                    self._announce(record, transition, None)
                    return 1 + self._after(record)
            evaluation: Evaluation | None = None
            judged_at = now
            if inputs is not None and inputs[0] == record.state.revision:
                evaluation = evaluate_gates(record.policy.gate_policy, inputs[1])
                # The state steps as of the window's end (the audit keeps the real time): stamped
                # after the read, every analysis interval grew by one job tick.
                judged_at = inputs[2]
            transition = step(record.state, record.policy, judged_at, evaluation=evaluation)
            if transition.state.revision == record.state.revision:
                return 0  # nothing changed (e.g. still waiting for the stage's minimum time)
            old = record.state
            new = transition.state
            significant = (new.phase is not old.phase or new.stage != old.stage
                           or new.failed_checks != old.failed_checks)
            action = _action_name(old, new)
            record = self.store.save(record, transition, actor=SYSTEM_ACTOR, action=action, reason="", now=now,
                                     evaluation=evaluation, audit=significant)
            self._announce(record, transition, evaluation)
            saved += 1
            return saved + self._after(record)

    def _after(self, record: CanaryRecord) -> int:
        record = self._converge(record, late=False)
        self._drain_outbox(record.id)
        return 0

    def _inputs_if_due(self, record: CanaryRecord) -> tuple[int, GateInputs, datetime] | None:
        state, policy = record.state, record.policy
        if self.gate_source is None or state.terminal or state.phase is Phase.PENDING:
            return None
        now = self.clock.now()
        since = None if state.last_evaluation_at is None else (now - state.last_evaluation_at).total_seconds()
        if since is not None and since < policy.analysis_interval_seconds:
            return None
        try:
            inputs = self.gate_source.inputs(record, now)
        except MetricsSourceError as error:
            inputs = GateInputs(VersionWindow(), VersionWindow(), metrics_error=str(error))
        return state.revision, inputs, now

    # -- convergence --------------------------------------------------------------------------

    def _traffic_matches(self, record: CanaryRecord) -> bool:
        deployment = self.store.deployment(record.model)
        actual = deployment.canary_weight if deployment.canary_version == record.state.canary_version else 0.0
        return abs(actual - record.state.weight) <= _WEIGHT_EPSILON

    def _converge(self, record: CanaryRecord, *, late: bool) -> CanaryRecord:
        """Make traffic follow the persisted state: apply the actuator first, then commit the weight."""
        if not record.active:
            return record
        state = record.state
        deployment = self.store.deployment(record.model)
        now = self.clock.now()
        if state.terminal:
            target = 100.0 if state.phase is Phase.SUCCEEDED else 0.0
            split = Split(record.model, deployment.production_version, state.canary_version, target)
            if not self._apply(record, split):
                return record
            record = self.store.commit_finish(record, actor=SYSTEM_ACTOR, now=now,
                                              expected_generation=deployment.generation)
            self._verified.discard(record.id)
            self._publish("canary", self.status_document(record))
            self._publish("deployment", self.store.deployment(record.model).to_json())
            if self.on_end is not None:
                try:
                    self.on_end(record)
                except Exception:  # a listener's failure must not undo or repeat the finish
                    log.exception("canary end listener failed", extra={"model": record.model})
            return record
        if state.phase is Phase.PENDING:
            return record
        if deployment.production_version != state.production_version:
            # Production changed under the canary (`opsctl promote` of the canary version, or of
            # another one): the canary's question is moot; record how it ended.
            kind = (CommandKind.PROMOTE if deployment.production_version == state.canary_version
                    else CommandKind.ABORT)
            transition = step(state, record.policy, now, command=Command(
                kind, reason=f"production is now {deployment.production_version} (changed outside the canary)",
                actor="opsctld"))
            record = self.store.save(record, transition, actor=SYSTEM_ACTOR, action=f"canary_{kind.value}",
                                     reason="production changed outside the canary", now=now)
            self._announce(record, transition, None)
            return self._converge(record, late=False)
        actual = deployment.canary_weight if deployment.canary_version == state.canary_version else 0.0
        differs = abs(actual - state.weight) > _WEIGHT_EPSILON
        unverified = record.id not in self._verified and self.actuator.current_weight(record.model) is None
        if not differs and not unverified:
            return record
        split = Split(record.model, deployment.production_version, state.canary_version, state.weight)
        if not self._apply(record, split):
            return record
        self._verified.add(record.id)
        if not differs:
            return record
        record = self.store.commit_weight(record, state.weight, actor=SYSTEM_ACTOR, now=now,
                                          expected_generation=deployment.generation, restart_stage=late)
        self._publish("deployment", self.store.deployment(record.model).to_json())
        return record

    def _apply(self, record: CanaryRecord, split: Split) -> bool:
        try:
            self.actuator.apply(split)
        except ActuatorError as error:
            first = record.model not in self.actuator_errors
            self.actuator_errors[record.model] = str(error)
            self.store.record_failure(record, action="canary_weight", actor=SYSTEM_ACTOR, now=self.clock.now(),
                                      detail=f"could not apply {split.canary_weight:g}% to {split.canary_version}: "
                                             f"{error}; traffic keeps its current weight, retrying")
            self._publish("canary", {**self.status_document(record), "actuator_error": str(error)})
            if first:
                self._alert(AlertNotice(record.model, ALERT_ACTUATOR, "critical",
                                        f"canary {record.model}: traffic split not applied: {error}", True))
            return False
        if self.actuator_errors.pop(record.model, None) is not None:
            self._alert(AlertNotice(record.model, ALERT_ACTUATOR, "critical", "traffic split applied", False))
        return True

    # -- outbox -------------------------------------------------------------------------------

    def _run_hook(self, action: RunHook) -> None:
        self.hooks.run(HookCall(action.kind.value, action.model, action.canary_version, action.production_version,
                                action.weight))

    def _drain_outbox(self, canary_id: int) -> None:
        record = self.store.get(canary_id)
        for action in record.outbox:
            if isinstance(action, RaiseAlert | ResolveAlert):
                firing = isinstance(action, RaiseAlert)
                self._alert(AlertNotice(action.model, action.key,
                                        action.severity.value if isinstance(action, RaiseAlert) else "info",
                                        action.summary if isinstance(action, RaiseAlert) else "resolved", firing))
                self.store.pop_outbox(canary_id, action)
            elif isinstance(action, RunHook):
                if action.kind is HookKind.CONFIRM_PROMOTION:
                    self.store.pop_outbox(canary_id, action)  # polled by the tick while promoting
                    continue
                key = (canary_id, action.kind.value)
                try:
                    self._run_hook(action)
                except ActuatorError as error:
                    failures = self._hook_failures.get(key, 0) + 1
                    self._hook_failures[key] = failures
                    self.store.record_failure(record, action=f"canary_hook_{action.kind.value}", actor=SYSTEM_ACTOR,
                                              now=self.clock.now(),
                                              detail=f"attempt {failures}/{self.hook_max_attempts}: {error}")
                    if failures < self.hook_max_attempts:
                        return  # keep the order: later actions wait for this one
                    self._alert(AlertNotice(action.model, f"canary_hook_{action.kind.value}", "warning",
                                            f"{action.kind.value} hook gave up after {failures} attempts: {error}",
                                            True))
                self._hook_failures.pop(key, None)
                self.store.pop_outbox(canary_id, action)
            else:
                self.store.pop_outbox(canary_id, action)

    # -- alerts through the alert engine -------------------------------------------------------

    def conditions(self) -> list[Condition]:
        """Every canary alert rule for each model's latest canary (active = raised and not resolved)."""
        conditions: list[Condition] = []
        for record in self.store.list_latest():
            state = record.state
            labels = {"model": state.model, "model_version": state.canary_version}
            for key, rule in CANARY_ALERT_RULES.items():
                if key == ALERT_ACTUATOR:
                    active = state.model in self.actuator_errors
                    error = self.actuator_errors.get(state.model)
                    summary = f"canary {state.model}: traffic split not applied: {error}"
                else:
                    active = key in state.open_alerts
                    summary = f"canary {state.model} {state.canary_version} {state.phase.value}: {state.reason}"
                conditions.append(Condition(rule, labels, active, summary=summary if active else ""))
        return conditions

    def step_alerts(self, policy: Any, notify: NotifyHook | None = None) -> int:
        """Step the alert engine for source ``canary``; returns how many alerts changed.

        ``policy`` is the ``[alerts]`` :class:`~opsctl.core.alerts.AlertPolicy`; ``notify`` sends the
        resulting notifications (the daemon's Alertmanager notifier). Other sources are left alone.
        """
        conditions = self.conditions()
        now = self.clock.now()
        with self.registry.write() as tx:
            before = self.alert_store.load(tx)
            silences = self.alert_store.silences(tx, active_at=now)
            after, notifications = alert_step(before, conditions, now, silences=silences, policy=policy,
                                              evaluated_sources=(AlertSource.CANARY,))
            transitions = self.alert_store.apply(tx, before, after, now)
        for transition in transitions:
            self._publish("alert", transition.to_json())
        if notifications and notify is not None:
            try:
                notify(notifications)
            except Exception:  # delivery trouble is the notifier's to retry; never fail the tick
                log.exception("sending canary alert notifications failed")
        return len(transitions)

    # -- views --------------------------------------------------------------------------------

    def _announce(self, record: CanaryRecord, transition: Transition, evaluation: Evaluation | None) -> None:
        document = self.status_document(record)
        document["transition"] = transition.reason
        if evaluation is not None:
            document["evaluation"] = evaluation.to_json()
        self._publish("canary", document)

    def status_document(self, record: CanaryRecord) -> dict[str, Any]:
        """What ``opsctl canary status -o json`` prints for one canary."""
        state, policy = record.state, record.policy
        deployment = self.registry.get_deployment(record.model)
        if deployment is not None and deployment.canary_version == state.canary_version:
            weight = deployment.canary_weight
        elif deployment is not None and deployment.production_version == state.canary_version:
            weight = 100.0
        else:
            weight = 0.0
        evaluation = state.last_evaluation
        gates = [r.to_json() for r in evaluation.results] if evaluation is not None else []
        weights = policy.stage_weights
        return {
            "id": record.id,
            "model": state.model,
            "canary_version": state.canary_version,
            "production_version": state.production_version,
            "state": state.phase.value,
            "phase": state.phase.value,
            "active": record.active,
            "stage": state.stage + 1,
            "stages": len(weights),
            "stage_weights": list(weights),
            "weight": weight,
            "target_weight": state.weight,
            "failed_checks": state.failed_checks,
            "failure_threshold": policy.failure_threshold,
            "inconclusive_streak": state.inconclusive_streak,
            "metrics_error_streak": state.metrics_error_streak,
            "reason": state.reason,
            "verdict": evaluation.verdict.value if evaluation is not None else None,
            "gates": gates,
            "last_evaluation": evaluation.to_json() if evaluation is not None else None,
            "last_evaluation_at": utc_iso(state.last_evaluation_at) if state.last_evaluation_at else None,
            "started_at": utc_iso(state.started_at) if state.started_at else None,
            "stage_started_at": utc_iso(state.stage_started_at) if state.stage_started_at else None,
            "finished_at": utc_iso(state.finished_at) if state.finished_at else None,
            "updated_at": utc_iso(record.updated_at),
            "revision": state.revision,
            "actuator_error": self.actuator_errors.get(state.model),
            "pending_actions": [a.to_json() for a in record.outbox],
            "policy": policy.to_json(),
        }

    def export(self, documents: list[dict[str, Any]]) -> None:
        """Set the canary gauges (when this service has them) from status documents."""
        if self.gauges is not None:
            self.gauges.update(documents)

    def status(self, model: str | None = None) -> list[dict[str, Any]]:
        records = self.store.list_latest(model)
        if model is not None and not records:
            if self.registry.get_deployment(model) is None:
                raise NotFoundError("model", model, "see `opsctl models`")
            raise NotFoundError("canary", model, f"{model} has never had a canary; start one with "
                                                 f"`opsctl canary start {model} VERSION`")
        return [self.status_document(r) for r in records]


def _action_name(old: Any, new: Any) -> str:
    if new.phase is not old.phase:
        return f"canary_{new.phase.value}"
    if new.stage != old.stage:
        return "canary_stage"
    if new.failed_checks != old.failed_checks:
        return "canary_check_failed"
    return "canary_evaluation"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` strings into policy overrides (:func:`opsctl.core.canary.policy.parse_overrides`)."""
    from opsctl.core.canary.policy import parse_overrides as parse

    return parse(pairs)
