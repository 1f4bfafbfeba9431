"""SLA health checks and the alert engine: the use cases behind the daemon's ``health`` and ``alerts`` jobs.

* :meth:`HealthService.run_health`: the deployed versions come from the registry (every model's
  production and canary version; a version's baseline accuracy is its registered ``metrics["accuracy"]``),
  their metrics from one batched Prometheus cycle (:meth:`PrometheusSource.fetch_fleet`), the verdicts
  from :func:`opsctl.core.sla.evaluate_fleet`. Results are stored (``health_results``, pruned by
  housekeeping), kept in memory for the API, exported as gauges and announced as ``health`` events when
  a version's status changes. Prometheus down makes every version ``unknown`` with the reason, and the
  cycle counts as failed.
* :meth:`HealthService.run_alerts`: the latest health results become conditions for two rules,
  :data:`~opsctl.core.alerts.SLA_DEGRADED` and :data:`~opsctl.core.alerts.HEALTH_UNKNOWN`, stepped by the
  pure engine over the states stored in the registry (so they survive a restart), then pushed to
  Alertmanager when ``[alertmanager] url`` is set. Alerts of other sources (drift, canary) are left alone.

The rules' ``for:`` durations count health cycles, so they mean the same thing whatever the interval:
``ModelSlaDegraded`` fires after :data:`DEGRADED_FOR_CYCLES` cycles in a row (60 s at the default 15 s)
and ``ModelHealthUnknown`` after :data:`UNKNOWN_FOR_CYCLES` (300 s at 15 s), the core's defaults.

Acks and silences are production actions: each is audited (``alert.ack``, ``alert.silence``,
``alert.unsilence``) with the caller's actor.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from opsctl.adapters.alert_store import AlertStore, AlertTransition
from opsctl.adapters.alertmanager import AlertmanagerNotifier, AlertmanagerSettings, DeliveryResult
from opsctl.adapters.health_store import HealthStore
from opsctl.adapters.prometheus import PrometheusSettings, PrometheusSource
from opsctl.adapters.registry import Registry
from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.alerts import (
    HEALTH_UNKNOWN,
    SLA_DEGRADED,
    AlertPhase,
    AlertRule,
    AlertSource,
    AlertState,
    Matcher,
    Notification,
    Silence,
    acknowledge,
    find_alert,
    health_conditions,
    new_silence,
    step,
)
from opsctl.core.sla import HealthResult, HealthStatus, Verdict, evaluate_fleet
from opsctl.domain import Actor, Outcome
from opsctl.errors import MetricsSourceError

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge

    from opsctl.config import Settings

EventSink = Callable[[str, dict[str, Any]], None]
NotifierFactory = Callable[[AlertmanagerSettings], AlertmanagerNotifier]


class HealthGauges(Protocol):
    """The series the health and alerts cycles export (the daemon's ``DaemonMetrics`` has them)."""

    health_status: Gauge
    health_check_value: Gauge
    health_last_cycle: Gauge
    alerts: Gauge
    alert_queued: Gauge
    alert_deliveries: Counter


@dataclass(frozen=True)
class CycleReport:
    """What one health or alerts cycle did: ``ok`` false when it could not do its work."""

    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


DEGRADED_FOR_CYCLES = 4
UNKNOWN_FOR_CYCLES = 20
# A degraded *production* version is critical (exit 2 of `opsctl health`) when one of these fails:
# users are getting errors or no answer at all, not merely slow or less accurate ones.
CRITICAL_CHECKS = ("error_rate", "availability")


def health_rules(health_seconds: float) -> tuple[AlertRule, AlertRule]:
    """The degraded and unknown rules with ``for:`` scaled to the health interval (see module doc)."""
    return (
        replace(SLA_DEGRADED, for_seconds=DEGRADED_FOR_CYCLES * health_seconds),
        replace(HEALTH_UNKNOWN, for_seconds=UNKNOWN_FOR_CYCLES * health_seconds),
    )


@dataclass(frozen=True)
class VersionHealth:
    """A health result and the role the version plays in its deployment."""

    result: HealthResult
    role: str  # "production" or "canary"

    @property
    def critical(self) -> bool:
        """Degraded production version failing a check in :data:`CRITICAL_CHECKS`."""
        return (
            self.role == "production"
            and self.result.status is HealthStatus.DEGRADED
            and any(c.verdict is Verdict.FAIL and c.name in CRITICAL_CHECKS for c in self.result.checks)
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "role": self.role, "critical": self.critical}


@dataclass(frozen=True)
class HealthReport:
    """``GET /v1/health``: the latest results, when they were made, and whether Prometheus answered."""

    versions: tuple[VersionHealth, ...]
    evaluated_at: datetime | None
    health_seconds: float
    prometheus_url: str
    source_error: str | None  # why the last cycle could not read Prometheus; None when it could

    def to_json(self) -> dict[str, Any]:
        return {
            "models": [v.to_json() for v in self.versions],
            "evaluated_at": None if self.evaluated_at is None else utc_iso(self.evaluated_at),
            "health_seconds": self.health_seconds,
            "prometheus": {"url": self.prometheus_url, "ok": self.source_error is None, "error": self.source_error},
        }


@dataclass(frozen=True)
class Delivery:
    """The last delivery to one notification target, and how many notifications wait for a retry."""

    result: DeliveryResult
    queued: int

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "queued": self.queued}


@dataclass(frozen=True)
class AlertsReport:
    """``GET /v1/alerts``: the alerts and the last delivery per target."""

    alerts: tuple[AlertState, ...]
    delivery: Mapping[str, Delivery]

    def to_json(self) -> dict[str, Any]:
        return {"alerts": [a.to_json() for a in self.alerts],
                "delivery": {target: d.to_json() for target, d in self.delivery.items()}}


@dataclass(frozen=True)
class ModelHealth:
    """One model's worst status over its deployed versions."""

    model: str
    status: HealthStatus
    versions: tuple[VersionHealth, ...]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status.value,
                "versions": [{"version": v.result.version, "role": v.role, "status": v.result.status.value,
                              "reason": v.result.reason} for v in self.versions]}


@dataclass(frozen=True)
class HealthSummary:
    """The ``health`` section of ``/v1/status``."""

    evaluated_at: datetime | None
    models: tuple[ModelHealth, ...]

    def to_json(self) -> dict[str, Any]:
        return {"evaluated_at": None if self.evaluated_at is None else utc_iso(self.evaluated_at),
                "models": [m.to_json() for m in self.models]}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class HealthService:
    """Health evaluation, alert state and the audited ack/silence writes of one daemon.

    Thread-safe: the jobs and the API call it from worker threads.
    """

    def __init__(self, registry: Registry, *, settings: Callable[[], Settings], gauges: HealthGauges,
                 clock: Clock | None = None, events: EventSink | None = None,
                 source_factory: Callable[[PrometheusSettings], PrometheusSource] = PrometheusSource,
                 notifier_factory: NotifierFactory | None = None) -> None:
        self.registry = registry
        self._settings = settings
        self.gauges = gauges
        self.clock = clock or SystemClock()
        self._events = events
        self._source_factory = source_factory
        self._notifier_factory = notifier_factory or (
            lambda am_settings: AlertmanagerNotifier(am_settings, clock=self.clock))
        self.health_store = HealthStore()
        self.alert_store = AlertStore()
        self._lock = threading.Lock()
        self._clients_lock = threading.Lock()
        self._latest: dict[tuple[str, str], VersionHealth] = {}
        self._evaluated_at: datetime | None = None
        self._source_error: str | None = None
        self._exported: set[tuple[str, str]] = set()
        self._source: PrometheusSource | None = None
        self._source_settings: PrometheusSettings | None = None
        self._notifier: AlertmanagerNotifier | None = None
        self._notifier_settings: AlertmanagerSettings | None = None
        self._deliveries: dict[str, DeliveryResult] = {}

    # -- clients, rebuilt when a SIGHUP reload changed their settings ------------------------------

    def source(self) -> PrometheusSource:
        settings = self._settings().prometheus
        with self._clients_lock:
            if self._source is None or settings != self._source_settings:
                if self._source is not None:
                    self._source.close()
                self._source, self._source_settings = self._source_factory(settings), settings
            return self._source

    def notifier(self) -> AlertmanagerNotifier:
        """The one notifier of this daemon (drift and canary alerts go through it too, see :meth:`send`). A reload that
        changes ``[alertmanager]`` starts a new one: notifications queued for the old target are dropped,
        firing ones come back with the next re-send."""
        settings = self._settings().alertmanager
        with self._clients_lock:
            if self._notifier is None or settings != self._notifier_settings:
                if self._notifier is not None:
                    self._notifier.close()
                self._notifier = self._notifier_factory(settings)
                self._notifier_settings = settings
            return self._notifier

    # -- the health job ---------------------------------------------------------------------------

    def deployed(self) -> tuple[list[tuple[str, str, str]], dict[tuple[str, str], float]]:
        """(model, version, role) of every production and canary version, and their baseline accuracy."""
        targets: list[tuple[str, str, str]] = []
        baselines: dict[tuple[str, str], float] = {}
        with self.registry.read() as tx:
            for deployment in sorted(tx.list_deployments(), key=lambda d: d.model):
                for role, version in (("production", deployment.production_version),
                                      ("canary", deployment.canary_version)):
                    if not version or any(t[:2] == (deployment.model, version) for t in targets):
                        continue
                    targets.append((deployment.model, version, role))
                    found = tx.get_version(deployment.model, version)
                    accuracy = _number(found.metrics.get("accuracy")) if found else None
                    if accuracy is not None:
                        baselines[(deployment.model, version)] = accuracy
        return targets, baselines

    def run_health(self) -> CycleReport:
        """One health cycle: evaluate every deployed version, store, export and announce the results."""
        settings = self._settings()
        started = time.monotonic()
        now = self.clock.now()
        targets, baselines = self.deployed()
        roles = {(m, v): role for m, v, role in targets}
        fleet: Any
        error: MetricsSourceError | None = None
        queries = 0
        if targets:
            try:
                fleet = self.source().fetch_fleet(now)
                queries = fleet.queries
            except MetricsSourceError as caught:
                fleet = error = caught
        else:
            fleet = None
        results = (evaluate_fleet(fleet, list(roles), settings.sla, baselines, now) if targets else ())
        current = [VersionHealth(r, roles[(r.model, r.version)]) for r in results]
        if current:
            self.health_store.record(self.registry, [v.result for v in current])
        with self._lock:
            previous = self._latest
            self._latest = {(v.result.model, v.result.version): v for v in current}
            self._evaluated_at = now
            self._source_error = None if error is None else f"{type(error).__name__}: {error}"
        self._export(current, now)
        for item in current:
            key = (item.result.model, item.result.version)
            before = previous.get(key)
            if before is None or before.result.status is not item.result.status:
                self._publish("health", {
                    "model": item.result.model, "version": item.result.version, "role": item.role,
                    "status": item.result.status.value, "previous": before.result.status.value if before else None,
                    "reason": item.result.reason, "critical": item.critical})
        counts = {s.value: sum(1 for v in current if v.result.status is s) for s in HealthStatus}
        took = time.monotonic() - started
        data = {"versions": len(current), **counts, "queries": queries}
        if not targets:
            return CycleReport(True, "no deployed versions", data)
        tally = ", ".join(f"{counts[s.value]} {s.value}" for s in HealthStatus)
        if error is not None:
            return CycleReport(False, f"{type(error).__name__}: {error}; {len(current)} versions marked unknown",
                              {**data, "error": str(error)})
        return CycleReport(True, f"{len(current)} versions: {tally} ({queries} queries, {took:.2f}s)", data)

    def _export(self, current: list[VersionHealth], now: datetime) -> None:
        metrics = self.gauges
        seen: set[tuple[str, str]] = set()
        for item in current:
            r = item.result
            seen.add((r.model, r.version))
            for status in HealthStatus:
                metrics.health_status.labels(r.model, r.version, status.value).set(
                    1.0 if r.status is status else 0.0)
            for check in r.checks:
                if check.value is None:
                    with contextlib.suppress(KeyError):
                        metrics.health_check_value.remove(r.model, r.version, check.name)
                else:
                    metrics.health_check_value.labels(r.model, r.version, check.name).set(check.value)
        for model, version in self._exported - seen:  # no longer deployed: drop its series
            for status in HealthStatus:
                with contextlib.suppress(KeyError):
                    metrics.health_status.remove(model, version, status.value)
            for name in ("request_rate", "latency_p95", "latency_p99", "error_rate", "availability", "accuracy"):
                with contextlib.suppress(KeyError):
                    metrics.health_check_value.remove(model, version, name)
        self._exported = seen
        metrics.health_last_cycle.set(now.timestamp())

    # -- the alerts job -----------------------------------------------------------------------------

    def run_alerts(self) -> CycleReport:
        """Step the health alert rules over the latest results and send the notifications."""
        with self._lock:
            evaluated = self._evaluated_at is not None
            results = [v.result for v in self._latest.values()]
        if not evaluated:
            # Before the first health cycle there is nothing to judge by; stepping now would resolve
            # every alert reloaded from the registry after a restart.
            return CycleReport(True, "waiting for the first health cycle")
        settings = self._settings()
        now = self.clock.now()
        degraded_rule, unknown_rule = health_rules(settings.jobs.health_seconds)
        conditions = health_conditions(results, degraded_rule=degraded_rule, unknown_rule=unknown_rule)
        with self.registry.write() as tx:
            before = self.alert_store.load(tx)
            silences = self.alert_store.silences(tx, active_at=now)
            after, notifications = step(before, conditions, now, silences=silences, policy=settings.alerts,
                                        evaluated_sources=(AlertSource.HEALTH,))
            transitions = self.alert_store.apply(tx, before, after, now)
        for transition in transitions:
            self._publish_alert(transition.to_json())
        for phase in AlertPhase:
            self.gauges.alerts.labels(phase.value).set(sum(1 for a in after if a.phase is phase))
        firing = sum(1 for a in after if a.phase is AlertPhase.FIRING)
        pending = sum(1 for a in after if a.phase is AlertPhase.PENDING)
        summary = f"{firing} firing, {pending} pending, {len(transitions)} changes"
        data: dict[str, Any] = {"firing": firing, "pending": pending, "notifications": len(notifications)}
        notifier = self.notifier()
        if not notifier.enabled:
            return CycleReport(True, summary, data)
        # Alertmanager down costs at most its timeout here, in the alerts job, never in the health job.
        deliveries = notifier.send(notifications)
        failed = []
        for delivery in deliveries:
            self._deliveries[delivery.target] = delivery
            self.gauges.alert_deliveries.labels(delivery.target, "ok" if delivery.ok else "failed").inc()
            queued = notifier.queued(delivery.target)
            self.gauges.alert_queued.labels(delivery.target).set(queued)
            if not delivery.ok:
                failed.append(f"{delivery.target}: {delivery.error} ({queued} queued for retry)")
        data["sent"] = sum(d.sent for d in deliveries)
        if failed:
            return CycleReport(False, f"{summary}; delivery failed: {'; '.join(failed)}", data)
        return CycleReport(True, f"{summary}, {data['sent']} sent", data)

    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self._events is not None:
            self._events(kind, payload)

    def _publish_alert(self, payload: dict[str, Any]) -> None:
        self._publish("alert", payload)

    def send(self, notifications: Sequence[Notification]) -> None:
        """Other services' alerts (drift, canary): send through this daemon's notifier when configured."""
        notifier = self.notifier()
        if notifier.enabled:
            notifier.send(notifications)

    # -- reads for the API ------------------------------------------------------------------------

    def health(self, model: str | None = None) -> HealthReport:
        """The latest result of every deployed version (of ``model`` only, when given)."""
        with self._lock:
            items = sorted(self._latest.values(), key=lambda v: (v.result.model, v.role != "production",
                                                                 v.result.version))
            evaluated_at, source_error = self._evaluated_at, self._source_error
        if model is not None:
            items = [v for v in items if v.result.model == model]
        settings = self._settings()
        return HealthReport(versions=tuple(items), evaluated_at=evaluated_at,
                            health_seconds=settings.jobs.health_seconds, prometheus_url=settings.prometheus.url,
                            source_error=source_error)

    def alerts(self, *, include_resolved: bool) -> AlertsReport:
        """Pending and firing alerts of every source (resolved ones too when asked), and the deliveries."""
        alerts = self.alert_store.load(self.registry)
        if not include_resolved:
            alerts = [a for a in alerts if a.phase is not AlertPhase.RESOLVED]
        notifier = self._notifier
        delivery = {
            target: Delivery(result, notifier.queued(target) if notifier else 0)
            for target, result in self._deliveries.items()
        }
        return AlertsReport(alerts=tuple(alerts), delivery=delivery)

    def silences(self, *, include_expired: bool) -> list[Silence]:
        now = self.clock.now()
        found = self.alert_store.silences(self.registry, active_at=None if include_expired else now)
        return found

    def summary(self) -> HealthSummary:
        """``/v1/status`` section: worst status per model, and its versions."""
        with self._lock:
            items = list(self._latest.values())
            evaluated_at = self._evaluated_at
        order = {HealthStatus.DEGRADED: 2, HealthStatus.UNKNOWN: 1, HealthStatus.HEALTHY: 0}
        models: dict[str, list[VersionHealth]] = {}
        for item in items:
            models.setdefault(item.result.model, []).append(item)
        return HealthSummary(evaluated_at=evaluated_at, models=tuple(
            ModelHealth(name, max((v.result.status for v in versions), key=order.__getitem__), tuple(versions))
            for name, versions in sorted(models.items())))

    # -- audited actions ----------------------------------------------------------------------------

    def ack(self, alert_id: str, *, actor: Actor, for_seconds: float | None, comment: str,
            reason: str) -> AlertState:
        now = self.clock.now()
        with self.registry.write() as tx:
            acked = acknowledge(self.alert_store.load(tx), alert_id, by=actor.user, now=now,
                                for_seconds=for_seconds, comment=comment)
            target = find_alert(acked, alert_id)
            self.alert_store.save(tx, target, now)
            self.alert_store.record_history(tx, target, f"{target.phase.value}:ack", now)
            until = "until it resolves" if for_seconds is None else f"for {for_seconds:g}s"
            audit_id = tx.append_audit(
                actor=actor, action="alert.ack", model=target.labels.get("model"), from_version=None,
                to_version=target.labels.get("model_version"), reason=reason or comment, outcome=Outcome.OK,
                detail=f"alert {target.id} {target.rule} ({target.phase.value}) acked {until}", now=now)
        self._publish("audit", {"id": audit_id, "action": "alert.ack", "model": target.labels.get("model"),
                                         "to_version": target.labels.get("model_version")})
        self._publish_alert({**AlertTransition(target, target.phase.value, target.phase.value).to_json(),
                             "ack": target.ack.to_json() if target.ack else None})
        return target

    def silence(self, matchers: list[str], *, actor: Actor, for_seconds: float, comment: str,
                reason: str) -> Silence:
        now = self.clock.now()
        parsed = [Matcher.parse(m) for m in matchers]
        created = new_silence(parsed, author=actor.user, comment=comment, now=now, duration_seconds=for_seconds)
        model = next((m.value for m in parsed if m.name == "model" and m.op == "="), None)
        with self.registry.write() as tx:
            self.alert_store.add_silence(tx, created)
            audit_id = tx.append_audit(
                actor=actor, action="alert.silence", model=model, from_version=None, to_version=None,
                reason=reason or comment, outcome=Outcome.OK,
                detail=f"silence {created.id} {' '.join(str(m) for m in parsed)} until {utc_iso(created.ends_at)}",
                now=now)
        self._publish("audit", {"id": audit_id, "action": "alert.silence", "model": model})
        self._publish("silence", created.to_json())
        return created

    def expire(self, silence_id: str, *, actor: Actor, reason: str) -> Silence:
        now = self.clock.now()
        with self.registry.write() as tx:
            expired = self.alert_store.expire_silence(tx, silence_id, now)
            model = next((m.value for m in expired.matchers if m.name == "model" and m.op == "="), None)
            audit_id = tx.append_audit(
                actor=actor, action="alert.unsilence", model=model, from_version=None, to_version=None,
                reason=reason, outcome=Outcome.OK, detail=f"silence {expired.id} expired", now=now)
        self._publish("audit", {"id": audit_id, "action": "alert.unsilence", "model": model})
        self._publish("silence", expired.to_json())
        return expired
