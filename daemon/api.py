"""The daemon's HTTP+JSON API (Starlette), served on the Unix socket and optionally on TCP.

Endpoints are declared once in :data:`ENDPOINTS`; the router and the OpenAPI
document are both built from that table, so the document cannot drift from
what is served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opsctl import __version__
from opsctl.clock import utc_iso
from opsctl.domain import Actor, Lineage
from opsctl.errors import (
    ConfirmationRequired,
    ConflictError,
    IntegrityError,
    NotFoundError,
    OpsctlError,
    UsageError,
)
from opsctl.services.registry import RegisterRequest
from opsctld.peercred import PeerCredentials
from opsctld.state import DaemonState

Handler = Callable[[Request], Awaitable[Response]]

_STATUS_FOR_ERROR: tuple[tuple[type[OpsctlError], int], ...] = (
    (UsageError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (IntegrityError, 422),
    (ConfirmationRequired, 428),
)


def _state(request: Request) -> DaemonState:
    return request.app.state.daemon  # type: ignore[no-any-return]


def actor_for(request: Request) -> Actor:
    """The caller, from the kernel's peer credentials (Unix socket) or the token (TCP)."""
    peer: PeerCredentials | None = request.scope.get("state", {}).get("peer")
    if peer is not None:
        return Actor(user=peer.user, uid=peer.uid, via="daemon")
    claimed = request.headers.get("x-opsctl-user", "unknown")
    return Actor(user=f"token:{claimed}", uid=None, via="daemon-tcp")


def error_response(error: OpsctlError) -> JSONResponse:
    status = 500
    for kind, code in _STATUS_FOR_ERROR:
        if isinstance(error, kind):
            status = code
            break
    return JSONResponse({"error": {"type": type(error).__name__, "message": str(error),
                                   "exit_code": error.exit_code}}, status_code=status)


async def read_json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); a UsageError (HTTP 400) otherwise."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise UsageError(f"request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise UsageError("request body must be a JSON object")
    return document


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{key!r} must be a string")
    return value


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{key!r} must be an integer")
    return value


# -- handlers --------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def metrics(request: Request) -> Response:
    state = _state(request)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.state.endpoints))


async def status(request: Request) -> Response:
    state = _state(request)
    deployments = await run_in_threadpool(state.registry.list_deployments)
    now = state.clock.now()
    document: dict[str, Any] = {
        "daemon": {"up": True, "version": __version__, "pid": state.pid, "started_at": utc_iso(state.started_at),
                   "uptime_seconds": round((now - state.started_at).total_seconds(), 3),
                   "config": state.config_path, "socket": state.settings.daemon.socket},
        "jobs": [s.to_json() for s in state.runner.statuses.values()],
        "models": [d.to_json() for d in deployments],
    }
    for name, provider in state.status_providers.items():
        document[name] = await run_in_threadpool(provider)
    return JSONResponse(document)


async def list_models(request: Request) -> Response:
    state = _state(request)
    models = await run_in_threadpool(state.registry.list_models)
    return JSONResponse([m.to_json() for m in models])


async def list_versions(request: Request) -> Response:
    state = _state(request)
    model = request.path_params["model"]
    if await run_in_threadpool(state.registry.get_deployment, model) is None:
        raise NotFoundError("model", model, "see `opsctl models`")
    versions = await run_in_threadpool(state.registry.list_versions, model)
    return JSONResponse([v.to_json() for v in versions])


async def register(request: Request) -> Response:
    state = _state(request)
    body = await read_json_body(request)
    version = _opt_str(body, "version")
    artifact = _opt_str(body, "artifact_path")
    if not version or not artifact:
        raise UsageError("'version' and 'artifact_path' are required")
    metrics_in = body.get("metrics") or {}
    tags_in = body.get("tags") or {}
    if not isinstance(metrics_in, dict) or not isinstance(tags_in, dict):
        raise UsageError("'metrics' and 'tags' must be objects")
    reference = _opt_str(body, "reference_path")
    lineage = body.get("lineage") or {}
    if not isinstance(lineage, dict):
        raise UsageError("'lineage' must be an object")
    register_request = RegisterRequest(
        model=request.path_params["model"], version=version, artifact=Path(artifact), metrics=dict(metrics_in),
        reference=Path(reference) if reference else None, description=_opt_str(body, "description") or "",
        tags={str(k): str(v) for k, v in tags_in.items()}, lineage=Lineage.from_json(lineage))
    created = await run_in_threadpool(state.services.registry.register, register_request, actor=actor_for(request),
                                      reason=_opt_str(body, "reason") or "")
    return JSONResponse(created.to_json(), status_code=201)


async def plan_promote(request: Request) -> Response:
    state = _state(request)
    version = request.query_params.get("version")
    if not version:
        raise UsageError("query parameter 'version' is required")
    plan = await run_in_threadpool(state.services.registry.plan_promote, request.path_params["model"], version)
    return JSONResponse(plan.to_json())


async def plan_rollback(request: Request) -> Response:
    state = _state(request)
    plan = await run_in_threadpool(state.services.registry.plan_rollback, request.path_params["model"],
                                   request.query_params.get("to"))
    return JSONResponse(plan.to_json())


async def promote(request: Request) -> Response:
    state = _state(request)
    body = await read_json_body(request)
    version = _opt_str(body, "version")
    if not version:
        raise UsageError("'version' is required")
    result = await run_in_threadpool(
        state.services.registry.promote, request.path_params["model"], version, actor=actor_for(request),
        reason=_opt_str(body, "reason") or "", expected_generation=_opt_int(body, "expected_generation"))
    return JSONResponse(result.to_json())


async def rollback(request: Request) -> Response:
    state = _state(request)
    body = await read_json_body(request)
    result = await run_in_threadpool(
        state.services.registry.rollback, request.path_params["model"], to=_opt_str(body, "to"),
        actor=actor_for(request),
        reason=_opt_str(body, "reason") or "", expected_generation=_opt_int(body, "expected_generation"))
    return JSONResponse(result.to_json())


async def record_verification(request: Request) -> Response:
    state = _state(request)
    body = await read_json_body(request)
    moved = body.get("moved")
    detail = body.get("detail")
    if not isinstance(moved, bool) or not isinstance(detail, str):
        raise UsageError("'moved' (boolean) and 'detail' (string) are required")
    audit_id = await run_in_threadpool(
        state.services.registry.record_verification, request.path_params["model"],
        from_version=_opt_str(body, "from_version"), to_version=_opt_str(body, "to_version"), moved=moved,
        detail=detail, actor=actor_for(request), reason=_opt_str(body, "reason") or "")
    return JSONResponse({"audit_id": audit_id}, status_code=201)


async def verify(request: Request) -> Response:
    state = _state(request)
    model, version = request.path_params["model"], request.path_params["version"]
    await run_in_threadpool(state.services.registry.verify, model, version)
    return JSONResponse({"model": model, "version": version, "ok": True})


async def history(request: Request) -> Response:
    state = _state(request)
    model = request.query_params.get("model") or None
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        raise UsageError("'limit' must be an integer") from None
    if limit <= 0:
        raise UsageError("--limit must be positive")
    if model is not None and await run_in_threadpool(state.registry.get_deployment, model) is None:
        raise NotFoundError("model", model, "see `opsctl models`")
    events = await run_in_threadpool(state.registry.audit, model, limit=limit)
    return JSONResponse([e.to_json() for e in events])


async def incident_timeline(request: Request) -> Response:
    from opsctl.services.incidents import incident_timeline as build

    state = _state(request)
    try:
        since_seconds = float(request.query_params.get("since_seconds", "7200"))
    except ValueError:
        raise UsageError("'since_seconds' must be a number") from None
    if not since_seconds > 0:
        raise UsageError("'since_seconds' must be positive")
    model = request.query_params.get("model") or None
    timeline = await run_in_threadpool(build, state.settings.daemon.registry_path, state.clock, since_seconds, model)
    return JSONResponse(timeline.to_json())


async def routing(request: Request) -> Response:
    state = _state(request)
    model = request.path_params["model"]
    deployment = await run_in_threadpool(state.registry.get_deployment, model)
    if deployment is None:
        raise NotFoundError("model", model, "see `opsctl models`")
    return JSONResponse({
        "model": model,
        "splits": [{"version": v, "weight": w} for v, w in deployment.splits()],
        "generation": deployment.generation,
        "updated_at": utc_iso(deployment.updated_at) if deployment.updated_at else None,
    })


async def events(request: Request) -> Response:
    state = _state(request)
    last = request.headers.get("last-event-id") or request.query_params.get("since")
    last_id = int(last) if last and last.isdigit() else None

    async def stream() -> Any:
        yield f": opsctl {__version__} event stream\nretry: 1000\n\n"
        async for event in state.bus.subscribe(last_id):
            yield event.to_sse()

    async def with_heartbeat() -> Any:
        # A comment every 15 s keeps proxies and idle SSH tunnels from closing the stream.
        iterator = stream().__aiter__()
        next_item: asyncio.Task[Any] | None = None
        try:
            while True:
                if next_item is None:
                    next_item = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({next_item}, timeout=15)
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                try:
                    item = next_item.result()
                except StopAsyncIteration:
                    return
                next_item = None
                yield item
        finally:
            if next_item is not None:
                next_item.cancel()
            await iterator.aclose()

    return StreamingResponse(with_heartbeat(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# -- the endpoint table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    request_body: dict[str, Any] | None = None
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, description, required)


_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_CHANGE = {"type": "object", "required": ["action", "model", "outcome", "message", "audit_id", "generation"],
           "properties": {"action": _STR, "model": _STR, "from_version": _NULLABLE_STR, "to_version": _NULLABLE_STR,
                          "outcome": {"enum": ["ok", "noop", "conflict", "failed"]}, "message": _STR,
                          "audit_id": {"type": "integer"}, "generation": {"type": "integer"}}}
_PLAN = {"type": "object", "required": ["action", "model", "generation", "noop", "description"],
         "properties": {"action": _STR, "model": _STR, "from_version": _NULLABLE_STR, "to_version": _NULLABLE_STR,
                        "generation": {"type": "integer"}, "noop": {"type": "boolean"}, "description": _STR,
                        "aborts_canary": _NULLABLE_STR}}
_VERSION = {"type": "object", "required": ["model", "version", "status", "sha256", "metrics", "created_at"],
            "properties": {"model": _STR, "version": _STR,
                           "status": {"enum": ["registered", "staging", "canary", "production", "archived"]},
                           "sha256": _STR, "size_bytes": {"type": "integer"}, "artifact": _STR,
                           "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                           "description": _STR, "tags": {"type": "object"}, "lineage": {"type": "object"},
                           "reference": _NULLABLE_STR, "created_at": _STR}}
_AUDIT = {"type": "object", "required": ["id", "at", "actor", "via", "action", "outcome"],
          "properties": {"id": {"type": "integer"}, "at": _STR, "actor": _STR, "uid": {"type": ["integer", "null"]},
                         "via": _STR, "action": _STR, "model": _NULLABLE_STR, "from_version": _NULLABLE_STR,
                         "to_version": _NULLABLE_STR, "reason": _STR, "outcome": _STR, "detail": _STR}}
_CHANGE_BODY = {"type": "object", "properties": {"reason": _STR, "expected_generation": {"type": "integer"}}}

ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/healthz", healthz, "Liveness: the daemon answers"),
    Endpoint("GET", "/metrics", metrics, "The daemon's own Prometheus metrics (text exposition format)",
             response={"type": "string"}),
    Endpoint("GET", "/openapi.json", openapi, "This document"),
    Endpoint("GET", "/v1/status", status, "Daemon, jobs and what each model serves",
             response={"type": "object", "required": ["daemon", "jobs", "models"]}),
    Endpoint("GET", "/v1/models", list_models, "Models with their production and canary versions",
             response={"type": "array", "items": {"type": "object"}}),
    Endpoint("GET", "/v1/models/{model}/versions", list_versions, "Versions of a model",
             response={"type": "array", "items": _VERSION}),
    Endpoint("POST", "/v1/models/{model}/versions", register, "Register a version (the daemon copies the artifact)",
             request_body={"type": "object", "required": ["version", "artifact_path"],
                           "properties": {"version": _STR, "artifact_path": _STR, "reference_path": _STR,
                                          "metrics": {"type": "object"}, "tags": {"type": "object"},
                                          "description": _STR, "lineage": {"type": "object"}, "reason": _STR}},
             response=_VERSION),
    Endpoint("POST", "/v1/models/{model}/versions/{version}/verify", verify,
             "Check a version's artifact against its sha256"),
    Endpoint("GET", "/v1/models/{model}/plan/promote", plan_promote, "What a promote would do, with its generation",
             response=_PLAN, query=(("version", "version to promote", True),)),
    Endpoint("GET", "/v1/models/{model}/plan/rollback", plan_rollback, "What a rollback would do",
             response=_PLAN, query=(("to", "version to roll back to (default: previous)", False),)),
    Endpoint("POST", "/v1/models/{model}/promote", promote, "Put a version into production (audited)",
             request_body={**_CHANGE_BODY, "required": ["version"],
                           "properties": {**_CHANGE_BODY["properties"], "version": _STR}}, response=_CHANGE),
    Endpoint("POST", "/v1/models/{model}/rollback", rollback,
             "Abort a running canary or return to the previous production version (audited)",
             request_body={**_CHANGE_BODY, "properties": {**_CHANGE_BODY["properties"], "to": _STR}},
             response=_CHANGE),
    Endpoint("POST", "/v1/models/{model}/verifications", record_verification,
             "Audit what `opsctl rollback --verify` measured (outcome ok: traffic moved, failed: it did not)",
             request_body={"type": "object", "required": ["moved", "detail"],
                           "properties": {"from_version": _STR, "to_version": _STR, "moved": {"type": "boolean"},
                                          "detail": _STR, "reason": _STR}},
             response={"type": "object", "required": ["audit_id"], "properties": {"audit_id": {"type": "integer"}}}),
    Endpoint("GET", "/v1/history", history, "The audit log, oldest first",
             response={"type": "array", "items": _AUDIT},
             query=(("model", "only this model", False), ("limit", "at most this many (default 50)", False))),
    Endpoint("GET", "/v1/incident/timeline", incident_timeline,
             "Audit log, alert transitions, health changes, canary verdicts, drift and retrain runs in time order",
             response={"type": "object", "required": ["since", "until", "sources", "summary", "entries"]},
             query=(("since_seconds", "how far back (default 7200)", False), ("model", "only this model", False))),
    Endpoint("GET", "/v1/routing/{model}", routing, "Traffic split for the SDK router (weights in percent)",
             response={"type": "object", "required": ["model", "splits"]}),
    Endpoint("GET", "/v1/events", events,
             "Server-Sent Events: audit events, job results, state changes (resume with Last-Event-ID)",
             response={"type": "string"}),
]


def openapi_document(endpoints: list[Endpoint] | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints or ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": f"{endpoint.method.lower()}_{endpoint.handler.__name__}",
            "responses": {
                "200" if endpoint.method == "GET" or endpoint.handler is not register else "201": {
                    "description": "OK",
                    "content": {_media_type(endpoint): {"schema": endpoint.response}},
                },
                "default": {"description": "An error", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"error": {"type": "object", "required": ["type", "message"]}},
                }}}},
            },
        }
        parameters = [{"name": name, "in": "path", "required": True, "schema": _STR}
                      for name in _path_params(endpoint.path)]
        parameters += [{"name": name, "in": "query", "required": required, "description": description,
                        "schema": _STR} for name, description, required in endpoint.query]
        if parameters:
            operation["parameters"] = parameters
        if endpoint.request_body is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": endpoint.request_body}}}
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {"openapi": "3.1.0", "info": {"title": "opsctl daemon API", "version": __version__}, "paths": paths}


def _media_type(endpoint: Endpoint) -> str:
    if endpoint.handler is events:
        return "text/event-stream"
    if endpoint.handler is metrics:
        return "text/plain"
    return "application/json"


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


# -- the app and its middleware --------------------------------------------------------------


class _Observe:
    """Counts and times every request by route template; maps our errors to JSON."""

    def __init__(self, app: ASGIApp, routes: list[Route], state: DaemonState) -> None:
        self.app = app
        self.routes = routes
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route_name = "unmatched"
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                route_name = route.path
                break
        code = {"value": 500}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                code["value"] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, capture)
        finally:
            if route_name != "/v1/events":
                self.state.metrics.api_latency.labels(route_name).observe(time.perf_counter() - started)
            self.state.metrics.api_requests.labels(scope["method"], route_name, str(code["value"])).inc()


class BearerTokenAuth:
    """The TCP listener's gate: every request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, presented = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(presented.strip(), self.token):
                response = JSONResponse({"error": {"type": "Unauthorized", "message": "bearer token required",
                                                   "exit_code": 1}}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(state: DaemonState, extra: list[Endpoint] | None = None) -> Starlette:
    """The ASGI app over ``state``; ``extra`` endpoints come from later subsystems."""
    endpoints = ENDPOINTS + (extra or [])
    routes = [Route(e.path, e.handler, methods=[e.method]) for e in endpoints]

    async def handle_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpsctlError)
        return error_response(exc)

    app = Starlette(routes=routes, exception_handlers={OpsctlError: handle_error})
    app.state.daemon = state
    app.state.endpoints = endpoints
    app.add_middleware(_Observe, routes=routes, state=state)  # type: ignore[arg-type]
    return app
