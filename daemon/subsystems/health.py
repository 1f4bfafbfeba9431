"""SLA health checks and the alert engine, wired into the daemon (:mod:`opsctl.services.health` does the work).

Two jobs:

* ``health`` (every ``[jobs] health_seconds``): :meth:`~opsctl.services.health.HealthService.run_health`;
  results are announced as SSE ``health`` events when a version's status changes and exported on
  ``/metrics``.
* ``alerts`` (every ``[jobs] alerts_seconds``): :meth:`~opsctl.services.health.HealthService.run_alerts`,
  which also pushes to Alertmanager when ``[alertmanager] url`` is set.

Acks and silences are production actions: each is audited (``alert.ack``, ``alert.silence``,
``alert.unsilence``) with the caller from the socket's peer credentials.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opsctl.errors import NotFoundError, UsageError
from opsctl.services.health import CycleReport, HealthService
from opsctld.api import Endpoint, actor_for, nullable, read_json_body
from opsctld.jobs import JobOutcome, JobSpec
from opsctld.main import Subsystem
from opsctld.state import DaemonState


def _outcome(report: CycleReport) -> JobOutcome:
    return JobOutcome(report.ok, report.summary, report.data)


def _start(state: DaemonState) -> None:
    state.status_providers["health"] = lambda: state.services.health.summary().to_json()


def _jobs(state: DaemonState) -> list[JobSpec]:
    service = state.services.health
    return [
        JobSpec("health", state.settings.jobs.health_seconds, lambda: _outcome(service.run_health()),
                interval_key="health_seconds"),
        JobSpec("alerts", state.settings.jobs.alerts_seconds, lambda: _outcome(service.run_alerts()),
                interval_key="alerts_seconds"),
    ]


# -- endpoints ------------------------------------------------------------------------------------


def _service(request: Request) -> HealthService:
    return request.app.state.daemon.services.health  # type: ignore[no-any-return]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in {"1", "true", "yes"}


def _seconds(body: dict[str, Any], key: str, *, required: bool) -> float | None:
    value = body.get(key)
    if value is None:
        if required:
            raise UsageError(f"{key!r} is required (seconds)")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{key!r} must be a positive number of seconds, got {value!r}")
    return float(value)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{key!r} must be a string")
    return value


async def get_health(request: Request) -> Response:
    service = _service(request)
    model = request.query_params.get("model") or None
    if model is not None and await run_in_threadpool(service.registry.get_deployment, model) is None:
        raise NotFoundError("model", model, "see `opsctl models`")
    return JSONResponse(service.health(model).to_json())


async def get_alerts(request: Request) -> Response:
    service = _service(request)
    report = await run_in_threadpool(lambda: service.alerts(include_resolved=_flag(request, "all")))
    return JSONResponse(report.to_json())


async def ack_alert(request: Request) -> Response:
    service = _service(request)
    body = await read_json_body(request)
    acked = await run_in_threadpool(
        lambda: service.ack(request.path_params["id"], actor=actor_for(request),
                            for_seconds=_seconds(body, "for_seconds", required=False),
                            comment=_text(body, "comment"), reason=_text(body, "reason")))
    return JSONResponse(acked.to_json())


async def create_silence(request: Request) -> Response:
    service = _service(request)
    body = await read_json_body(request)
    matchers = body.get("matchers")
    if not isinstance(matchers, list) or not matchers or not all(isinstance(m, str) for m in matchers):
        raise UsageError("'matchers' must be a non-empty list of 'name=value' strings")
    comment = _text(body, "comment")
    if not comment.strip():
        raise UsageError("'comment' is required: say why the alerts are silenced")
    for_seconds = _seconds(body, "for_seconds", required=True)
    assert for_seconds is not None
    created = await run_in_threadpool(
        lambda: service.silence(matchers, actor=actor_for(request), for_seconds=for_seconds, comment=comment,
                                reason=_text(body, "reason")))
    return JSONResponse(created.to_json())  # 200: the OpenAPI table documents 201 only for register


async def list_silences(request: Request) -> Response:
    service = _service(request)
    found = await run_in_threadpool(lambda: service.silences(include_expired=_flag(request, "all")))
    return JSONResponse({"silences": [s.to_json() for s in found]})


async def expire_silence(request: Request) -> Response:
    service = _service(request)
    body = await read_json_body(request)
    expired = await run_in_threadpool(
        lambda: service.expire(request.path_params["id"], actor=actor_for(request), reason=_text(body, "reason")))
    return JSONResponse(expired.to_json())


_STR = {"type": "string"}
_TEN_YEARS = 10 * 365 * 86400
_NUM_OR_NULL = {"type": ["number", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_CHECK = {"type": "object", "required": ["name", "value", "threshold", "unit", "verdict", "reason"],
          "properties": {"name": {"enum": ["request_rate", "latency_p95", "latency_p99", "error_rate",
                                           "availability", "accuracy"]},
                         "value": _NUM_OR_NULL, "threshold": _NUM_OR_NULL,
                         "unit": {"enum": ["req/s", "ms", "%", "ratio"]},
                         "verdict": {"enum": ["pass", "fail", "unknown", "skipped"]}, "reason": _STR}}
_VERSION_HEALTH = {"type": "object",
                   "required": ["model", "version", "role", "status", "reason", "critical", "checks", "evaluated_at"],
                   "properties": {"model": _STR, "version": _STR, "role": {"enum": ["production", "canary"]},
                                  "status": {"enum": ["healthy", "degraded", "unknown"]}, "reason": _STR,
                                  "critical": {"type": "boolean"}, "checks": {"type": "array", "items": _CHECK},
                                  "sample_age_seconds": _NUM_OR_NULL, "evaluated_at": _TIME}}
_HEALTH = {"type": "object", "required": ["models", "evaluated_at", "prometheus"],
           "properties": {"models": {"type": "array", "items": _VERSION_HEALTH}, "evaluated_at": _TIME_OR_NULL,
                          "health_seconds": {"type": "number"},
                          "prometheus": {"type": "object", "properties": {
                              "url": _STR, "ok": {"type": "boolean"}, "error": {"type": ["string", "null"]}}}}}
_ACK = {"type": ["object", "null"], "properties": {"by": _STR, "at": _TIME, "until": _TIME_OR_NULL, "comment": _STR}}
_ALERT = {"type": "object",
          "required": ["id", "fingerprint", "rule", "severity", "source", "state", "labels", "starts_at"],
          "properties": {"id": _STR, "fingerprint": _STR, "rule": _STR,
                         "severity": {"enum": ["info", "warning", "critical"]},
                         "source": {"enum": ["health", "drift", "canary", "job"]},
                         "state": {"enum": ["pending", "firing", "resolved"]},
                         "labels": {"type": "object", "additionalProperties": _STR},
                         "annotations": {"type": "object", "additionalProperties": _STR}, "summary": _STR,
                         "value": _NUM_OR_NULL, "starts_at": _TIME, "fired_at": _TIME_OR_NULL,
                         "resolved_at": _TIME_OR_NULL, "ack": _ACK}}
_DELIVERY = {"type": "object", "properties": {"target": _STR, "ok": {"type": "boolean"}, "sent": {"type": "integer"},
                                              "at": _TIME, "error": _STR, "queued": {"type": "integer"}}}
_SILENCE = {"type": "object", "required": ["id", "matchers", "author", "comment", "starts_at", "ends_at"],
            "properties": {"id": _STR, "matchers": {"type": "array", "items": _STR}, "author": _STR,
                           "comment": _STR, "starts_at": _TIME, "ends_at": _TIME}}

SUBSYSTEM = Subsystem(
    name="health",
    jobs=_jobs,
    start=_start,
    endpoints=[
        Endpoint("GET", "/v1/health", get_health,
                 "Latest SLA health of every deployed version (production and canary), with each check",
                 response=_HEALTH, query=(("model", "only this model", False),)),
        Endpoint("GET", "/v1/alerts", get_alerts, "Pending and firing alerts (resolved ones too with all=1)",
                 response={"type": "object", "required": ["alerts", "delivery"],
                           "properties": {"alerts": {"type": "array", "items": _ALERT},
                                          "delivery": {"type": "object", "additionalProperties": _DELIVERY}}},
                 query=(("all", "1: include resolved alerts", False),)),
        Endpoint("POST", "/v1/alerts/{id}/ack", ack_alert,
                 "Acknowledge an alert (id: at least 6 leading hex digits); notifications stop, state moves on"
                 " (audited as alert.ack)",
                 request_body={"type": "object", "additionalProperties": False, "properties": {
                     "for_seconds": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": _TEN_YEARS,
                                     "description": "default: until the alert resolves"},
                     "comment": nullable(_STR), "reason": nullable(_STR)}},
                 schemas={"id": {"type": "string", "pattern": "^[0-9a-fA-F]{6,64}$"}},
                 response=_ALERT),
        Endpoint("POST", "/v1/silences", create_silence,
                 "Silence notifications of every alert matching all matchers (audited as alert.silence)",
                 request_body={"type": "object", "required": ["matchers", "for_seconds", "comment"],
                               "additionalProperties": False,
                               "properties": {"matchers": {"type": "array", "minItems": 1, "items": {
                                   "type": "string", "pattern": "^\\s*[a-zA-Z_][a-zA-Z0-9_]*\\s*(=~|!~|!=|=)"},
                                                           "description": "name=value, name!=value, name=~re,"
                                                                          " name!~re"},
                                              "for_seconds": {"type": "number", "exclusiveMinimum": 0,
                                                              "maximum": _TEN_YEARS},
                                              "comment": {"type": "string", "pattern": "\\S",
                                                          "description": "why the alerts are silenced"},
                                              "reason": nullable(_STR)}},
                 response=_SILENCE),
        Endpoint("GET", "/v1/silences", list_silences, "Silences in force (all=1: expired ones too)",
                 response={"type": "object", "required": ["silences"],
                           "properties": {"silences": {"type": "array", "items": _SILENCE}}},
                 query=(("all", "1: include expired silences", False),)),
        Endpoint("POST", "/v1/silences/{id}/expire", expire_silence,
                 "End a silence now (audited as alert.unsilence)",
                 request_body={"type": "object", "additionalProperties": False,
                               "properties": {"reason": nullable(_STR)}},
                 response=_SILENCE),
    ],
)
