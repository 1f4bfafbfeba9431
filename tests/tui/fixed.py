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


def document(models: int = 0) -> dict[str, Any]:
    """Three hand-made models, plus ``models`` generated ones for scale."""
    deployments = [deployment("fraud-detector", "1.1.0", "1.2.0", 10.0), deployment("churn", "2.0.0"),
                   deployment("recommender", None)]
    deployments += [deployment(f"model-{i:04d}", f"1.{i % 7}.0") for i in range(models)]
    health = [
        {"model": "fraud-detector", "version": "1.1.0", "status": "degraded", "reason": "p95 latency 412ms > 300ms",
         "sample_age_seconds": 12.0, "evaluated_at": utc_iso(NOW),
         "checks": [{"name": "latency_p95", "value": 412.0, "threshold": 300.0, "unit": "ms", "verdict": "fail",
                     "reason": "p95 latency 412ms > 300ms"},
                    {"name": "error_rate", "value": 0.002, "threshold": 0.01, "unit": "", "verdict": "pass",
                     "reason": ""}]},
        {"model": "churn", "version": "2.0.0", "status": "healthy", "reason": "", "sample_age_seconds": 9.0,
         "evaluated_at": utc_iso(NOW), "checks": []},
    ]
    alerts = [{"id": "a1b2c3d4e5f6", "rule": "SlaDegraded", "severity": "critical", "source": "health",
               "state": "firing", "labels": {"model": "fraud-detector"}, "summary": "p95 latency over SLA"}]
    canaries = [{"model": "fraud-detector", "canary_version": "1.2.0", "production_version": "1.1.0",
                 "phase": "running", "stage": 1, "weight": 10.0, "failed_checks": 0,
                 "reason": "stage 1 of 4: waiting for 300 requests", "last_evaluation": None}]
    return {"daemon": {"up": True, "version": "0.1.0", "pid": 4242}, "jobs": [], "models": deployments,
            "health": health, "alerts": alerts, "canaries": canaries}


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
    feed = StaticFeed(document(models), HISTORY, versions(), clock=clock, up=up)
    return OpsctlApp(feed, environment="prod-eu", production=production, read_only=read_only, clock=clock,
                     animate=False)
