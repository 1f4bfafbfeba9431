"""Use case: the comprehensive health report (Markdown or self-contained HTML)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from opsctl.adapters import report_store
from opsctl.adapters.incident_store import read_entries
from opsctl.adapters.registry_reader import RegistryLocation
from opsctl.clock import Clock
from opsctl.core.incident import merge
from opsctl.core.report import ReportData
from opsctl.services.checklist import run_checklist

if TYPE_CHECKING:
    from opsctl.config import Settings


def build_report(settings: Settings, clock: Clock, since_seconds: float, model: str | None = None) -> ReportData:
    """Everything the report shows, read from the registry (read-only), plus the live checklist."""
    now = clock.now()
    since = now - timedelta(seconds=since_seconds)
    path = RegistryLocation.of(settings.registry, settings.daemon.registry_path)
    entries, _ = read_entries(path, since, model)
    return ReportData(
        generated_at=now, since=since,
        versions=tuple(report_store.versions(path, since, model)),
        alerts=tuple(report_store.alerts(path, model)),
        canaries=tuple(report_store.canaries(path, model)),
        drift=tuple(report_store.drift(path, model)),
        performance=tuple(report_store.performance(path, model)),
        checklist=run_checklist(settings, clock, model).items,
        changes=merge(e for e in entries if e.source == "audit"),
    )
