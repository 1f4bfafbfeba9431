"""The audit log's integrity: verify the whole hash chain, and watch it from the daemon.

:func:`verify_registry` is what ``opsctl audit verify`` runs against the file. :class:`AuditWatch` is the
daemon's: every check (at start, then every ``[jobs] audit_seconds``) verifies the whole chain and that
the last row verified before is still there with the same hash, which catches rows deleted from the
end and a chain recomputed from scratch. A broken chain raises the critical ``AuditLogTampered`` alert
(source ``job``) and keeps it firing; the anchor is not advanced past a break, so the alert stays until
someone repairs or replaces the file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from opsctl.adapters.alert_store import AlertStore
from opsctl.adapters.registry import Registry
from opsctl.clock import Clock
from opsctl.core.alerts import (
    AlertPolicy,
    AlertRule,
    AlertSource,
    Condition,
    Notification,
    Severity,
    step,
)
from opsctl.core.audit_chain import GENESIS_HASH, ChainReport

log = logging.getLogger("opsctl.audit")

AUDIT_TAMPERED = AlertRule(
    "AuditLogTampered", Severity.CRITICAL, for_seconds=0, source=AlertSource.JOB,
    annotations={"description": "The audit log's hash chain is broken: a row was edited, deleted or forged."
                                " Run `opsctl audit verify` and compare with a backup."})


def verify_registry(registry: Registry) -> ChainReport:
    """Recompute the whole audit chain of a registry file."""
    with registry.read() as tx:
        return tx.verify_audit_chain()


class AuditWatch:
    """The daemon's periodic check of the audit chain, alerting through the alert engine."""

    def __init__(self, registry: Registry, *, clock: Clock, policy: Callable[[], AlertPolicy],
                 notify: Callable[[Sequence[Notification]], None] | None = None) -> None:
        self.registry = registry
        self.clock = clock
        self._policy = policy
        self._notify = notify
        self._store = AlertStore()
        self._lock = threading.Lock()
        self._anchor: tuple[int, str] | None = None  # last verified (id, row_hash)
        self.last_report: ChainReport | None = None

    def check(self) -> ChainReport:
        """Verify the whole chain and the last verified row; step the alert; return the verdict."""
        with self._lock:
            with self.registry.read() as tx:
                report = tx.verify_audit_chain()
                if report.ok and self._anchor is not None:
                    # A valid but shorter or rewritten-from-scratch chain: compare with what was verified.
                    anchor_id, anchor_hash = self._anchor
                    stored = tx.audit_row_hash(anchor_id)
                    if stored != anchor_hash:
                        what = "deleted" if stored is None else "replaced"
                        report = ChainReport(report.rows, report.last_id, report.last_hash, anchor_id,
                                             f"row {anchor_id}, verified earlier, was {what}")
            if report.ok and report.last_id is not None and report.last_hash is not None:
                self._anchor = (report.last_id, report.last_hash)
            self.last_report = report
        self._step_alert(report)
        if not report.ok:
            log.error("audit log chain broken", extra={"first_broken_id": report.first_broken_id,
                                                       "problem": report.problem})
        return report

    def _step_alert(self, report: ChainReport) -> None:
        condition = Condition(AUDIT_TAMPERED, {"registry": str(self.registry.path)}, active=not report.ok,
                              summary=f"audit log tampered: {report.problem}" if not report.ok else "")
        now = self.clock.now()
        with self.registry.write() as tx:
            before = self._store.load(tx)
            silences = self._store.silences(tx, active_at=now)
            after, notifications = step(before, [condition], now, silences=silences, policy=self._policy(),
                                        evaluated_sources=(AlertSource.JOB,))
            self._store.apply(tx, before, after, now)
        if notifications and self._notify is not None:
            try:
                self._notify(notifications)
            except Exception:  # delivery is the notifier's to retry; the verdict stands
                log.exception("sending the audit alert failed")


__all__ = ["AUDIT_TAMPERED", "GENESIS_HASH", "AuditWatch", "verify_registry"]
