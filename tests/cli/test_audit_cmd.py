"""``opsctl audit verify`` over a real registry file: 0 when intact, 5 naming the first broken row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.fixtures.cli import OpsctlEnv


@pytest.fixture
def audited(opsctl_env: OpsctlEnv) -> OpsctlEnv:
    artifact = opsctl_env.root / "model.joblib"
    artifact.write_bytes(b"weights")
    for version in ("1", "2"):
        assert opsctl_env.run("register", "fraud", "--version", version, "--artifact", str(artifact)).code == 0
        assert opsctl_env.run("promote", "fraud", version, "--yes").code == 0
    return opsctl_env


def _tamper(registry: Path, statement: str) -> None:
    conn = sqlite3.connect(registry, isolation_level=None)
    for name in ("audit_log_append_only_update", "audit_log_append_only_delete", "audit_log_append_only_insert"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(statement)
    conn.close()


def test_an_intact_log_verifies(audited: OpsctlEnv) -> None:
    result = audited.run("audit", "verify", "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["ok"] is True and result.json()["rows"] == 4


@pytest.mark.parametrize(("statement", "row"), [
    ("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", 2),
    ("INSERT INTO audit_log(at, actor, via, action, outcome) VALUES ('2026-01-01T00:00:00Z', 'mallory', 'cli',"
     " 'promote', 'ok')", 5),
])
def test_an_edited_or_forged_row_exits_5_naming_it(audited: OpsctlEnv, statement: str, row: int) -> None:
    _tamper(audited.state_dir / "registry.db", statement)
    result = audited.run("audit", "verify")
    assert result.code == 5
    assert f"first broken row {row}" in result.stderr and "Traceback" not in result.stderr
    as_json = audited.run("audit", "verify", "-o", "json")
    assert as_json.code == 5 and as_json.json()["first_broken_id"] == row


def test_a_missing_registry_is_not_found(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("audit", "verify", "--registry", str(opsctl_env.root / "nope.db"))
    assert result.code == 3 and "not found" in result.stderr
    assert not (opsctl_env.root / "nope.db").exists()
