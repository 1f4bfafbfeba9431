"""Canary progression in the daemon: the level-triggered job, the API, SSE events and gauges.

The job runs every ``[jobs] canary_seconds`` (and once at start, before the first tick converges
whatever a killed daemon left behind). Endpoints::

    GET  /v1/canaries[?model=]                         latest canary per model (status documents)
    POST /v1/canaries {model, version, reason, overrides}
    POST /v1/canaries/{model}/{pause|resume|promote|abort|approve} {reason}

The service is built by :func:`opsctld.wiring.build_services`: the actuator and the hooks come from
``[actuators]`` (:class:`ActuatorSettings`; default: the routing table), the accuracy gate counts labels
in the drift service's live window. After every tick the canary's alert conditions are stepped through
the alert engine (source ``canary``) and sent with the health service's Alertmanager notifier, like
drift alerts.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opsctl.core.canary import CommandKind, Phase
from opsctl.errors import UsageError
from opsctld.api import MODEL_NAME, VERSION, Endpoint, actor_for, nullable, read_json_body
from opsctld.jobs import JobOutcome, JobSpec
from opsctld.main import Subsystem
from opsctld.state import DaemonState

_PHASES = [p.value for p in Phase]


def start(state: DaemonState) -> None:
    state.status_providers["canaries"] = state.services.canary.status


def jobs(state: DaemonState) -> list[JobSpec]:
    service = state.services.canary
    notify = state.services.health.send

    def run() -> JobOutcome:
        result = service.tick()
        service.step_alerts(state.settings.alerts, notify)
        documents = service.status()
        service.export(documents)
        live = {d["model"]: d["phase"] for d in documents if d["active"]}
        return JobOutcome(not result.errors, result.summary(), {"canaries": live})

    return [JobSpec("canary", state.settings.jobs.canary_seconds, run, interval_key="canary_seconds")]


def _daemon(request: Request) -> DaemonState:
    return request.app.state.daemon  # type: ignore[no-any-return]


async def list_canaries(request: Request) -> Response:
    service = _daemon(request).services.canary
    documents = await run_in_threadpool(service.status, request.query_params.get("model") or None)
    return JSONResponse(documents)


async def start_canary(request: Request) -> Response:
    service = _daemon(request).services.canary
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
    service.export([document])
    return JSONResponse(document, status_code=201)


async def canary_command(request: Request) -> Response:
    service = _daemon(request).services.canary
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
    service.export([document])
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
                 request_body={"type": "object", "required": ["model", "version"], "additionalProperties": False,
                               "properties": {"model": MODEL_NAME, "version": VERSION, "reason": nullable(_STR),
                                              "overrides": nullable({"type": "object",
                                                                     "description": "[canary] policy keys"})}},
                 response=_CANARY),
        Endpoint("POST", "/v1/canaries/{model}/{command}", canary_command,
                 "pause, resume, promote (skip the remaining stages), abort (weight 0 now) or approve (audited)",
                 request_body={"type": "object", "additionalProperties": False,
                               "properties": {"reason": nullable(_STR)}},
                 schemas={"command": {"enum": [kind.value for kind in CommandKind if kind is not CommandKind.START]}},
                 response=_CANARY),
    ],
)
