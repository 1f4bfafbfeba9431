"""Retraining in the daemon: cron schedules, the API, the status section, and the trigger other jobs call.

Endpoints::

    POST /v1/retrain/{model}          {reason, wait, timeout_seconds}  start (or join) a run
    GET  /v1/retrain[?model=&limit=]  runs, newest first
    GET  /v1/retrain/{run_id}         one run with its logs (``?log_offset=N``: lines after the first N)
    POST /v1/retrain/{run_id}/approve {reason}                         start the canary of an approved run

Other services trigger a run through the one :class:`~opsctl.services.retrain.RetrainService` of the
daemon (``state.services.retrain``; drift's trigger is wired in :func:`opsctld.wiring.build_services`)::

    state.services.retrain.trigger(model, "drift", reason, actor)

Cron: the scheduler here runs interval jobs only, so a ``retrain-schedule`` job looks every
``[retrain] schedule_check_seconds`` for cron fire times that came due since its last look
(persisted in the registry's ``kv`` table, so a restart neither repeats nor, within
``schedule_misfire_grace_seconds``, loses one). No change to ``opsctld.main`` was needed.

Training runs in a thread of its own per run (see :mod:`opsctl.services.retrain`), not in the
job pool, so a run that hangs until its timeout delays no other job and no API request. When the
daemon exits, runs still in flight are killed and recorded as ``abandoned``.
"""

from __future__ import annotations

import asyncio
import atexit
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opsctl.core.retrain import ACTIVE_STATUSES
from opsctl.errors import UsageError
from opsctl.services.retrain import RetrainService
from opsctld.api import Endpoint, actor_for, nullable, read_json_body
from opsctld.jobs import JobOutcome, JobSpec
from opsctld.main import Subsystem
from opsctld.state import DaemonState

_MAX_WAIT_SECONDS = 24 * 3600.0


def start(state: DaemonState) -> None:
    service = state.services.retrain
    service.recover()
    state.status_providers["retrain"] = lambda: service.status().to_json()
    # The daemon has no stop hook for subsystems; at exit, kill training processes still running
    # (they run in sessions of their own and would outlive the daemon) and record their runs.
    atexit.register(service.shutdown)


def jobs(state: DaemonState) -> list[JobSpec]:
    service = state.services.retrain

    def run() -> JobOutcome:
        results = service.check_schedules()
        started = [r.run.model for r in results if r.started and r.run is not None]
        summary = f"scheduled runs started: {', '.join(started)}" if started else "no schedule due"
        return JobOutcome(True, summary, {"retrain_started": started})

    return [JobSpec("retrain-schedule", state.settings.retrain.schedule_check_seconds, run)]


# -- API ----------------------------------------------------------------------------------------


def _state(request: Request) -> DaemonState:
    return request.app.state.daemon  # type: ignore[no-any-return]


def _run_document(service: RetrainService, run_id: str, log_offset: int) -> dict[str, Any]:
    run = service.get(run_id)
    document = run.to_json(with_logs=False)
    lines, total = service.log_lines(run_id, log_offset)
    document["log_lines_total"] = total
    document["logs"] = "\n".join(lines)
    progress = service.progress(run_id)
    document["progress"] = None if progress is None else progress.to_json()
    return document


async def trigger(request: Request) -> Response:
    service = _state(request).services.retrain
    body = await read_json_body(request)
    reason = body.get("reason") or ""
    kind = body.get("trigger") or "manual"
    wait = body.get("wait", False)
    timeout = body.get("timeout_seconds", _MAX_WAIT_SECONDS)
    if not isinstance(reason, str) or not isinstance(kind, str):
        raise UsageError("'reason' and 'trigger' must be strings")
    if not isinstance(wait, bool):
        raise UsageError("'wait' must be true or false")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise UsageError("'timeout_seconds' must be a positive number")
    result = await run_in_threadpool(service.trigger, request.path_params["model"], kind, reason,
                                     actor_for(request))
    document = result.to_json()
    if wait and result.run is not None:
        # Poll the in-memory state on the loop: a long run holds no worker thread.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        run = result.run
        while loop.time() < deadline:
            run = await run_in_threadpool(service.get, result.run.id)
            if run.status not in ACTIVE_STATUSES:
                break
            await asyncio.sleep(0.2)
        document["run"] = run.to_json()
    return JSONResponse(document, status_code=202 if result.started else 200)


async def list_runs(request: Request) -> Response:
    service = _state(request).services.retrain
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        raise UsageError("'limit' must be an integer") from None
    runs = await run_in_threadpool(service.runs, request.query_params.get("model") or None, limit)
    return JSONResponse([run.to_json(with_logs=False) for run in runs])


async def show_run(request: Request) -> Response:
    service = _state(request).services.retrain
    try:
        offset = int(request.query_params.get("log_offset", "0"))
    except ValueError:
        raise UsageError("'log_offset' must be an integer") from None
    document = await run_in_threadpool(_run_document, service, request.path_params["run_id"], max(0, offset))
    return JSONResponse(document)


async def approve(request: Request) -> Response:
    service = _state(request).services.retrain
    body = await read_json_body(request)
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise UsageError("'reason' must be a string")
    run = await run_in_threadpool(service.approve, request.path_params["run_id"], actor=actor_for(request),
                                  reason=reason)
    return JSONResponse(run.to_json(with_logs=False))


_STR = {"type": "string"}
_RUN = {"type": "object", "required": ["id", "model", "trigger", "status", "started_at"],
        "properties": {"id": _STR, "model": _STR, "trigger": {"enum": ["drift", "performance", "schedule", "manual"]},
                       "status": _STR, "started_at": _STR, "finished_at": {"type": ["string", "null"]},
                       "parent_version": {"type": ["string", "null"]},
                       "candidate_version": {"type": ["string", "null"]}, "decision": {"type": ["object", "null"]},
                       "error": {"type": ["string", "null"]}, "logs": _STR}}

SUBSYSTEM = Subsystem(
    name="retrain",
    jobs=jobs,
    start=start,
    endpoints=[
        Endpoint("POST", "/v1/models/{model}/retrain", trigger,
                 "Retrain a model: start a run (202), or join the one in flight (audited); wait=true returns when"
                 " done",
                 request_body={"type": "object", "additionalProperties": False, "properties": {
                     "reason": nullable(_STR), "wait": {"type": "boolean"},
                     "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": _MAX_WAIT_SECONDS},
                     "trigger": nullable({"enum": ["manual", "drift", "performance", "schedule"]})}},
                 success=(200, 202),
                 response={"type": "object", "required": ["verdict", "message", "run"],
                           "properties": {"verdict": {"enum": ["started", "joined", "cooldown"]},
                                          "message": _STR, "run": _RUN}}),
        Endpoint("GET", "/v1/retrain", list_runs, "Retraining runs, newest first",
                 response={"type": "array", "items": _RUN},
                 query=(("model", "only this model", False), ("limit", "at most this many (default 50)", False))),
        Endpoint("GET", "/v1/retrain/{run_id}", show_run, "One retraining run with its logs and decision",
                 response=_RUN, query=(("log_offset", "only log lines after this many", False),),
                 schemas={"log_offset": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}),
        Endpoint("POST", "/v1/retrain/{run_id}/approve", approve,
                 "Approve a run awaiting approval: its canary starts (audited)",
                 request_body={"type": "object", "additionalProperties": False,
                               "properties": {"reason": nullable(_STR)}},
                 response=_RUN),
    ],
)
