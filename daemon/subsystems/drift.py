"""Ingestion, drift and performance checks in the daemon (:mod:`opsctl.services.drift` does the work).

Jobs (bodies run in the job pool's worker threads, never on the event loop):

* ``ingest`` every ``[jobs] ingest_seconds``: new lines of the SDK logs in ``[ingest] log_dirs`` into the
  per-model window, offsets committed to the registry;
* ``drift`` every ``[jobs] drift_seconds`` and ``performance`` every ``[jobs] performance_seconds``: one
  check per deployed version, stored in ``drift_results``, exported on ``/metrics``, announced as SSE
  ``drift`` / ``performance`` events, stepped through the alert engine (rules ``ModelDataDrift`` and
  ``ModelPerformanceDegraded``, source ``drift``; notifications go out through the health service's
  Alertmanager notifier), and, for a production version with a ``[retrain.models.MODEL]`` entry, a
  retraining trigger (the retraining service holds repeats by single flight and its cooldown); the
  service and these hooks are built by :func:`opsctld.wiring.build_services`.

Endpoints::

    POST /v1/ingest                 {"records": [...]}   the SDK's records, all or nothing per batch
    GET  /v1/drift/{model}          newest drift check per deployed version (?history=N: last N checks)
    GET  /v1/performance/{model}    newest performance check per deployed version
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opsctl.core.window import parse_batch
from opsctl.errors import UsageError
from opsctl.services.drift import DriftService
from opsctld.api import Endpoint, read_json_body
from opsctld.jobs import JobOutcome, JobSpec
from opsctld.main import Subsystem
from opsctld.state import DaemonState

_MAX_HISTORY = 1000


def _start(state: DaemonState) -> None:
    state.status_providers["ingest"] = lambda: state.services.drift.status().to_json()
    state.status_providers["drift"] = lambda: state.services.drift.drift_status().to_json()


def _jobs(state: DaemonState) -> list[JobSpec]:
    service = state.services.drift
    jobs = state.settings.jobs

    def ingest() -> JobOutcome:
        tick = service.ingest()
        summary = f"{tick.records} records from {tick.files} files"
        if tick.malformed:
            summary += f", {tick.malformed} malformed lines skipped"
        return JobOutcome(True, summary, tick.to_json())

    def drift() -> JobOutcome:
        results = service.check_drift()
        counts: dict[str, int] = {}
        for result in results:
            counts[result.verdict] = counts.get(result.verdict, 0) + 1
        if not results:
            return JobOutcome(True, "no deployed versions")
        tally = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
        return JobOutcome(counts.get("error", 0) == 0, f"{len(results)} versions: {tally}",
                          {"versions": len(results), **counts})

    def performance() -> JobOutcome:
        results = service.check_performance()
        counts: dict[str, int] = {}
        for result in results:
            counts[result.verdict] = counts.get(result.verdict, 0) + 1
        if not results:
            return JobOutcome(True, "no deployed versions")
        tally = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
        return JobOutcome(True, f"{len(results)} versions: {tally}", {"versions": len(results), **counts})

    return [
        JobSpec("ingest", jobs.ingest_seconds, ingest, interval_key="ingest_seconds"),
        JobSpec("drift", jobs.drift_seconds, drift, interval_key="drift_seconds"),
        JobSpec("performance", jobs.performance_seconds, performance, interval_key="performance_seconds"),
    ]


# -- endpoints ------------------------------------------------------------------------------------


def _service(request: Request) -> DriftService:
    return request.app.state.daemon.services.drift  # type: ignore[no-any-return]


async def post_ingest(request: Request) -> Response:
    service = _service(request)
    document = await read_json_body(request, max_bytes=INGEST_MAX_BODY_BYTES)
    limit = service.settings.section("ingest").max_batch_records
    records = await run_in_threadpool(parse_batch, document, max_records=limit)
    receipt = await run_in_threadpool(service.ingest_records, records)
    return JSONResponse(receipt.to_json())


async def get_drift(request: Request) -> Response:
    service = _service(request)
    history: int | None = None
    raw = request.query_params.get("history")
    if raw is not None:
        if not raw.isdigit() or not 0 < int(raw) <= _MAX_HISTORY:
            raise UsageError(f"history must be a whole number from 1 to {_MAX_HISTORY}, got {raw!r}")
        history = int(raw)
    model = request.path_params["model"]
    report = await run_in_threadpool(lambda: service.drift(model, history=history))
    return JSONResponse(report.to_json())


async def get_performance(request: Request) -> Response:
    service = _service(request)
    model = request.path_params["model"]
    report = await run_in_threadpool(service.performance, model)
    return JSONResponse(report.to_json())


_STR = {"type": "string"}
_NULL_STR = {"type": ["string", "null"]}
_NUM_OR_NULL = {"type": ["number", "null"]}
_FEATURE = {"type": "object",
            "required": ["name", "kind", "test", "statistic", "p_value", "p_value_adjusted", "effect_size",
                         "drifted", "reason"],
            "properties": {"name": _STR, "kind": {"enum": ["numerical", "categorical"]},
                           "test": {"enum": ["ks", "chi2"]}, "statistic": _NUM_OR_NULL, "p_value": _NUM_OR_NULL,
                           "p_value_adjusted": _NUM_OR_NULL, "effect_size": _NUM_OR_NULL,
                           "effect_metric": _STR, "psi": _NUM_OR_NULL, "missing_rate_reference": _NUM_OR_NULL,
                           "missing_rate_current": _NUM_OR_NULL, "unseen_share": _NUM_OR_NULL,
                           "drifted": {"type": ["boolean", "null"]}, "reason": _STR}}
_REPORT = {"type": ["object", "null"],
           "properties": {"dataset_drift": {"type": ["boolean", "null"]}, "drifted_count": {"type": "integer"},
                          "share_drifted": _NUM_OR_NULL, "rows_reference": {"type": "integer"},
                          "rows_current": {"type": "integer"}, "features": {"type": "array", "items": _FEATURE},
                          "policy": {"type": "object"}}}
_DRIFT_RESULT = {"type": ["object", "null"],
                 "properties": {"id": {"type": "integer"}, "at": _STR, "model": _STR, "version": _STR,
                                "kind": {"enum": ["drift"]},
                                "verdict": {"enum": ["drift", "no_drift", "insufficient_data", "no_reference",
                                                     "error"]},
                                "role": _STR, "window_rows": {"type": "integer"}, "reference": _NULL_STR,
                                "unlogged": {"type": "array", "items": _STR},
                                "drifted_features": {"type": "array", "items": _STR}, "report": _REPORT,
                                "error": _NULL_STR}}
_METRIC = {"type": "object", "properties": {
    "name": {"enum": ["accuracy", "auc", "precision", "recall"]},
    "state": {"enum": ["ok", "degraded", "not_enough_labels", "no_baseline", "undefined"]},
    "value": _NUM_OR_NULL, "ci_low": _NUM_OR_NULL, "ci_high": _NUM_OR_NULL, "n": {"type": "integer"},
    "baseline": _NUM_OR_NULL, "relative_drop": _NUM_OR_NULL, "floor": _NUM_OR_NULL}}
_PERFORMANCE_RESULT = {"type": ["object", "null"],
                       "properties": {"id": {"type": "integer"}, "at": _STR, "version": _STR,
                                      "verdict": {"enum": ["ok", "degraded", "not_enough_labels", "no_baseline"]},
                                      "labelled": {"type": "integer"}, "min_labels": {"type": "integer"},
                                      "metrics": {"type": "array", "items": _METRIC}}}
_WINDOW = {"type": "object", "properties": {"rows": {"type": "integer"}, "seen": {"type": "integer"},
                                            "labelled": {"type": "integer"}, "sampled": {"type": "boolean"}}}


def _per_version(result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "required": ["version", "role", "result"],
                                       "properties": {"version": _STR, "role": {"enum": ["production", "canary"]},
                                                      "result": result}}}


# A full batch (10,000 records by default) of predictions with a few dozen features each.
INGEST_MAX_BODY_BYTES = 64 * 1024 * 1024
_ID = {"type": "string", "minLength": 1}
_TIMESTAMP = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})$"}
_LABEL = {"type": ["string", "number", "boolean"]}
# Unknown keys are allowed on purpose: newer SDKs may add fields (see core/window.record_from_json).
_RECORD = {"anyOf": [
    {"type": "object", "title": "a prediction",
     "required": ["prediction_id", "timestamp", "model", "version", "features", "prediction"],
     "properties": {"type": {"enum": ["prediction"]}, "prediction_id": _ID, "timestamp": _TIMESTAMP, "model": _ID,
                    "version": _ID, "prediction": _LABEL, "score": {"type": ["number", "null"]},
                    "latency_ms": {"type": ["number", "null"], "minimum": 0},
                    "features": {"type": "object",
                                 "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}}},
    {"type": "object", "title": "feedback", "required": ["prediction_id", "label", "timestamp"],
     "properties": {"type": {"enum": ["feedback"]}, "prediction_id": _ID, "label": _LABEL, "timestamp": _TIMESTAMP,
                    "model": {"type": ["string", "null"]}}},
], "description": "a prediction or a feedback record in the SDK's log format"}

SUBSYSTEM = Subsystem(
    name="drift",
    jobs=_jobs,
    start=_start,
    endpoints=[
        Endpoint("POST", "/v1/ingest", post_ingest,
                 "Prediction and feedback records in the SDK's log format, for servers that cannot write files"
                 " (all or nothing per batch; a prediction_id already in the window is ignored)",
                 request_body={"type": "object", "required": ["records"], "additionalProperties": False,
                               "properties": {"records": {"type": "array", "items": _RECORD}}},
                 max_body_bytes=INGEST_MAX_BODY_BYTES,
                 response={"type": "object", "required": ["accepted"],
                           "properties": {"accepted": {"type": "integer"}, "predictions": {"type": "integer"},
                                          "feedback": {"type": "integer"}, "duplicates": {"type": "integer"}}}),
        Endpoint("GET", "/v1/drift/{model}", get_drift,
                 "Newest data and prediction drift check of each deployed version, per feature",
                 response={"type": "object", "required": ["model", "versions", "window"],
                           "properties": {"model": _STR, "versions": _per_version(_DRIFT_RESULT), "window": _WINDOW,
                                          "history": {"type": "array", "items": {"type": "object"}}}},
                 query=(("history", f"also the last N checks, newest first (1..{_MAX_HISTORY})", False),),
                 schemas={"history": {"type": "integer", "minimum": 1, "maximum": _MAX_HISTORY}}),
        Endpoint("GET", "/v1/performance/{model}", get_performance,
                 "Newest performance check (labelled traffic vs the version's baseline) of each deployed version",
                 response={"type": "object", "required": ["model", "versions", "window"],
                           "properties": {"model": _STR, "versions": _per_version(_PERFORMANCE_RESULT),
                                          "window": _WINDOW}}),
    ],
)
