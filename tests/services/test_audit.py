"""AuditWatch against a real registry file: the tail it verified must stay, and alerts follow the verdict."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from opsctl.adapters.alert_store import AlertStore
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.core.alerts import AlertPhase, AlertPolicy
from opsctl.domain import Actor, Outcome
from opsctl.services.audit import AuditWatch

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _append(registry: Registry, n: int) -> None:
    for i in range(n):
        with registry.write() as tx:
            tx.append_audit(actor=Actor("alice", 1000), action="promote", model="fraud", from_version=None,
                            to_version=str(i), reason="", outcome=Outcome.OK, now=NOW)


def test_rows_deleted_from_the_end_with_the_counter_reset_are_caught_by_the_anchor(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    _append(registry, 3)
    sent: list[object] = []
    watch = AuditWatch(registry, clock=ManualClock(NOW), policy=AlertPolicy, notify=sent.extend)
    assert watch.check().ok
    conn = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_append_only_delete")
    conn.execute("DELETE FROM audit_log WHERE id = 3")
    conn.execute("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'audit_log'")
    conn.close()
    report = watch.check()
    assert not report.ok and report.first_broken_id == 3 and "deleted" in report.problem
    alerts = AlertStore().load(registry)
    assert [(a.rule, a.phase) for a in alerts] == [("AuditLogTampered", AlertPhase.FIRING)]
    assert len(sent) == 1


def test_new_rows_after_a_check_keep_the_chain_valid(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    _append(registry, 2)
    watch = AuditWatch(registry, clock=ManualClock(NOW), policy=AlertPolicy)
    assert watch.check().ok
    _append(registry, 2)
    report = watch.check()
    assert report.ok and report.last_id == 4
    assert AlertStore().load(registry) == []
