"""The daemon verifies the audit chain at start and on a schedule, and alerts when it breaks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for


@pytest.fixture
def audited_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    env = make_opsctl_env(tmp_path / "opsctl", "[jobs]\naudit_seconds = 0.3\n")
    artifact = env.root / "m.bin"
    artifact.write_bytes(b"w")
    assert env.run("register", "fraud", "--version", "1", "--artifact", str(artifact)).code == 0
    assert env.run("promote", "fraud", "1", "--yes").code == 0
    process = DaemonProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


def _audit_job(daemon: DaemonProcess) -> dict[str, Any]:
    status = daemon.http().get("/v1/status").json()
    return next(j for j in status["jobs"] if j["name"] == "audit")


def _tamper(env: OpsctlEnv, statement: str) -> None:
    conn = sqlite3.connect(env.state_dir / "registry.db", isolation_level=None, timeout=5)
    conn.execute("BEGIN IMMEDIATE")
    for name in ("audit_log_append_only_update", "audit_log_append_only_delete", "audit_log_append_only_insert"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(statement)
    conn.execute("COMMIT")
    conn.close()


def _firing(daemon: DaemonProcess) -> list[dict[str, Any]]:
    alerts = daemon.http().get("/v1/alerts").json()
    items = alerts["alerts"] if isinstance(alerts, dict) else alerts
    return [a for a in items if a["rule"] == "AuditLogTampered" and a["state"] == "firing"]


def test_an_intact_chain_passes_at_start(audited_daemon: DaemonProcess) -> None:
    job = wait_for(lambda: (j := _audit_job(audited_daemon))["runs"] >= 1 and j, what="first audit run")
    assert job["last_ok"] is True
    status = audited_daemon.http().get("/v1/status").json()
    assert status["audit"]["ok"] is True and status["audit"]["last_id"] == 2
    assert _firing(audited_daemon) == []


@pytest.mark.parametrize(("statement", "row"), [
    ("UPDATE audit_log SET reason = 'nothing happened' WHERE id = 1", 1),
    ("INSERT INTO audit_log(at, actor, via, action, outcome) VALUES ('2026-01-01T00:00:00Z', 'mallory', 'cli',"
     " 'promote', 'ok')", 3),
])
def test_tampering_while_running_fails_the_job_and_fires_an_alert(
        audited_daemon: DaemonProcess, statement: str, row: int) -> None:
    wait_for(lambda: _audit_job(audited_daemon)["last_ok"] is True, what="first audit run")
    _tamper(audited_daemon.env, statement)
    job = wait_for(lambda: (j := _audit_job(audited_daemon))["last_ok"] is False and j, what="failed audit")
    assert f"first broken row {row}" in job["last_summary"]
    firing = wait_for(lambda: _firing(audited_daemon), what="AuditLogTampered firing")
    assert firing[0]["severity"] == "critical"
    assert audited_daemon.http().get("/v1/status").json()["audit"]["first_broken_id"] == row


def _model_changes(daemon: DaemonProcess) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(daemon.http().get("/metrics").text)
    return {(s.labels["model"], s.labels["change"]): s.value for f in families if f.name == "opsctl_model_changes"
            for s in f.samples if s.name == "opsctl_model_changes_total" and s.value}


def _all_samples(daemon: DaemonProcess) -> list[Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return [s for f in text_string_to_metric_families(daemon.http().get("/metrics").text)
            if f.name == "opsctl_model_changes" for s in f.samples if s.name == "opsctl_model_changes_total"]


def test_model_changes_are_counted_from_the_audit_log_and_survive_a_restart(audited_daemon: DaemonProcess) -> None:
    env = audited_daemon.env
    # The promote made on the registry before the daemon started is in the audit log, so it counts.
    assert _model_changes(audited_daemon) == {("fraud", "promote"): 1.0}
    artifact = env.root / "m2.bin"
    artifact.write_bytes(b"w2")
    assert env.run("register", "fraud", "--version", "2", "--artifact", str(artifact)).code == 0
    assert env.run("promote", "fraud", "2", "--yes").code == 0
    assert env.run("rollback", "fraud", "--yes", "--reason", "test").code == 0
    failed = env.run("promote", "fraud", "9", "--yes")  # refused: no change, not counted
    assert failed.code != 0
    # Registering is not a change to what is served: no "register" series.
    assert ("fraud", "register") not in {(s.labels["model"], s.labels["change"]) for s in _all_samples(audited_daemon)}
    assert _model_changes(audited_daemon) == {("fraud", "promote"): 2.0, ("fraud", "rollback"): 1.0}

    audited_daemon.stop()
    again = DaemonProcess(env).start()
    try:
        assert _model_changes(again) == {("fraud", "promote"): 2.0, ("fraud", "rollback"): 1.0}
    finally:
        again.stop()
