"""Use case: the production checklist of the fleet (or one model) against live state."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.adapters.checklist_probe import fleet_facts, model_facts, shipped_rule_names
from opsctl.adapters.registry_reader import RegistryLocation
from opsctl.clock import Clock, utc_iso
from opsctl.core.checklist import ChecklistItem, evaluate, exit_code
from opsctl.core.runbooks import DAEMON_ALERTS, SHIPPED_RULES_FILE

if TYPE_CHECKING:
    from datetime import datetime

    from opsctl.config import Settings


@dataclass(frozen=True)
class ChecklistReport:
    at: datetime
    model: str | None
    items: tuple[ChecklistItem, ...]

    @property
    def exit_code(self) -> int:
        return exit_code(self.items)

    def to_json(self) -> dict[str, Any]:
        counts = Counter(i.status.value for i in self.items)
        return {"at": utc_iso(self.at), "model": self.model, "exit_code": self.exit_code,
                "counts": {s: counts.get(s, 0) for s in ("pass", "fail", "unknown")},
                "items": [i.to_json() for i in self.items]}


def run_checklist(settings: Settings, clock: Clock, model: str | None = None) -> ChecklistReport:
    """Gather the facts (registry, Prometheus, Alertmanager, runbooks) and evaluate every item."""
    now = clock.now()
    daemon, jobs = settings.daemon, settings.jobs
    timeout = min(settings.prometheus.timeout_seconds, 3.0)
    registry = RegistryLocation.of(settings.registry, daemon.registry_path)
    fleet = fleet_facts(
        registry=registry, now=now, health_seconds=jobs.health_seconds,
        drift_seconds=jobs.drift_seconds, ingest_seconds=jobs.ingest_seconds,
        log_dirs_configured=bool(settings.ingest.log_dirs), prometheus_url=settings.prometheus.url,
        alertmanager_url=(settings.alertmanager.alertmanager_urls or ("",))[0], timeout=timeout,
        prometheus_http=settings.prometheus.http, alertmanager_http=settings.alertmanager.http,
        expected_rules=shipped_rule_names(SHIPPED_RULES_FILE), daemon_rules=DAEMON_ALERTS)
    models = model_facts(registry, daemon.artifacts_dir, now, model)
    return ChecklistReport(now, model, evaluate(fleet, models))
