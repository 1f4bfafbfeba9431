"""`[registry] url = "postgresql://..."` end to end: the real CLI and two real daemons on one PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.postgres import PostgresServer


def _env(root: Path, url: str) -> OpsctlEnv:
    return make_opsctl_env(root, f'\n[registry]\nurl = "{url}"\n')


def test_the_cli_acts_on_a_postgresql_registry_directly(tmp_path: Path, postgres_server: PostgresServer) -> None:
    env = _env(tmp_path / "a", postgres_server.create_database())
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"weights")
    assert env.run("register", "fraud", "--version", "1", "--artifact", str(artifact)).code == 0
    promoted = env.run("promote", "fraud", "1", "--yes", "--reason", "first", "-o", "json")
    assert promoted.code == 0, promoted.stderr
    models = env.run("models", "-o", "json")
    assert [(m["model"], m["production_version"]) for m in models.json()] == [("fraud", "1")]
    assert "Traceback" not in models.stderr and "Exception" not in models.stderr, models.stderr
    history = env.run("history", "fraud", "-o", "json").json()
    assert [e["action"] for e in history][-1] == "promote"
    verified = env.run("audit", "verify", "-o", "json")
    assert verified.code == 0 and verified.json()["ok"] and verified.json()["rows"] == len(history)
    # Nothing went to a SQLite file: the registry is the database.
    assert not (env.state_dir / "registry.db").exists()


def test_two_daemons_serve_one_postgresql_registry(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    first, second = _env(tmp_path / "a", url), _env(tmp_path / "b", url)
    daemons = [DaemonProcess(first).start(timeout=60), DaemonProcess(second).start(timeout=60)]
    try:
        artifact = tmp_path / "model.joblib"
        artifact.write_bytes(b"weights")
        assert first.run("register", "fraud", "--version", "1", "--artifact", str(artifact)).code == 0
        promoted = first.run("promote", "fraud", "1", "--yes", "--reason", "via a")
        assert promoted.code == 0, promoted.stderr
        # The other daemon answers from the same registry: the model, its production version, the audit trail.
        models = second.run("models", "-o", "json")
        assert models.code == 0, models.stderr
        assert [(m["model"], m["production_version"]) for m in models.json()] == [("fraud", "1")]
        assert "via a" in [e["reason"] for e in second.run("history", "fraud", "-o", "json").json()]
    finally:
        for daemon in daemons:
            daemon.stop()
    assert second.run("audit", "verify").code == 0
