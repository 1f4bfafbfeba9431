"""The SQLite registry: migrations, WAL, append-only audit log."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsctl.adapters.registry import SCHEMA_VERSION, Registry, RegistryError
from opsctl.domain import Actor, Outcome

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_migrates_an_empty_file_to_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.touch()
    registry = Registry(path)
    assert registry.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"models", "versions", "deployments", "audit_log", "events", "job_runs"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    first = Registry(path)
    with first.write() as tx:
        tx.ensure_model("fraud", NOW)
    first.close()
    second = Registry(path)
    assert [m.name for m in second.list_models()] == ["fraud"]
    assert second.schema_version() == SCHEMA_VERSION


def test_refuses_a_registry_written_by_a_newer_opsctl(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RegistryError, match="newer than this opsctl"):
        Registry(path).list_models()


def test_audit_log_is_append_only(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    with registry.write() as tx:
        tx.append_audit(actor=Actor("alice", 1000), action="promote", model="fraud", from_version=None,
                        to_version="1", reason="r", outcome=Outcome.OK, now=NOW)
    conn = sqlite3.connect(tmp_path / "registry.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    assert [e.actor for e in registry.audit()] == ["alice"]


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    with pytest.raises(RuntimeError), registry.write() as tx:
        tx.ensure_model("fraud", NOW)
        raise RuntimeError("crash between the writes")
    assert registry.list_models() == []


def test_prune_keeps_the_audit_log(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with registry.write() as tx:
        tx.append_event(kind="job", model=None, payload={"x": 1}, now=old)
        tx.append_event(kind="job", model=None, payload={"x": 2}, now=NOW)
        tx.record_job_run(job="health", started_at=old, finished_at=old, ok=True, summary="")
        tx.append_audit(actor=Actor("a"), action="promote", model="m", from_version=None, to_version="1",
                        reason="", outcome=Outcome.OK, now=old)
    with registry.write() as tx:
        assert tx.prune(before=datetime(2021, 1, 1, tzinfo=UTC)) == 2
        counts = tx.counts()
    assert counts["events"] == 1 and counts["job_runs"] == 0 and counts["audit_log"] == 1


def test_the_registry_knows_the_canary_state_machines_terminal_phases() -> None:
    """`live_canary_version` answers in plain SQL; it must agree with the state machine's phases."""
    from opsctl.adapters.registry import CANARY_TERMINAL_PHASES
    from opsctl.core.canary import Phase

    assert {p.value for p in Phase if p.terminal} == CANARY_TERMINAL_PHASES


def _audit(registry: Registry, n: int) -> None:
    for i in range(n):
        with registry.write() as tx:
            tx.append_audit(actor=Actor("alice", 1000), action="promote", model="fraud", from_version=None,
                            to_version=str(i), reason="r", outcome=Outcome.OK, now=NOW)


@pytest.mark.parametrize("verb", ["REPLACE", "INSERT OR REPLACE"])
def test_replace_into_the_audit_log_is_refused_by_the_sqlite3_shell(tmp_path: Path, verb: str) -> None:
    # The sqlite3 shell does not set recursive_triggers, so REPLACE's implicit delete fired no trigger.
    path = tmp_path / "registry.db"
    registry = Registry(path)
    _audit(registry, 2)
    registry.close()
    statement = (f"{verb} INTO audit_log(id, at, actor, via, action, outcome) "
                 "VALUES (2, '2026-01-01T00:00:00Z', 'mallory', 'cli', 'promote', 'ok');")
    shell = subprocess.run(["sqlite3", str(path), statement], capture_output=True, text=True)
    assert shell.returncode != 0 and "append-only" in shell.stderr
    assert [e.actor for e in Registry(path).audit()] == ["alice", "alice"]


def test_inserts_that_do_not_append_are_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    _audit(registry, 2)
    conn = sqlite3.connect(tmp_path / "registry.db")
    for statement in (
        "INSERT INTO audit_log(at, actor, via, action, outcome) VALUES ('t', 'mallory', 'cli', 'x', 'ok')",
        "INSERT INTO audit_log(id, at, actor, via, action, outcome) VALUES (1, 't', 'mallory', 'cli', 'x', 'ok')"
        " ON CONFLICT(id) DO UPDATE SET actor = 'mallory'",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(statement)


def test_every_appended_row_chains_to_the_one_before(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.db")
    _audit(registry, 3)
    with registry.read() as tx:
        report = tx.verify_audit_chain()
    assert report.ok and report.rows == 3 and report.last_id == 3


def _without_triggers(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for name in ("audit_log_append_only_update", "audit_log_append_only_delete", "audit_log_append_only_insert"):
        conn.execute(f"DROP TRIGGER {name}")
    return conn


@pytest.mark.parametrize(("tamper", "first_broken"), [
    ("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", 2),
    ("DELETE FROM audit_log WHERE id = 2", 3),
    ("INSERT INTO audit_log(at, actor, via, action, outcome) VALUES ('2026-01-01T00:00:00Z', 'mallory', 'cli',"
     " 'promote', 'ok')", 5),
    ("DELETE FROM audit_log WHERE id = 4", 4),
])
def test_tampering_with_the_triggers_dropped_is_named_at_the_first_broken_row(
        tmp_path: Path, tamper: str, first_broken: int) -> None:
    path = tmp_path / "registry.db"
    registry = Registry(path)
    _audit(registry, 4)
    registry.close()
    _without_triggers(path).execute(tamper)
    with Registry(path).read() as tx:
        report = tx.verify_audit_chain()
    assert not report.ok and report.first_broken_id == first_broken


def test_upgrading_an_old_registry_chains_its_existing_rows(tmp_path: Path) -> None:
    from opsctl.adapters.registry import MIGRATIONS

    path = tmp_path / "registry.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for index, migration in enumerate(MIGRATIONS[:3]):  # the schema before the chain
        assert isinstance(migration, str)
        conn.executescript(migration)
        conn.execute(f"PRAGMA user_version = {index + 1}")
    for i in range(3):
        conn.execute("INSERT INTO audit_log(at, actor, via, action, outcome) VALUES (?, 'bob', 'cli', 'promote',"
                     " 'ok')", (f"2026-01-0{i + 1}T00:00:00Z",))
    conn.close()
    registry = Registry(path)
    assert registry.schema_version() == SCHEMA_VERSION
    _audit(registry, 1)
    with registry.read() as tx:
        report = tx.verify_audit_chain()
    assert report.ok and report.rows == 4
    assert [e.actor for e in registry.audit()] == ["bob", "bob", "bob", "alice"]
