"""The audit log in the daemon: its integrity (the hash chain verified at start and every ``[jobs]
audit_seconds``) and ``opsctl_model_changes_total`` (promotes, rollbacks, canary steps) for dashboards.

The first run (at start) verifies the whole chain; later runs verify the rows after the last verified
one and that this row is unchanged (:class:`opsctl.services.audit.AuditWatch`). A broken chain fails
the job, fires the critical ``AuditLogTampered`` alert and adds an ``audit`` section to the status
document naming the first broken row.
"""

from __future__ import annotations

from typing import Any

from opsctl.adapters.model_changes import ModelChangeCounts
from opsctl.adapters.registry_reader import RegistryLocation
from opsctld.jobs import JobOutcome, JobSpec
from opsctld.main import Subsystem
from opsctld.state import DaemonState


def start(state: DaemonState) -> None:
    watch = state.services.audit
    # Promotes, rollbacks and canary steps as a counter, for the dashboard's annotations.
    state.metrics.track_model_changes(ModelChangeCounts(
        RegistryLocation.of(state.settings.registry, state.settings.daemon.registry_path)))

    def status() -> dict[str, Any] | None:
        report = watch.last_report
        return None if report is None else report.to_json()

    state.status_providers["audit"] = status


def jobs(state: DaemonState) -> list[JobSpec]:
    watch = state.services.audit

    def run() -> JobOutcome:
        report = watch.check()
        if report.ok:
            return JobOutcome(True, f"audit chain intact up to row {report.last_id or 0}", report.to_json())
        return JobOutcome(False, f"audit log tampered: first broken row {report.first_broken_id}: {report.problem}",
                          report.to_json())

    return [JobSpec("audit", state.settings.jobs.audit_seconds, run, interval_key="audit_seconds")]


SUBSYSTEM = Subsystem(name="audit", jobs=jobs, start=start)
