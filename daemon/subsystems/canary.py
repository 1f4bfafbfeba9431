"""Canary progression in the daemon: the level-triggered job, the API, SSE events and gauges.

The job runs every ``[jobs] canary_seconds`` (and once at start, before the first tick converges
whatever a killed daemon left behind). Endpoints::

    GET  /v1/canaries[?model=]                         latest canary per model (status documents)
    POST /v1/canaries {model, version, reason, overrides}
    POST /v1/canaries/{model}/{pause|resume|promote|abort|approve} {reason}

The actuator and the hooks come from ``[actuators]`` (:class:`ActuatorSettings`; default: the
routing table). The accuracy gate counts labels in the drift subsystem's live window. After every
tick the canary's alert conditions are stepped through the alert engine (source ``canary``) and
sent with the health subsystem's Alertmanager notifier, like drift alerts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opsctl.adapters.actuators import ActuatorSettings, Hooks, build_actuator
from opsctl.canary_service import CanaryService, PrometheusGateSource
from opsctl.core.canary import CommandKind, Phase
from opsctl.errors import MetricsSourceError, UsageError
from opsctld.api import Endpoint, actor_for, read_json_body
from opsctld.jobs import JobOutcome, JobSpec
from opsctld.main import Subsystem
from opsctld.state import DaemonState

log = logging.getLogger("opsctld.canary")

_PHASES = [p.value for p in Phase]
_VERDICT_VALUE = {"pass": 1.0, "inconclusive": 0.0, "fail": -1.0, "not_applicable": float("nan")}


class CanaryMetrics:
    """Gauges for the TUI and dashboards: stage, weight, failed checks, every gate's verdict and value."""

    def __init__(self, state: DaemonState) -> None:
        r = state.metrics.registry
        self.weight = Gauge("opsctl_canary_weight", "Percent of traffic the canary version has",
                            ["model", "canary_version"], registry=r)
        self.stage = Gauge("opsctl_canary_stage", "Current stage (1-based) of the model's canary", ["model"],
                           registry=r)
        self.phase = Gauge("opsctl_canary_phase", "1 for the canary's current phase", ["model", "phase"],
                           registry=r)
        self.failed = Gauge("opsctl_canary_failed_checks", "Failed evaluations so far", ["model"], registry=r)
        self.verdict = Gauge("opsctl_canary_gate_verdict",
                             "Last verdict per gate: 1 pass, 0 inconclusive, -1 fail, NaN not applicable",
                             ["model", "gate"], registry=r)
        self.value = Gauge("opsctl_canary_gate_value", "The number behind the gate's last verdict",
                           ["model", "gate"], registry=r)
        self._weight_labels: dict[str, str] = {}

    def update(self, documents: list[dict[str, Any]]) -> None:
        for doc in documents:
            model = doc["model"]
            old = self._weight_labels.get(model)
            if old is not None and old != doc["canary_version"]:
                self.weight.remove(model, old)
            self._weight_labels[model] = doc["canary_version"]
            self.weight.labels(model, doc["canary_version"]).set(doc["weight"])
            self.stage.labels(model).set(doc["stage"])
            self.failed.labels(model).set(doc["failed_checks"])
            for phase in _PHASES:
                self.phase.labels(model, phase).set(1.0 if doc["phase"] == phase else 0.0)
            for gate in doc["gates"]:
                self.verdict.labels(model, gate["name"]).set(_VERDICT_VALUE.get(gate["verdict"], 0.0))
                value = gate.get("value")
                self.value.labels(model, gate["name"]).set(float("nan") if value is None else float(value))


def actuator_settings(state: DaemonState) -> ActuatorSettings:
    return state.settings.actuators


def _label_counter(state: DaemonState) -> Any:
    # Looked up when counted, not imported: the drift subsystem reaches the canary through retrain.
    def count(model: str, version: str, since: datetime) -> tuple[int, int]:
        drift = state.services.get("drift")
        if drift is None:
            raise MetricsSourceError("the drift subsystem, which counts labels, has not started in this daemon")
        return drift.label_counts(model, version, since)  # type: ignore[no-any-return]

    return count


def _notify(state: DaemonState) -> Any:
    from opsctld.subsystems.health import alert_sender

    return alert_sender(state)


def start(state: DaemonState) -> None:
    settings = actuator_settings(state)
    registry = state.registry

    def read_weight(model: str) -> float | None:
        deployment = registry.get_deployment(model)
        return None if deployment is None else deployment.canary_weight

    service = CanaryService(
        registry,
        policy=state.settings.canary,
        actuator=build_actuator(settings, read_weight=read_weight),
        hooks=Hooks(settings),
        gate_source=PrometheusGateSource(lambda: state.settings, registry, labels=_label_counter(state)),
        clock=state.clock,
        events=state.bus.publish,
        hook_max_attempts=settings.hook_max_attempts,
    )
    metrics = CanaryMetrics(state)

    def provider() -> list[dict[str, Any]]:
        return service.status()

    state.status_providers["canaries"] = provider
    state.services["canary"] = (service, metrics)




def _get(state: DaemonState) -> tuple[CanaryService, CanaryMetrics]:
    return state.services["canary"]  # type: ignore[no-any-return]


def jobs(state: DaemonState) -> list[JobSpec]:
    service, metrics = _get(state)

    notify = _notify(state)

    def run() -> JobOutcome:
        result = service.tick()
        service.step_alerts(state.settings.alerts, notify)
        documents = service.status()
        metrics.update(documents)
        live = {d["model"]: d["phase"] for d in documents if d["active"]}
        return JobOutcome(not result.errors, result.summary(), {"canaries": live})

    return [JobSpec("canary", state.settings.jobs.canary_seconds, run, interval_key="canary_seconds")]


def _daemon(request: Request) -> DaemonState:
    return request.app.state.daemon  # type: ignore[no-any-return]


async def list_canaries(request: Request) -> Response:
    state = _daemon(request)
    service, _metrics = _get(state)
    documents = await run_in_threadpool(service.status, request.query_params.get("model") or None)
    return JSONResponse(documents)


async def start_canary(request: Request) -> Response:
    state = _daemon(request)
    service, metrics = _get(state)
    body = await read_json_body(request)
    model, version = body.get("model"), body.get("version")
    if not isinstance(model, str) or not isinstance(version, str) or not model or not version:
        raise UsageError("'model' and 'version' are required strings")
    overrides = body.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise UsageError("'overrides' must be an object of policy keys")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise UsageError("'reason' must be a string")
    record = await run_in_threadpool(service.start, model, version, actor=actor_for(request), reason=reason,
                                     overrides=overrides)
    document = await run_in_threadpool(service.status_document, record)
    metrics.update([document])
    return JSONResponse(document, status_code=201)


async def canary_command(request: Request) -> Response:
    state = _daemon(request)
    service, metrics = _get(state)
    body = await read_json_body(request)
    name = request.path_params["command"]
    try:
        kind = CommandKind(name)
    except ValueError:
        raise UsageError(f"unknown canary command {name!r}: pause, resume, promote, abort or approve") from None
    if kind is CommandKind.START:
        raise UsageError("start a canary with POST /v1/canaries")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise UsageError("'reason' must be a string")
    record = await run_in_threadpool(service.command, request.path_params["model"], kind,
                                     actor=actor_for(request), reason=reason)
    document = await run_in_threadpool(service.status_document, record)
    metrics.update([document])
    return JSONResponse(document)


_STR = {"type": "string"}
_CANARY = {"type": "object", "required": ["model", "canary_version", "state", "stage", "weight", "failed_checks",
                                          "gates"],
           "properties": {"model": _STR, "canary_version": _STR, "state": {"enum": _PHASES},
                          "stage": {"type": "integer"}, "weight": {"type": "number"},
                          "failed_checks": {"type": "integer"}, "gates": {"type": "array"}}}

SUBSYSTEM = Subsystem(
    name="canary",
    jobs=jobs,
    start=start,
    endpoints=[
        Endpoint("GET", "/v1/canaries", list_canaries, "Latest canary per model: state, stage, weight, gate verdicts",
                 response={"type": "array", "items": _CANARY}, query=(("model", "only this model", False),)),
        Endpoint("POST", "/v1/canaries", start_canary, "Start a canary of a version (audited)",
                 request_body={"type": "object", "required": ["model", "version"],
                               "properties": {"model": _STR, "version": _STR, "reason": _STR,
                                              "overrides": {"type": "object"}}},
                 response=_CANARY),
        Endpoint("POST", "/v1/canaries/{model}/{command}", canary_command,
                 "pause, resume, promote (skip the remaining stages), abort (weight 0 now) or approve (audited)",
                 request_body={"type": "object", "properties": {"reason": _STR}}, response=_CANARY),
    ],
)
