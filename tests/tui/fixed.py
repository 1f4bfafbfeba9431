"""A fixed fleet document (what /v1/status will carry once health, alerts and canary land) for snapshots and
benchmarks: no daemon, no wall clock, so every frame is the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl.clock import ManualClock, utc_iso
from opsctl.domain import Lineage, ModelVersion, VersionStatus
from opsctl.tui.app import OpsctlApp
from opsctl.tui.feed import StaticFeed

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def deployment(model: str, production: str | None, canary: str | None = None, weight: float = 0.0,
               generation: int = 3) -> dict[str, Any]:
    return {"model": model, "production_version": production, "previous_versions": ["1.0.0"] if production else [],
            "canary_version": canary, "canary_weight": weight, "generation": generation,
            "updated_at": utc_iso(NOW - timedelta(hours=2))}


def _check(name: str, value: float | None, threshold: float, unit: str, verdict: str,
           reason: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "threshold": threshold, "unit": unit, "verdict": verdict, "reason": reason}


WAVE = (0.0, 0.1, 0.3, 0.2, 0.5, 0.4, 0.7, 0.6, 0.9, 0.8, 1.0, 0.95)


def health_document(models: int = 0, step: int = len(WAVE) - 1) -> dict[str, Any]:
    """``GET /v1/health`` as the daemon's health subsystem answers it (``step``: an earlier evaluation)."""
    at = utc_iso(NOW - timedelta(seconds=15 * (len(WAVE) - 1 - step)))
    w = WAVE[step]
    versions = [
        {"model": "fraud-detector", "version": "1.1.0", "role": "production", "status": "degraded",
         "reason": "p95 latency 412ms > 300ms", "critical": False, "sample_age_seconds": 12.0, "evaluated_at": at,
         "checks": [_check("request_rate", 41.5, 1.0, "req/s", "pass"),
                    _check("latency_p95", 150 + 262.0 * w, 300.0, "ms", "fail" if w > 0.5 else "pass",
                           "p95 latency 412ms > 300ms" if w > 0.5 else ""),
                    _check("error_rate", 0.2 + 0.3 * WAVE[-1 - step], 1.0, "%", "pass")]},
        {"model": "fraud-detector", "version": "1.2.0", "role": "canary", "status": "healthy", "reason": "",
         "critical": False, "sample_age_seconds": 12.0, "evaluated_at": at,
         "checks": [_check("request_rate", 4.6, 1.0, "req/s", "pass"),
                    _check("latency_p95", 180.0, 300.0, "ms", "pass"), _check("error_rate", 0.1, 1.0, "%", "pass")]},
        {"model": "churn", "version": "2.0.0", "role": "production", "status": "healthy", "reason": "",
         "critical": False, "sample_age_seconds": 9.0, "evaluated_at": at,
         "checks": [_check("request_rate", 12.0 + 3 * w, 1.0, "req/s", "pass"),
                    _check("latency_p95", 95.0 - 20 * w, 300.0, "ms", "pass")]},
    ]
    versions += [{"model": f"model-{i:04d}", "version": f"1.{i % 7}.0", "role": "production", "status": "healthy",
                  "reason": "", "critical": False, "sample_age_seconds": 5.0, "evaluated_at": at,
                  "checks": [_check("latency_p95", 100.0 + i % 50, 300.0, "ms", "pass")]} for i in range(models)]
    return {"models": versions, "evaluated_at": at, "health_seconds": 15.0,
            "prometheus": {"url": "http://127.0.0.1:9090", "ok": True, "error": None}}


def alerts_document() -> dict[str, Any]:
    """``GET /v1/alerts?all=1``."""
    def alert(alert_id: str, rule: str, state: str, model: str, summary: str, minutes: int) -> dict[str, Any]:
        return {"id": alert_id, "fingerprint": alert_id * 2, "rule": rule, "severity": "critical", "source": "health",
                "state": state, "labels": {"alertname": rule, "model": model, "model_version": "1.1.0"},
                "annotations": {}, "summary": summary, "value": None,
                "starts_at": utc_iso(NOW - timedelta(minutes=minutes)),
                "fired_at": utc_iso(NOW - timedelta(minutes=minutes - 1)) if state != "pending" else None,
                "resolved_at": utc_iso(NOW - timedelta(minutes=1)) if state == "resolved" else None, "ack": None}
    return {"alerts": [alert("a1b2c3d4e5f6", "ModelSlaDegraded", "firing", "fraud-detector",
                             "fraud-detector 1.1.0: p95 latency 412ms > 300ms", 6),
                       alert("b2c3d4e5f6a1", "ModelHealthUnknown", "pending", "churn", "churn 2.0.0: no samples", 2),
                       alert("c3d4e5f6a1b2", "ModelSlaDegraded", "resolved", "churn", "churn 2.0.0: errors 3% > 1%",
                             40)],
            "delivery": {}}


def canary_document() -> dict[str, Any]:
    """One canary as ``GET /v1/canaries`` documents it (a status document of the canary service)."""
    gates = [{"name": "error_rate", "verdict": "pass", "value": 0.001, "threshold": 0.01, "p_value": 0.42,
              "sample_size": 412, "sample_needed": 300, "reason": ""},
             {"name": "latency_p95", "verdict": "inconclusive", "value": 0.18, "threshold": 0.3, "p_value": None,
              "sample_size": 412, "sample_needed": 600, "reason": "412 of 600 requests"}]
    return {"id": 7, "model": "fraud-detector", "canary_version": "1.2.0", "production_version": "1.1.0",
            "state": "paused", "phase": "paused", "active": True, "stage": 2, "stages": 4,
            "stage_weights": [5.0, 10.0, 50.0, 100.0], "weight": 10.0, "target_weight": 10.0, "failed_checks": 0,
            "failure_threshold": 2, "inconclusive_streak": 1, "metrics_error_streak": 0,
            "reason": "paused by alice: waiting for the latency fix", "verdict": "inconclusive", "gates": gates,
            "last_evaluation": None, "last_evaluation_at": utc_iso(NOW - timedelta(seconds=30)),
            "started_at": utc_iso(NOW - timedelta(minutes=25)),
            "stage_started_at": utc_iso(NOW - timedelta(minutes=7)), "finished_at": None,
            "updated_at": utc_iso(NOW), "revision": 5, "actuator_error": None, "pending_actions": []}


def drift_document() -> dict[str, Any]:
    features = [{"name": "amount", "kind": "numerical", "test": "ks", "statistic": 0.21, "p_value": 1e-9,
                 "p_value_adjusted": 4e-9, "effect_size": 0.35, "effect_metric": "wasserstein", "drifted": True,
                 "reason": ""},
                {"name": "merchant", "kind": "categorical", "test": "chi2", "statistic": 3.1, "p_value": 0.21,
                 "p_value_adjusted": 0.42, "effect_size": 0.02, "effect_metric": "jensen_shannon", "drifted": False,
                 "reason": ""}]
    report = {"dataset_drift": True, "drifted_count": 1, "share_drifted": 0.5, "rows_reference": 5000,
              "rows_current": 2000, "features": features, "policy": {}}
    result = {"id": 31, "at": utc_iso(NOW - timedelta(minutes=3)), "model": "fraud-detector", "version": "1.1.0",
              "kind": "drift", "verdict": "drift", "role": "production", "window_rows": 2000, "reference": "ref",
              "unlogged": [], "drifted_features": ["amount"], "report": report, "error": None}
    history = [{**result, "drifted_features": ["amount"] * k, "verdict": "drift" if k else "no_drift"}
               for k in (1, 1, 0, 0, 0)]
    return {"model": "fraud-detector", "window": {"rows": 2000, "seen": 9000, "labelled": 640, "sampled": False},
            "versions": [{"version": "1.1.0", "role": "production", "result": result},
                         {"version": "1.2.0", "role": "canary", "result": None}],
            "history": history}


def performance_document() -> dict[str, Any]:
    result = {"id": 12, "at": utc_iso(NOW - timedelta(minutes=3)), "version": "1.1.0", "verdict": "ok",
              "labelled": 640, "min_labels": 200,
              "metrics": [{"name": "accuracy", "state": "ok", "value": 0.91, "ci_low": 0.89, "ci_high": 0.93,
                           "n": 640, "baseline": 0.92, "relative_drop": 0.01, "floor": 0.87}]}
    return {"model": "fraud-detector", "window": {"rows": 2000, "labelled": 640},
            "versions": [{"version": "1.1.0", "role": "production", "result": result}]}


def retrain_documents() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    run = {"id": "r-20260314-0001", "model": "fraud-detector", "trigger": "drift", "status": "running",
           "started_at": utc_iso(NOW - timedelta(minutes=2)), "finished_at": None, "parent_version": "1.1.0",
           "candidate_version": None, "decision": None, "error": None}
    return [run], {**run, "logs": "loading fresh data: 2000 rows\nfitting GradientBoosting (seed 1)",
                   "log_lines_total": 2, "progress": None}


def document(models: int = 0) -> dict[str, Any]:
    """Three hand-made models, plus ``models`` generated ones for scale: ``/v1/status`` as the daemon sends it."""
    deployments = [deployment("fraud-detector", "1.1.0", "1.2.0", 10.0), deployment("churn", "2.0.0"),
                   deployment("recommender", None)]
    deployments += [deployment(f"model-{i:04d}", f"1.{i % 7}.0") for i in range(models)]
    summary = {}
    for item in health_document(models)["models"]:
        entry = summary.setdefault(item["model"], {"model": item["model"], "status": item["status"], "versions": []})
        if item["status"] == "degraded":
            entry["status"] = "degraded"
        entry["versions"].append({"version": item["version"], "role": item["role"], "status": item["status"],
                                  "reason": item["reason"]})
    health = {"evaluated_at": utc_iso(NOW), "models": list(summary.values())}
    return {"daemon": {"up": True, "version": "0.1.0", "pid": 4242}, "jobs": [], "models": deployments,
            "health": health, "canaries": [canary_document()], "drift": drift_section(models)}


def drift_section(models: int = 0) -> dict[str, Any]:
    """The status document's ``drift`` section: fraud-detector's production drifted, its canary is unchecked."""
    at = utc_iso(NOW - timedelta(minutes=2))

    def version(v: str, role: str, verdict: str | None, features: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"version": v, "role": role, "verdict": verdict, "checked_at": at if verdict else None,
                "drifted_features": list(features), "share_drifted": 0.5 if features else 0.0, "error": None}

    entries = [{"model": "fraud-detector", "versions": [version("1.1.0", "production", "drift", ("amount",)),
                                                        version("1.2.0", "canary", None)]},
               {"model": "churn", "versions": [version("2.0.0", "production", "no_drift")]},
               {"model": "recommender", "versions": []}]
    entries += [{"model": f"model-{i:04d}", "versions": [version(f"1.{i % 7}.0", "production", "insufficient_data")]}
                for i in range(models)]
    return {"drift_seconds": 300.0, "models": entries}


HISTORY = [
    {"id": 1, "at": utc_iso(NOW - timedelta(hours=3)), "actor": "alice", "uid": 1000, "via": "daemon",
     "action": "promote", "model": "fraud-detector", "from_version": "1.0.0", "to_version": "1.1.0",
     "reason": "retrained on March data", "outcome": "ok", "detail": ""},
    {"id": 2, "at": utc_iso(NOW - timedelta(minutes=20)), "actor": "bob", "uid": 1001, "via": "daemon",
     "action": "register", "model": "fraud-detector", "from_version": None, "to_version": "1.2.0",
     "reason": "", "outcome": "ok", "detail": ""},
]


def versions() -> dict[str, list[ModelVersion]]:
    def version(v: str, status: VersionStatus, parent: str | None, auc: float) -> ModelVersion:
        return ModelVersion(model="fraud-detector", version=v, status=status, artifact_name="model.joblib",
                            sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                            size_bytes=48213, metrics={"auc": auc, "accuracy": auc - 0.05}, description="",
                            tags={"team": "risk"}, lineage=Lineage("c0ffee" * 4, "a1b2c3d", parent, "schedule"),
                            reference_name=None, reference_sha256=None, created_at=NOW - timedelta(days=3))
    return {"fraud-detector": [version("1.0.0", VersionStatus.ARCHIVED, None, 0.91),
                               version("1.1.0", VersionStatus.PRODUCTION, "1.0.0", 0.93),
                               version("1.2.0", VersionStatus.CANARY, "1.1.0", 0.94)]}


def fixed_app(*, up: bool = True, read_only: bool = False, models: int = 0, production: bool = True) -> OpsctlApp:
    clock = ManualClock(NOW)
    runs, run = retrain_documents()
    documents = {("drift", "fraud-detector"): drift_document(),
                 ("performance", "fraud-detector"): performance_document(),
                 ("retrain_runs", "fraud-detector"): runs, ("retrain_run", run["id"]): run}
    feed = StaticFeed(document(models), HISTORY, versions(), clock=clock, up=up, alerts=alerts_document(),
                      health=health_document(models), documents=documents)
    app = OpsctlApp(feed, environment="prod-eu", production=production, read_only=read_only, clock=clock,
                    animate=False)
    for step in range(len(WAVE) - 1):  # the trend the TUI would have gathered over the last three minutes
        app.fleet.apply_health(health_document(models, step))
    return app
