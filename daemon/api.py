"""The daemon's HTTP+JSON API (Starlette), served on the Unix socket and optionally on TCP.

Endpoints are declared once in :data:`ENDPOINTS`; the router and the OpenAPI
document are both built from that table, so the document cannot drift from
what is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opsctl import __version__
from opsctl.adapters.artifact_storage import StoredArtifact
from opsctl.adapters.artifacts import safe_suffix
from opsctl.adapters.preflight import TokenIdentity
from opsctl.adapters.registry_reader import RegistryLocation
from opsctl.clock import utc_iso
from opsctl.core.json_schema import first_error
from opsctl.domain import Actor, Lineage
from opsctl.errors import (
    ConfirmationRequired,
    ConflictError,
    IntegrityError,
    NotFoundError,
    OpsctlError,
    UsageError,
)
from opsctl.services.registry import MODEL_NAME_PATTERN, VERSION_PATTERN, RegisterRequest
from opsctld.peercred import PeerCredentials
from opsctld.state import DaemonState

Handler = Callable[[Request], Awaitable[Response]]

log = logging.getLogger("opsctld.api")

# JSON request bodies are small documents (artifacts do not travel as JSON): anything larger, deeper or
# with integers SQLite cannot store is refused with 400 before a handler sees it.
MAX_JSON_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_INT = 2**63 - 1
MAX_HISTORY_LIMIT = 100_000

_STATUS_FOR_ERROR: tuple[tuple[type[OpsctlError], int], ...] = (
    (UsageError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (IntegrityError, 422),
    (ConfirmationRequired, 428),
)


def _state(request: Request) -> DaemonState:
    return request.app.state.daemon  # type: ignore[no-any-return]


_PROXIED_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,62}")


def actor_for(request: Request) -> Actor:
    """The caller, from the kernel's peer credentials (Unix socket) or the token's identity (TCP).

    A client-supplied ``X-Opsctl-User`` counts only for a token marked ``trusted-proxy`` and is then
    recorded as acting for that user; from any other token it is ignored.
    """
    scope_state = request.scope.get("state", {})
    peer: PeerCredentials | None = scope_state.get("peer")
    if peer is not None:
        return Actor(user=peer.user, uid=peer.uid, via="daemon")
    token: TokenIdentity | None = scope_state.get("token")
    if token is None:  # only BearerTokenAuth lets a request through without peer credentials
        raise UsageError("this listener cannot tell who is calling")
    claimed = request.headers.get("x-opsctl-user")
    if token.trusted_proxy and claimed and _PROXIED_USER.fullmatch(claimed):  # malformed: 400 in validate_request
        return Actor(user=f"token:{token.identity} (proxy for {claimed})", uid=None, via="daemon-tcp")
    return Actor(user=f"token:{token.identity}", uid=None, via="daemon-tcp")


def error_response(error: OpsctlError, *, status: int | None = None) -> JSONResponse:
    if status is None:
        status = 500
        for kind, code in _STATUS_FOR_ERROR:
            if isinstance(error, kind):
                status = code
                break
    return JSONResponse({"error": {"type": type(error).__name__, "message": str(error),
                                   "exit_code": error.exit_code}}, status_code=status)


async def read_json_body(request: Request, *, max_bytes: int = MAX_JSON_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); a UsageError (HTTP 400) otherwise.

    Refused: bodies over ``max_bytes``, not UTF-8, not JSON, NaN/Infinity or numbers that
    overflow to infinity, integers outside SQLite's 64-bit range, nesting deeper than :data:`MAX_JSON_DEPTH`.
    The endpoint table's dispatcher reads and validates the body first; handlers get that same document.
    """
    cached: dict[str, Any] | None = getattr(request.state, "json_body", None)
    if cached is not None:
        return cached
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise UsageError(f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    if len(raw) > _DECODE_ON_LOOP_BYTES:  # a big ingest batch would hold every other request back
        return await run_in_threadpool(decode_json_body, raw)
    return decode_json_body(raw)


_DECODE_ON_LOOP_BYTES = 64 * 1024


def decode_json_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, with :func:`read_json_body`'s limits; UsageError otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"request body is not UTF-8: {error.reason} at byte {error.start}") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except RecursionError:
        raise UsageError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"request body is not valid JSON: {error}") from None
    except ValueError as error:  # from the parse_* hooks, or an integer with too many digits
        raise UsageError(f"request body: {error}") from None
    if not isinstance(document, dict):
        raise UsageError("request body must be a JSON object")
    if _depth(document) > MAX_JSON_DEPTH:
        raise UsageError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int | float:
    # Beyond 64 bits an integer is kept as the number it is (a float): JSON does not tell them apart, and
    # every field stored as an integer has a documented range that then refuses it by name.
    if len(text.lstrip("-")) <= 19 and -MAX_INT - 1 <= (value := int(text)) <= MAX_INT:
        return value
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"integer {text[:40]}{'...' if len(text) > 40 else ''} is out of range")
    return number


def _depth(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                stack.extend((item, level + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{key!r} must be a string")
    return value


def _opt_int(body: dict[str, Any], key: str, *, minimum: int = 0) -> int | None:
    value = body.get(key)
    if isinstance(value, float) and value.is_integer():  # JSON Schema counts 3.0 as an integer
        value = int(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{key!r} must be an integer")
    if value is not None and not minimum <= value <= MAX_INT:
        raise UsageError(f"{key!r} must be between {minimum} and {MAX_INT}")
    return value


def _lineage(body: dict[str, Any]) -> Lineage:
    raw = body.get("lineage") or {}
    if not isinstance(raw, dict):
        raise UsageError("'lineage' must be an object")
    known = set(Lineage().to_json())
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UsageError(f"'lineage' has unknown keys {unknown}; known: {sorted(known)}")
    for key, value in raw.items():
        if value is not None and not isinstance(value, str):
            raise UsageError(f"'lineage.{key}' must be a string or null")
    return Lineage.from_json(raw)


# -- handlers --------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def metrics(request: Request) -> Response:
    state = _state(request)
    try:
        await run_in_threadpool(state.metrics.refresh)
    except OpsctlError as error:  # the other metrics still answer; the change counts stay as last read
        log.warning("metrics refresh failed: %s", error)
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


async def upload(request: Request) -> Response:
    """Receive an artifact's bytes (streamed, never buffered whole) into the content-addressed store.

    ``X-Opsctl-Sha256`` (required) is the client's hash; the bytes are hashed as they arrive and kept
    only if both agree. Uploading the same bytes again answers the same name (retries are safe).
    """
    state = _state(request)
    expected = (request.headers.get("x-opsctl-sha256") or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise UsageError("header X-Opsctl-Sha256 with the artifact's sha256 (64 hex digits) is required")
    limit = state.settings.daemon.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return error_response(UsageError(f"artifact is larger than the limit of {limit} bytes (max_upload_bytes)"),
                              status=413)
    suffix = safe_suffix(request.headers.get("x-opsctl-filename") or "")
    incoming = await run_in_threadpool(state.artifacts.begin, suffix=suffix, max_bytes=limit)
    try:
        async for chunk in request.stream():
            incoming.write(chunk)  # page-cache writes; the fsync happens in commit, off the loop
    except UsageError as error:  # over the limit without a Content-Length to tell beforehand
        incoming.abort()
        return error_response(error, status=413)
    except BaseException:
        incoming.abort()
        raise
    stored = await run_in_threadpool(incoming.commit, expected)
    return JSONResponse({"name": stored.name, "sha256": stored.sha256, "size_bytes": stored.size_bytes},
                        status_code=201)


def _stored(state: DaemonState, body: dict[str, Any], key: str) -> StoredArtifact | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(
            value.get("sha256"), str):
        raise UsageError(f"{key!r} must be {{name, sha256}} as returned by POST /v1/uploads")
    return state.artifacts.stored(value["name"], value["sha256"])


async def register(request: Request) -> Response:
    state = _state(request)
    body = await read_json_body(request)
    version = _opt_str(body, "version")
    if not version:
        raise UsageError("'version' and 'artifact' are required")
    artifact = _stored(state, body, "artifact")
    if artifact is None:
        raise UsageError("'version' and 'artifact' are required")
    metrics_in = body.get("metrics") or {}
    tags_in = body.get("tags") or {}
    if not isinstance(metrics_in, dict) or not isinstance(tags_in, dict):
        raise UsageError("'metrics' and 'tags' must be objects")
    lineage = _lineage(body)
    register_request = RegisterRequest(
        model=request.path_params["model"], version=version, artifact=artifact, metrics=dict(metrics_in),
        reference=_stored(state, body, "reference"), description=_opt_str(body, "description") or "",
        tags={str(k): str(v) for k, v in tags_in.items()}, lineage=lineage)
    created, new = await run_in_threadpool(state.services.registry.register_version, register_request,
                                           actor=actor_for(request), reason=_opt_str(body, "reason") or "")
    return JSONResponse(created.to_json(), status_code=201 if new else 200)


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
    if not 0 < limit <= MAX_HISTORY_LIMIT:
        raise UsageError(f"'limit' must be between 1 and {MAX_HISTORY_LIMIT}")
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
    where = RegistryLocation.of(state.settings.registry, state.settings.daemon.registry_path)
    timeline = await run_in_threadpool(build, where, state.clock, since_seconds, model)
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
            # A client that goes away cancels this generator while __anext__ runs in next_item: the inner
            # generator may only be closed once that task has really ended ("aclose(): asynchronous generator
            # is already running" otherwise). Shielded, because the surrounding scope is being cancelled.
            with anyio.CancelScope(shield=True):
                if next_item is not None:
                    next_item.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                        await next_item
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
    request_media_type: str = "application/json"
    headers: tuple[tuple[str, str, bool], ...] = ()  # (name, description, required)
    success: tuple[int, ...] = ()  # the 2xx statuses it answers; default 200 (201 when it creates)
    max_body_bytes: int = MAX_JSON_BODY_BYTES
    # Body fields refused with a message of their own (what to do instead), before the schema's checks.
    refused: dict[str, str] = field(default_factory=dict)
    # JSON Schema of a path, query or header parameter by name; PARAMETER_SCHEMAS, then any string, otherwise.
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    def schema_of(self, parameter: str) -> dict[str, Any]:
        """The schema a parameter is documented and checked with."""
        return self.schemas.get(parameter) or PARAMETER_SCHEMAS.get(parameter) or _STR


_STR: dict[str, Any] = {"type": "string"}
MODEL_NAME = {"type": "string", "pattern": MODEL_NAME_PATTERN, "title": "model name",
              "description": "use letters, digits, '.', '_' or '-' (max 63)"}
VERSION = {"type": "string", "pattern": VERSION_PATTERN, "title": "version",
           "description": "use letters, digits, '.', '_', '+' or '-' (max 63)"}
NON_EMPTY = {"type": "string", "minLength": 1}
LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_LIMIT}
GENERATION = {"type": "integer", "minimum": 0, "maximum": MAX_INT}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also admits null (the handlers read an optional field given as null as absent)."""
    kinds = schema.get("type")
    widened = dict(schema)
    if kinds is not None:
        widened["type"] = [*([kinds] if isinstance(kinds, str) else kinds), "null"]
    if "enum" in schema:
        widened["enum"] = [*schema["enum"], None]
    return widened


PARAMETER_SCHEMAS: dict[str, dict[str, Any]] = {"model": MODEL_NAME, "version": VERSION, "limit": LIMIT}
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
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_STORED = {"type": "object", "required": ["name", "sha256"], "additionalProperties": False,
           "description": "{name, sha256} as POST /v1/uploads answered (the daemon never reads a path)",
           "properties": {"name": {"type": "string", "pattern": "^sha256-[0-9a-f]{64}(\\.[A-Za-z0-9_]{1,16}){0,2}$"},
                          "sha256": _SHA256}}
_CHANGE_BODY = {"type": "object", "additionalProperties": False,
                "properties": {"reason": nullable(_STR), "expected_generation": nullable(GENERATION)}}
_BY_PATH = ("the daemon does not read files by path; upload the bytes (POST /v1/uploads) and pass 'artifact':"
            " {name, sha256}")
_LINEAGE = {"type": "object", "additionalProperties": False,
            "properties": {key: _NULLABLE_STR for key in Lineage().to_json()}}

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
    Endpoint("POST", "/v1/uploads", upload,
             "Upload an artifact's bytes (application/octet-stream; header X-Opsctl-Sha256 required)",
             request_body={"type": "string", "format": "binary"}, request_media_type="application/octet-stream",
             headers=(("X-Opsctl-Sha256", "sha256 of the bytes (64 hex digits), checked before they are kept", True),
                      ("X-Opsctl-Filename", "the file's name; only its suffix is kept", False)),
             schemas={"X-Opsctl-Sha256": {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}},
             response={"type": "object", "required": ["name", "sha256", "size_bytes"],
                       "properties": {"name": _STR, "sha256": _STR, "size_bytes": {"type": "integer"}}}),
    Endpoint("POST", "/v1/models/{model}/versions", register,
             "Register a version from uploaded bytes (201; 200 with the existing version on a retry)",
             request_body={"type": "object", "required": ["version", "artifact"], "additionalProperties": False,
                           "properties": {"version": VERSION, "artifact": _STORED, "reference": nullable(_STORED),
                                          "metrics": nullable({"type": "object",
                                                               "additionalProperties": {"type": "number"}}),
                                          "tags": nullable({"type": "object", "additionalProperties": _STR}),
                                          "description": nullable(_STR), "lineage": nullable(_LINEAGE),
                                          "reason": nullable(_STR)}},
             refused=dict.fromkeys(("artifact_path", "reference_path"), _BY_PATH), response=_VERSION),
    Endpoint("POST", "/v1/models/{model}/versions/{version}/verify", verify,
             "Check a version's artifact against its sha256"),
    Endpoint("GET", "/v1/models/{model}/plan/promote", plan_promote, "What a promote would do, with its generation",
             response=_PLAN, query=(("version", "version to promote", True),)),
    Endpoint("GET", "/v1/models/{model}/plan/rollback", plan_rollback, "What a rollback would do",
             response=_PLAN, query=(("to", "version to roll back to (default: previous)", False),),
             schemas={"to": VERSION}),
    Endpoint("POST", "/v1/models/{model}/promote", promote, "Put a version into production (audited)",
             request_body={**_CHANGE_BODY, "required": ["version"],
                           "properties": {**_CHANGE_BODY["properties"], "version": VERSION}}, response=_CHANGE),
    Endpoint("POST", "/v1/models/{model}/rollback", rollback,
             "Abort a running canary or return to the previous production version (audited)",
             request_body={**_CHANGE_BODY, "properties": {**_CHANGE_BODY["properties"], "to": nullable(VERSION)}},
             response=_CHANGE),
    Endpoint("POST", "/v1/models/{model}/verifications", record_verification,
             "Audit what `opsctl rollback --verify` measured (outcome ok: traffic moved, failed: it did not)",
             request_body={"type": "object", "required": ["moved", "detail"], "additionalProperties": False,
                           "properties": {"from_version": nullable(VERSION), "to_version": nullable(VERSION),
                                          "moved": {"type": "boolean"}, "detail": _STR, "reason": nullable(_STR)}},
             response={"type": "object", "required": ["audit_id"], "properties": {"audit_id": {"type": "integer"}}}),
    Endpoint("GET", "/v1/history", history, "The audit log, oldest first",
             response={"type": "array", "items": _AUDIT},
             query=(("model", "only this model", False), ("limit", "at most this many (default 50)", False))),
    Endpoint("GET", "/v1/incident/timeline", incident_timeline,
             "Audit log, alert transitions, health changes, canary verdicts, drift and retrain runs in time order",
             response={"type": "object", "required": ["since", "until", "sources", "summary", "entries"]},
             query=(("since_seconds", "how far back (default 7200)", False), ("model", "only this model", False)),
             schemas={"since_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 10 * 365 * 86400}}),
    Endpoint("GET", "/v1/routing/{model}", routing, "Traffic split for the SDK router (weights in percent)",
             response={"type": "object", "required": ["model", "splits"]}),
    Endpoint("GET", "/v1/events", events,
             "Server-Sent Events: audit events, job results, state changes (resume with Last-Event-ID)",
             response={"type": "string"}),
]


def openapi_document(endpoints: list[Endpoint] | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints or ENDPOINTS:
        ok = {"description": "OK", "content": {_media_type(endpoint): {"schema": endpoint.response}}}
        success = endpoint.success or ((200, 201) if endpoint.handler is register  # a retry answers 200
                                       else (201,) if endpoint.handler is upload else (200,))
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": f"{endpoint.method.lower()}_{endpoint.handler.__name__}",
            "responses": {
                **{str(code): ok for code in success},
                "400": {"description": "The request does not fit this document (the error names the field)",
                        "content": _ERROR_CONTENT},
                "422": {"description": "The request fits this document but its values cannot be acted on",
                        "content": _ERROR_CONTENT},
                "default": {"description": "An error", "content": _ERROR_CONTENT},
            },
        }
        parameters = [{"name": name, "in": "path", "required": True, "schema": endpoint.schema_of(name)}
                      for name in _path_params(endpoint.path)]
        parameters += [{"name": name, "in": where, "required": required, "description": description,
                        "schema": endpoint.schema_of(name)}
                       for where, table in (("query", endpoint.query), ("header", endpoint.headers))
                       for name, description, required in table]
        if parameters:
            operation["parameters"] = parameters
        if endpoint.request_body is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {endpoint.request_media_type: {"schema": endpoint.request_body}}}
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {"openapi": "3.1.0", "info": {"title": "opsctl daemon API", "version": __version__}, "paths": paths}


_ERROR_CONTENT = {"application/json": {"schema": {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["type", "message"]}}}}}


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


# What a Prometheus scrape token may read (GET or HEAD only); /healthz needs no token at all.
SCRAPE_PATHS = frozenset({"/metrics", "/healthz"})


class BearerTokenAuth:
    """The TCP listener's gate: every request needs ``Authorization: Bearer <token>`` of a known identity."""

    def __init__(self, app: ASGIApp, tokens: tuple[TokenIdentity, ...]) -> None:
        self.app = app
        self.tokens = [(t.token.encode(), t) for t in tokens]

    def _identify(self, presented: bytes) -> TokenIdentity | None:
        found = None
        for expected, identity in self.tokens:  # compare with every token: the time does not tell which matched
            if hmac.compare_digest(presented, expected):
                found = identity
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, presented = header.partition(b" ")
            identity = self._identify(presented.strip()) if scheme.lower() == b"bearer" else None
            if identity is None:
                response = JSONResponse({"error": {"type": "Unauthorized", "message": "bearer token required",
                                                   "exit_code": 1}}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
            if identity.scrape_only and (scope["path"] not in SCRAPE_PATHS or scope["method"] not in ("GET", "HEAD")):
                response = JSONResponse({"error": {"type": "Forbidden", "message": f"token {identity.identity!r} is a"
                                                   " scrape token: it may only GET /metrics and /healthz",
                                                   "exit_code": 1}}, status_code=403)
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["token"] = identity
        await self.app(scope, receive, send)


def _typed(raw: str, schema: dict[str, Any]) -> Any:
    """A query or header value as the JSON type its schema names (left a string when it is not one)."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?[0-9]{1,19}", raw):
        return int(raw)
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            return raw
        return value if math.isfinite(value) else raw
    return raw


async def validate_request(endpoint: Endpoint, request: Request) -> None:
    """Check the path, query, headers and JSON body against the endpoint's documented schemas (400 if not)."""
    claimed = request.headers.get("x-opsctl-user")
    if claimed is not None and not _PROXIED_USER.fullmatch(claimed):
        raise UsageError("X-Opsctl-User must be letters, digits, '.', '_', '@' or '-' (max 63)")
    for name in _path_params(endpoint.path):
        problem = first_error(request.path_params.get(name), endpoint.schema_of(name), name)
        if problem:
            raise UsageError(problem)
    for where, table, values in (("query parameter", endpoint.query, request.query_params),
                                 ("header", endpoint.headers, request.headers)):
        for name, _, required in table:
            raw = values.get(name)
            if raw is None:
                if required:
                    raise UsageError(f"{where} {name!r} is required")
                continue
            schema = endpoint.schema_of(name)
            problem = first_error(_typed(raw, schema), schema, name)
            if problem:
                raise UsageError(f"{where} {problem}")
    if endpoint.request_body is not None and endpoint.request_media_type == "application/json":
        body = await read_json_body(request, max_bytes=endpoint.max_body_bytes)
        for key, message in endpoint.refused.items():
            if key in body:
                raise UsageError(message)
        problem = await run_in_threadpool(first_error, body, endpoint.request_body) \
            if endpoint.max_body_bytes > MAX_JSON_BODY_BYTES else first_error(body, endpoint.request_body)
        if problem:
            raise UsageError(problem)
        request.state.json_body = body


def _dispatch(endpoints: dict[str, Endpoint]) -> Handler:
    async def dispatch(request: Request) -> Response:
        endpoint = endpoints["GET" if request.method == "HEAD" else request.method]
        await validate_request(endpoint, request)
        try:
            return await endpoint.handler(request)
        except UsageError as error:
            # The request fits the document, so what is wrong is its values (a version that is not in
            # canary, an alert id that matches none): 422, not 400.
            return error_response(error, status=422)

    return dispatch


def create_app(state: DaemonState, extra: list[Endpoint] | None = None) -> Starlette:
    """The ASGI app over ``state``; ``extra`` endpoints come from later subsystems."""
    endpoints = ENDPOINTS + (extra or [])
    # One route per path, whatever its methods, so a 405 names all of them in Allow.
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    routes = [Route(path, _dispatch(table), methods=list(table)) for path, table in by_path.items()]

    async def handle_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpsctlError)
        return error_response(exc)

    async def handle_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": {"type": type(exc).__name__, "message": exc.detail, "exit_code": 1}},
                            status_code=exc.status_code, headers=exc.headers)

    async def handle_crash(request: Request, exc: Exception) -> Response:
        # A bug, not bad input: still the JSON error shape (never text/plain), and logged with its traceback.
        log.error("request failed", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"error": {"type": "InternalError", "message": f"internal error: {type(exc).__name__}",
                                       "exit_code": 1}}, status_code=500)

    app = Starlette(routes=routes, exception_handlers={OpsctlError: handle_error,
                                                                HTTPException: handle_http, Exception: handle_crash})
    app.state.daemon = state
    app.state.endpoints = endpoints
    app.add_middleware(_Observe, routes=routes, state=state)  # type: ignore[arg-type]
    return app
