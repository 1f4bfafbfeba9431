"""``opsctl migrate`` on a SQLite file and on a real PostgreSQL: from-version -> to-version, ``--check`` for deploy
scripts, a registry of the previous release brought forward, two runs at once applying each step once, and a
registry written by a newer opsctl refused without being touched."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from opsctl.adapters import registry_postgres
from opsctl.adapters.registry import MIGRATIONS, SCHEMA_VERSION
from tests.fixtures.cli import OPSCTL, OpsctlEnv, make_opsctl_env
from tests.fixtures.postgres import ENGINES, PostgresServer


@pytest.fixture(params=ENGINES)
def engine_env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[OpsctlEnv, str]:
    """An opsctl config on the engine under test, its registry not created yet; the PostgreSQL URL ('' for SQLite)."""
    url = ""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    return make_opsctl_env(tmp_path / "opsctl", f'[registry]\nurl = "{url}"\n' if url else ""), url


def _set_up_at(env: OpsctlEnv, url: str, version: int) -> None:
    """The registry as an opsctl whose schema ends at ``version`` left it (its migrations, applied outside opsctl)."""
    if not url:
        env.state_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(env.state_dir / "registry.db", isolation_level=None)
        for index, step in enumerate(MIGRATIONS[:version]):
            conn.execute("BEGIN")
            if isinstance(step, str):
                for statement in step.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
            else:
                step(conn)
            conn.execute(f"PRAGMA user_version = {index + 1}")
            conn.execute("COMMIT")
        conn.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE opsctl_schema (only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),"
                     " version INTEGER NOT NULL)")
        conn.execute("INSERT INTO opsctl_schema(version) VALUES (%s)", (version,))
        for step in registry_postgres.MIGRATIONS[:version]:
            with conn.transaction():
                conn.execute(step.encode()) if isinstance(step, str) else step(conn)


def _sql(env: OpsctlEnv, url: str, statement: str) -> list[tuple[object, ...]]:
    """One statement on the registry's database outside opsctl (autocommit); its rows."""
    if not url:
        conn = sqlite3.connect(env.state_dir / "registry.db", isolation_level=None)
        try:
            return [tuple(row) for row in conn.execute(statement).fetchall()]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(statement)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


def _stored_version(env: OpsctlEnv, url: str) -> int:
    statement = "SELECT version FROM opsctl_schema" if url else "PRAGMA user_version"
    return int(_sql(env, url, statement)[0][0])  # type: ignore[call-overload]


def test_a_new_registry_is_migrated_and_check_says_when_it_is_due(engine_env: tuple[OpsctlEnv, str]) -> None:
    env, url = engine_env
    due = env.run("migrate", "--check")
    assert due.code == 1 and due.stdout == ""
    assert due.stderr.strip().splitlines() == [
        f"opsctl: {_shown(env, url)} is at schema 0, this opsctl at {SCHEMA_VERSION}: {SCHEMA_VERSION} migrations"
        " pending; run `opsctl migrate`"]
    assert not (env.state_dir / "registry.db").exists() or url  # --check created nothing

    done = env.run("migrate")
    assert done.code == 0, done.stderr
    assert done.stdout.strip() == (f"{_shown(env, url)}: schema 0 -> {SCHEMA_VERSION}"
                                   f" ({SCHEMA_VERSION} migrations applied)")
    assert _stored_version(env, url) == SCHEMA_VERSION

    again = env.run("migrate", "-o", "json")
    assert again.code == 0 and again.json() == {"registry": _shown(env, url), "from_version": SCHEMA_VERSION,
                                                "to_version": SCHEMA_VERSION, "applied": 0}
    checked = env.run("migrate", "--check", "-o", "json")
    assert checked.code == 0 and checked.json()["pending"] == 0


def test_the_previous_releases_registry_is_brought_forward_keeping_its_data(
        engine_env: tuple[OpsctlEnv, str]) -> None:
    env, url = engine_env
    _set_up_at(env, url, SCHEMA_VERSION - 1)
    _sql(env, url, "INSERT INTO models(name, created_at) VALUES ('fraud', '2026-12-01T03:00:00Z')")
    due = env.run("migrate", "--check", "-o", "json")
    assert due.code == 1 and due.json() == {"registry": _shown(env, url), "from_version": SCHEMA_VERSION - 1,
                                            "to_version": SCHEMA_VERSION, "pending": 1}
    done = env.run("migrate", "-o", "json")
    assert done.code == 0 and (done.json()["from_version"], done.json()["to_version"]) == (
        SCHEMA_VERSION - 1, SCHEMA_VERSION)
    assert _sql(env, url, "SELECT name FROM models") == [("fraud",)]  # its data is still there
    assert env.run("audit", "verify").code == 0


def test_two_runs_at_once_apply_each_step_once(engine_env: tuple[OpsctlEnv, str]) -> None:
    env, _url = engine_env
    runs = [subprocess.Popen([OPSCTL, "migrate", "-o", "json"], env=env.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    applied = sorted(json.loads(out)["applied"] for out, _err in results)
    assert sum(applied) == SCHEMA_VERSION and all(json.loads(out)["to_version"] == SCHEMA_VERSION
                                                  for out, _err in results)


def test_a_registry_of_a_newer_opsctl_is_refused_and_left_alone(engine_env: tuple[OpsctlEnv, str]) -> None:
    env, url = engine_env
    assert env.run("migrate").code == 0
    _sql(env, url, f"UPDATE opsctl_schema SET version = {SCHEMA_VERSION + 1}" if url
         else f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for args in (("migrate",), ("migrate", "--check")):
        refused = env.run(*args)
        assert refused.code == 1 and refused.stderr.strip() == (
            f"opsctl: registry {_shown(env, url)} has schema {SCHEMA_VERSION + 1}, newer than this opsctl knows"
            f" ({SCHEMA_VERSION}); upgrade opsctl"), (args, refused.stderr)
    assert _stored_version(env, url) == SCHEMA_VERSION + 1


def _shown(env: OpsctlEnv, url: str) -> str:
    return url or str(env.state_dir / "registry.db")
