"""The daemon's services, built once at start from explicit adapters and handed to every subsystem.

The services depend on each other through plain callables, never through the subsystems:

* drift and canary send their alert notifications through health's Alertmanager notifier;
* the canary's accuracy gate counts labels in drift's live window;
* drift asks retrain for a run when a production version drifts or degrades;
* retrain hands a better candidate to the canary, and the canary tells retrain how it ended.

The last three form a cycle (drift -> retrain -> canary -> drift), so drift's retrain hook looks up
the retrain service when it is called, after :func:`build_services` has built all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.adapters.actuators import Hooks, build_actuator
from opsctl.adapters.alertmanager import AlertmanagerNotifier
from opsctl.adapters.artifact_storage import ArtifactStorage
from opsctl.adapters.canary_gauges import CanaryGauges
from opsctl.adapters.drift_gauges import DriftGauges
from opsctl.adapters.offset_store import RegistryOffsetStore
from opsctl.adapters.prometheus import PrometheusSource
from opsctl.adapters.prometheus_gates import PrometheusGateSource
from opsctl.adapters.registry import Registry
from opsctl.adapters.training import TrainingProcesses
from opsctl.clock import Clock
from opsctl.config import Settings
from opsctl.domain import Actor
from opsctl.services.audit import AuditWatch
from opsctl.services.canary import CanaryService
from opsctl.services.drift import DriftService
from opsctl.services.health import HealthService
from opsctl.services.registry import RegistryService
from opsctl.services.retrain import RetrainService
from opsctl.traffic import traffic_actuator
from opsctld.metrics import DaemonMetrics

log = logging.getLogger("opsctld.wiring")

EventSink = Callable[[str, dict[str, Any]], None]
# Who asks for a retraining run when drift or a performance drop is found: the job that found it.
RETRAIN_ACTORS = {kind: Actor(user="opsctld", uid=None, via=kind) for kind in ("drift", "performance")}


@dataclass(frozen=True)
class Services:
    """Every use-case service of one daemon, one typed field each."""

    registry: RegistryService
    health: HealthService
    drift: DriftService
    canary: CanaryService
    retrain: RetrainService
    audit: AuditWatch


def _config_dir(settings: Settings) -> Path | None:
    """The folder relative ``[ingest] log_dirs`` are taken from: the config file's."""
    source = settings.source
    if source in ("defaults", "<config>"):
        return None
    return Path(source).resolve().parent


def build_services(settings: Callable[[], Settings], registry: Registry, artifacts: ArtifactStorage, *,
                   clock: Clock, events: EventSink, metrics: DaemonMetrics) -> Services:
    """Build the daemon's services; ``settings`` returns the current (SIGHUP-reloaded) settings."""
    current = settings()
    state_dir = Path(current.daemon.state_dir)
    # A command/webhook actuator moves traffic on every promote and rollback, as in the one-shot CLI.
    registry_service = RegistryService(registry, artifacts, clock=clock, events=events,
                                       actuator=traffic_actuator(current))
    health = HealthService(registry, settings=settings, gauges=metrics, clock=clock, events=events,
                           source_factory=PrometheusSource,
                           notifier_factory=lambda alertmanager: AlertmanagerNotifier(alertmanager, clock=clock))

    def retrain_trigger(model: str, kind: str, reason: str) -> None:
        actor = RETRAIN_ACTORS.get(kind, Actor("opsctld", None, kind))
        if settings().retrain.for_model(model) is None:
            # Not retrained automatically: the story says so instead of ending at the drift.
            retrain.skip(model, kind, reason, actor, f"{model} has no [retrain.models.{model}] entry")
            return
        result = retrain.trigger(model, kind, reason, actor)
        log.info("retrain requested", extra={"model": model, "trigger": kind, "verdict": result.verdict.value})

    drift = DriftService(
        registry, artifacts, settings=settings, summaries_dir=state_dir / "summaries",
        offsets=RegistryOffsetStore(registry), clock=clock, events=events,
        gauges=DriftGauges(metrics.registry), notify=health.send, retrain=retrain_trigger,
        config_dir=_config_dir(current))

    actuators = current.actuators

    def read_weight(model: str) -> float | None:
        deployment = registry.get_deployment(model)
        return None if deployment is None else deployment.canary_weight

    canary = CanaryService(
        registry,
        policy=current.canary,
        actuator=build_actuator(actuators, read_weight=read_weight),
        hooks=Hooks(actuators),
        gate_source=PrometheusGateSource(settings, registry, labels=drift.label_counts),
        clock=clock,
        events=events,
        hook_max_attempts=actuators.hook_max_attempts,
        gauges=CanaryGauges(metrics.registry),
        # Looked up when a canary ends, after the retrain service below exists.
        on_end=lambda record: retrain.canary_ended(record.model, record.state.canary_version,
                                                   record.state.phase.value, record.state.reason),
    )

    def start_canary(model: str, version: str, actor: Actor, reason: str) -> dict[str, Any]:
        record = canary.start(model, version, actor=actor, reason=reason)
        return canary.status_document(record)

    retrain = RetrainService(
        registry, artifacts, registry_service, policy=lambda: settings().retrain, workdir=state_dir / "retrain",
        clock=clock, events=events, start_canary=start_canary, processes=TrainingProcesses())
    audit = AuditWatch(registry, clock=clock, policy=lambda: settings().alerts, notify=health.send)
    return Services(registry=registry_service, health=health, drift=drift, canary=canary, retrain=retrain,
                    audit=audit)
