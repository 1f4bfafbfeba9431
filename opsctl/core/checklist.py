"""The chapter's production-operations checklist, evaluated on facts gathered from live state.

Pure: :class:`FleetFacts` and :class:`ModelFacts` are gathered by ``opsctl.adapters.checklist_probe``;
:func:`evaluate` turns them into one :class:`ChecklistItem` per row of the chapter's table (per model
for the model rows). What opsctl cannot see is ``unknown``, never ``pass``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from opsctl.clock import utc_iso


class Priority(StrEnum):
    REQUIRED = "required"
    RECOMMENDED = "recommended"


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


# (id, category, the chapter's wording, priority, per model?)
ITEMS: tuple[tuple[str, str, str, Priority, bool], ...] = (
    ("accuracy_above_baseline", "pre-deployment", "Model accuracy exceeds baseline", Priority.REQUIRED, True),
    ("ab_significance", "pre-deployment", "Statistical significance confirmed in A/B test", Priority.REQUIRED,
     True),
    ("load_test", "pre-deployment", "Load test meets performance requirements", Priority.REQUIRED, True),
    ("rollback_procedure", "pre-deployment", "Rollback procedure documented", Priority.REQUIRED, True),
    ("structured_logs", "monitoring", "Structured logs output correctly", Priority.REQUIRED, False),
    ("prometheus_metrics", "monitoring", "Prometheus metrics collected", Priority.REQUIRED, True),
    ("dashboard", "monitoring", "Grafana dashboard operational", Priority.RECOMMENDED, False),
    ("alerts", "monitoring", "Alerts trigger correctly", Priority.REQUIRED, False),
    ("drift_detection", "monitoring", "Data drift detection operational", Priority.RECOMMENDED, True),
    ("sla_latency_p95", "sla", "Latency P95 < 500ms", Priority.REQUIRED, True),
    ("sla_error_rate", "sla", "Error rate < 1%", Priority.REQUIRED, True),
    ("sla_availability", "sla", "Availability > 99.9%", Priority.REQUIRED, True),
    ("sla_accuracy", "sla", "Model accuracy > 95% of baseline", Priority.RECOMMENDED, True),
    ("on_call", "incident-response", "On-call system established", Priority.REQUIRED, False),
    ("runbooks", "incident-response", "Incident response procedures documented", Priority.REQUIRED, False),
    ("postmortems", "incident-response", "Post-mortem process exists", Priority.RECOMMENDED, True),
    ("prediction_logs", "data-management", "Prediction logs saved", Priority.REQUIRED, True),
    ("outcome_data", "data-management", "Actual outcome data collected", Priority.REQUIRED, True),
    ("backup", "data-management", "Data backup runs regularly", Priority.RECOMMENDED, False),
)
_SLA_CHECKS = {"sla_latency_p95": "latency_p95", "sla_error_rate": "error_rate",
               "sla_availability": "availability", "sla_accuracy": "accuracy"}


@dataclass(frozen=True)
class HealthCheckFact:
    name: str
    value: float | None
    threshold: float | None
    verdict: str  # pass | fail | unknown


@dataclass(frozen=True)
class ModelFacts:
    """What the registry says about one model's production version."""

    model: str
    production_version: str | None
    production_accuracy: float | None = None
    previous_version: str | None = None
    previous_accuracy: float | None = None
    previous_artifact_error: str | None = None  # None: verified (or no previous version)
    canary_phase: str | None = None  # the last canary that shipped or tried the production version
    load_test: str | None = None  # the version's `load_test` tag
    health_status: str | None = None
    health_reason: str = ""
    health_at: datetime | None = None
    checks: tuple[HealthCheckFact, ...] = ()
    drift_at: datetime | None = None
    drift_verdict: str | None = None
    predictions_bytes: int | None = None  # ingest offset of MODEL.predictions.jsonl
    feedback_bytes: int | None = None
    rollbacks_30d: int = 0


@dataclass(frozen=True)
class FleetFacts:
    """Fleet-wide state: the daemon's jobs, Prometheus, Alertmanager, the shipped runbooks."""

    now: datetime
    health_seconds: float
    drift_seconds: float
    ingest_seconds: float
    log_dirs_configured: bool
    ingest_last_at: datetime | None = None
    ingest_last_ok: bool | None = None
    ingest_last_summary: str = ""
    prometheus_rules: tuple[str, ...] | None = None  # alert rule names Prometheus has loaded; None: no answer
    prometheus_error: str = ""
    expected_rules: tuple[str, ...] = ()
    alertmanager_url: str = ""
    alertmanager_error: str = ""  # empty: it answered
    receivers_with_integrations: int | None = None
    runbooks_missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    category: str
    title: str
    priority: Priority
    model: str | None
    status: Status
    evidence: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "title": self.title, "priority": self.priority.value,
                "model": self.model, "status": self.status.value, "evidence": self.evidence, "fix": self.fix}


Verdict = tuple[Status, str, str]


def _age(now: datetime, moment: datetime) -> str:
    return f"{(now - moment).total_seconds():.0f}s ago ({utc_iso(moment)})"


def _fleet(item: str, f: FleetFacts) -> Verdict:
    if item == "structured_logs":
        if f.ingest_last_at is None:
            return (Status.UNKNOWN, "the ingest job has not run", "start the daemon; set [ingest] log_dirs")
        if not f.ingest_last_ok:
            return (Status.FAIL, f"last ingest run failed {_age(f.now, f.ingest_last_at)}: {f.ingest_last_summary}",
                    "see opsctl status and the daemon's log")
        if (f.now - f.ingest_last_at).total_seconds() > 3 * f.ingest_seconds + 60:
            return (Status.FAIL, f"last ingest run {_age(f.now, f.ingest_last_at)}", "the ingest job stopped: "
                    "see opsctl status")
        if not f.log_dirs_configured:
            return (Status.UNKNOWN, "ingest runs but [ingest] log_dirs is empty (only POST /v1/ingest)",
                    "set [ingest] log_dirs to the SDK's log folders")
        return (Status.PASS, f"ingest job ok, last run {_age(f.now, f.ingest_last_at)}", "")
    if item == "dashboard":
        return (Status.UNKNOWN, "opsctl has no dashboard URL to check",
                "import config/grafana/opsctl-sla.json into Grafana and check it by hand")
    if item == "alerts":
        if not f.alertmanager_url:
            return (Status.FAIL, "[alertmanager] url is empty: opsctl's alerts page nobody",
                    "set [alertmanager] url")
        if f.prometheus_rules is None:
            return (Status.UNKNOWN, f"Prometheus did not answer /api/v1/rules: {f.prometheus_error}",
                    "check [prometheus] url")
        missing = [r for r in f.expected_rules if r not in f.prometheus_rules]
        if missing:
            return (Status.FAIL, f"Prometheus has not loaded {', '.join(missing)}",
                    "add config/prometheus/alerts.yml to rule_files and reload Prometheus")
        if f.alertmanager_error:
            return (Status.FAIL, f"Alertmanager unreachable: {f.alertmanager_error}", "check [alertmanager] url")
        return (Status.PASS, f"{len(f.expected_rules)} opsctl rules loaded in Prometheus; Alertmanager ready", "")
    if item == "on_call":
        if not f.alertmanager_url:
            return (Status.FAIL, "no Alertmanager configured", "set [alertmanager] url and configure a receiver")
        if f.receivers_with_integrations is None:
            return (Status.UNKNOWN, f"Alertmanager status unreadable: {f.alertmanager_error}",
                    "check [alertmanager] url")
        if f.receivers_with_integrations == 0:
            return (Status.FAIL, "Alertmanager has no receiver with an integration (pager, chat, email)",
                    "add a receiver with e.g. pagerduty_configs or webhook_configs")
        return (Status.PASS, f"{f.receivers_with_integrations} Alertmanager receiver(s) with integrations", "")
    if item == "runbooks":
        if f.runbooks_missing:
            return (Status.FAIL, f"no runbook for {', '.join(f.runbooks_missing)}", "add docs/runbooks/<alert>.md")
        return (Status.PASS, "every shipped alert has a runbook page (docs/runbooks/)", "")
    if item == "backup":
        return (Status.UNKNOWN, "opsctl records no backups of the registry or the logs",
                "back up [daemon] state_dir (registry.db, artifacts) and the prediction logs")
    raise ValueError(f"not a fleet item: {item}")


def _fresh(f: FleetFacts, moment: datetime | None, interval: float) -> bool:
    return moment is not None and (f.now - moment).total_seconds() <= 3 * interval + 120


def _model(item: str, m: ModelFacts, f: FleetFacts) -> Verdict:
    if m.production_version is None:
        return (Status.UNKNOWN, "no production version", f"opsctl promote {m.model} VERSION")
    v = m.production_version
    if item == "accuracy_above_baseline":
        if m.previous_version is None:
            return (Status.UNKNOWN, f"{v} has no previous production version to compare with", "")
        if m.production_accuracy is None or m.previous_accuracy is None:
            return (Status.UNKNOWN, f"registry metrics lack accuracy for {v} or {m.previous_version}",
                    "register versions with --metrics holding accuracy")
        ok = m.production_accuracy >= m.previous_accuracy
        return (Status.PASS if ok else Status.FAIL,
                f"{v} accuracy {m.production_accuracy:g} vs {m.previous_version} {m.previous_accuracy:g}",
                "" if ok else f"opsctl rollback {m.model}")
    if item == "ab_significance":
        if m.canary_phase is None:
            return (Status.FAIL, f"{v} was promoted without a canary", "ship versions with opsctl canary start")
        ok = m.canary_phase == "succeeded"
        return (Status.PASS if ok else Status.FAIL, f"the canary of {v} ended {m.canary_phase}",
                "" if ok else f"opsctl canary status {m.model}")
    if item == "load_test":
        if m.load_test is None:
            return (Status.UNKNOWN, f"no load test recorded for {v}",
                    "record the result: register with --tag load_test=pass")
        ok = m.load_test.lower() in ("pass", "passed", "ok")
        return (Status.PASS if ok else Status.FAIL, f"tag load_test={m.load_test}", "" if ok else "rerun it")
    if item == "rollback_procedure":
        if m.previous_version is None:
            return (Status.FAIL, f"no previous version to roll back to from {v}", "keep the last good version")
        if m.previous_artifact_error:
            return (Status.FAIL, f"{m.previous_version}'s artifact does not verify: {m.previous_artifact_error}",
                    f"opsctl verify {m.model} {m.previous_version}")
        return (Status.PASS, f"opsctl rollback {m.model} goes to {m.previous_version} (artifact verified);"
                " runbooks in docs/runbooks/", "")
    if item == "prometheus_metrics" or item in _SLA_CHECKS:
        if m.health_at is None or not _fresh(f, m.health_at, f.health_seconds):
            when = "never" if m.health_at is None else _age(f.now, m.health_at)
            return (Status.UNKNOWN, f"no recent health result for {v} (last: {when})", "start the daemon")
        if item == "prometheus_metrics":
            ok = m.health_status != "unknown"
            return (Status.PASS if ok else Status.FAIL, f"{v} is {m.health_status} {m.health_reason}".strip(),
                    "" if ok else f"opsctl health {m.model}")
        check = next((c for c in m.checks if c.name == _SLA_CHECKS[item]), None)
        if check is None:
            return (Status.UNKNOWN, f"no {_SLA_CHECKS[item]} check in the last health result", "")
        status = {"pass": Status.PASS, "fail": Status.FAIL}.get(check.verdict, Status.UNKNOWN)
        return (status, f"{check.name} {check.value} (threshold {check.threshold}): {check.verdict}",
                "" if status is Status.PASS else f"opsctl health {m.model}")
    if item == "drift_detection":
        if m.drift_at is None:
            return (Status.FAIL, f"no drift result recorded for {m.model}",
                    "register a --reference sample and make sure the drift job runs")
        if not _fresh(f, m.drift_at, f.drift_seconds):
            return (Status.FAIL, f"last drift result {_age(f.now, m.drift_at)}: drift detection stopped",
                    "see opsctl status (drift job)")
        return (Status.PASS, f"last drift result {_age(f.now, m.drift_at)}: {m.drift_verdict}", "")
    if item == "postmortems":
        if m.rollbacks_30d == 0:
            return (Status.PASS, "no rollback in the last 30 days", "")
        return (Status.UNKNOWN, f"{m.rollbacks_30d} rollback(s) in 30 days; opsctl cannot see the postmortems",
                "opsctl incident timeline --postmortem FILE.md for each")
    if item in ("prediction_logs", "outcome_data"):
        size = m.predictions_bytes if item == "prediction_logs" else m.feedback_bytes
        name = f"{m.model}.{'predictions' if item == 'prediction_logs' else 'feedback'}.jsonl"
        if size:
            return (Status.PASS, f"{name}: {size} bytes ingested", "")
        if not f.log_dirs_configured:
            return (Status.UNKNOWN, "[ingest] log_dirs is empty: opsctl sees no log files", "set [ingest] log_dirs")
        return (Status.FAIL, f"no {name} ingested", "write it with opsctl.sdk.predlog into a log_dirs folder")
    raise ValueError(f"not a model item: {item}")


def evaluate(fleet: FleetFacts, models: Sequence[ModelFacts]) -> tuple[ChecklistItem, ...]:
    """Every row of the chapter's table: once for fleet items, once per model for model items."""
    items = []
    for item_id, category, title, priority, per_model in ITEMS:
        targets: Sequence[ModelFacts | None] = models if per_model else (None,)
        for m in targets:
            status, evidence, fix = _model(item_id, m, fleet) if m is not None else _fleet(item_id, fleet)
            items.append(ChecklistItem(item_id, category, title, priority, m.model if m else None, status,
                                       evidence, fix))
    return tuple(items)


def exit_code(items: Sequence[ChecklistItem]) -> int:
    """Like ``opsctl health``: 2 a required item fails, 1 a recommended one, 3 something unknown, 0 all pass."""
    if any(i.status is Status.FAIL and i.priority is Priority.REQUIRED for i in items):
        return 2
    if any(i.status is Status.FAIL for i in items):
        return 1
    if any(i.status is Status.UNKNOWN for i in items):
        return 3
    return 0
