"""The one-shot CLI as a user runs it: a real subprocess, JSON parsed, exit codes checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.cli import OpsctlEnv


@pytest.fixture
def seeded(opsctl_env: OpsctlEnv) -> OpsctlEnv:
    for version in ("1.0.0", "1.1.0"):
        artifact = opsctl_env.root / f"model-{version}.joblib"
        artifact.write_bytes(f"weights {version}".encode())
        metrics = opsctl_env.root / f"metrics-{version}.json"
        metrics.write_text(json.dumps({"accuracy": 0.91, "auc": 0.95}))
        result = opsctl_env.run("register", "fraud-detector", "--version", version, "--artifact", str(artifact),
                                "--metrics", str(metrics), "--tag", "team=risk", "-o", "json")
        assert result.code == 0, result.stderr
        assert result.json()["sha256"]
    return opsctl_env


def test_register_promote_rollback_round_trip(seeded: OpsctlEnv) -> None:
    assert seeded.run("promote", "fraud-detector", "1.0.0", "--yes", "--reason", "launch").code == 0
    promoted = seeded.run("promote", "fraud-detector", "1.1.0", "--yes", "-o", "json")
    assert promoted.code == 0 and promoted.json()["to_version"] == "1.1.0"

    versions = seeded.run("versions", "fraud-detector", "-o", "json").json()
    assert [(v["version"], v["status"]) for v in versions] == [("1.0.0", "archived"), ("1.1.0", "production")]
    for v in versions:
        assert set(v) >= {"version", "status", "sha256", "metrics", "created_at"}
        assert v["metrics"] == {"accuracy": 0.91, "auc": 0.95}
        assert len(v["sha256"]) == 64

    rolled = seeded.run("rollback", "fraud-detector", "--yes", "--reason", "p99 regression", "-o", "json")
    assert rolled.code == 0, rolled.stderr
    assert (rolled.json()["from_version"], rolled.json()["to_version"]) == ("1.1.0", "1.0.0")

    history = seeded.run("history", "fraud-detector", "-o", "json").json()
    assert [(e["action"], e["to_version"], e["outcome"]) for e in history] == [
        ("register", "1.0.0", "ok"), ("register", "1.1.0", "ok"), ("promote", "1.0.0", "ok"),
        ("promote", "1.1.0", "ok"), ("rollback", "1.0.0", "ok")]
    assert history[-1]["reason"] == "p99 regression" and history[-1]["via"] == "direct (daemon down)"
    # The table shows what happened (the detail) next to why (the reason).
    table = seeded.run("history", "fraud-detector").stdout.splitlines()
    assert table[0].split()[-2:] == ["DETAIL", "REASON"]
    detail = table[0].index("DETAIL")
    assert table[-1][detail:].split("  ")[0] == history[-1]["detail"] and table[-1].endswith("  p99 regression")
    models = seeded.run("models", "-o", "json").json()
    assert models == [{**models[0], "model": "fraud-detector", "production_version": "1.0.0", "versions": 2}]


def test_rollback_with_no_previous_version_is_a_clear_error_and_changes_nothing(seeded: OpsctlEnv) -> None:
    assert seeded.run("promote", "fraud-detector", "1.0.0", "--yes").code == 0
    before = seeded.run("models", "-o", "json").json()
    result = seeded.run("rollback", "fraud-detector", "--yes")
    assert result.code == 4
    assert result.stderr.strip().splitlines()[-1].startswith(
        "opsctl: fraud-detector has no previous production version")
    assert "Traceback" not in result.stderr
    assert seeded.run("models", "-o", "json").json() == before


def test_production_change_without_a_terminal_names_yes(seeded: OpsctlEnv) -> None:
    result = seeded.run("promote", "fraud-detector", "1.0.0")
    assert result.code == 7
    assert "--yes" in result.stderr
    assert seeded.run("models", "-o", "json").json()[0]["production_version"] is None


def test_promoting_the_current_version_is_a_noop(seeded: OpsctlEnv) -> None:
    assert seeded.run("promote", "fraud-detector", "1.0.0", "--yes").code == 0
    again = seeded.run("promote", "fraud-detector", "1.0.0")  # no --yes needed: nothing changes
    assert again.code == 0 and "already in production" in again.stdout


@pytest.mark.parametrize("args,code,message", [
    (["versions", "nope"], 3, "model 'nope' not found"),
    (["promote", "fraud-detector", "9.9.9", "--yes"], 3, "version 'fraud-detector 9.9.9' not found"),
    (["promote"], 2, "the following arguments are required"),
    (["register", "fraud-detector", "--version", "2.0.0", "--artifact", "/nonexistent"], 3, "not found"),
    (["history", "-n", "0"], 2, "--limit must be positive"),
])
def test_errors_are_one_line_with_documented_exit_codes(seeded: OpsctlEnv, args: list[str], code: int,
                                                        message: str) -> None:
    result = seeded.run(*args)
    assert result.code == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_errors_in_json_mode_are_also_a_document(seeded: OpsctlEnv) -> None:
    result = seeded.run("versions", "nope", "-o", "json")
    assert result.code == 3
    assert result.json()["error"] == {"type": "NotFoundError", "message": "model 'nope' not found (see `opsctl"
                                      " models`)", "exit_code": 3}


def test_verify_refuses_a_tampered_artifact(seeded: OpsctlEnv) -> None:
    assert seeded.run("verify", "fraud-detector").code == 0
    sha = seeded.run("versions", "fraud-detector", "-o", "json").json()[1]["sha256"]
    stored = next((seeded.state_dir / "artifacts").glob(f"sha256-{sha}*"))
    stored.chmod(0o640)
    stored.write_bytes(b"tampered")
    result = seeded.run("verify", "fraud-detector", "-o", "json")
    assert result.code == 5
    verdicts = {v["version"]: v["ok"] for v in json.loads(result.stdout)["versions"]}
    assert verdicts == {"1.0.0": True, "1.1.0": False}


def test_config_check(opsctl_env: OpsctlEnv, tmp_path: Path) -> None:
    assert opsctl_env.run("config", "check").code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[jobs]\nhealth_seconds = 'often'\n")
    result = opsctl_env.run("config", "check", str(bad))
    assert result.code == 2
    assert f"{bad}: [jobs.health_seconds] must be a number" in result.stderr


# psycopg too: the SQLite registry path never loads the PostgreSQL driver.
_HEAVY = ("numpy", "pandas", "scipy", "sklearn", "rich", "textual", "click", "psycopg", "psycopg_pool")
# Each command as a user types it; the heavy modules it must not load, daemon up or down.
_LIGHT_COMMANDS: list[tuple[list[str], tuple[str, ...]]] = [
    (["status", "-o", "json"], _HEAVY),
    (["models", "-o", "json"], _HEAVY),
    (["rollback", "fraud-detector", "--yes", "--reason", "imports", "-o", "json"], _HEAVY),
    # With the daemon down these act on the registry directly: no HTTP client is needed, so none is loaded.
    (["versions", "fraud-detector", "-o", "json"], _HEAVY + ("httpx?",)),
    (["history", "-o", "json"], _HEAVY + ("httpx?",)),
    (["health", "-o", "json"], _HEAVY),
    (["alerts", "-o", "json"], _HEAVY),
    (["canary", "status", "-o", "json"], _HEAVY),
    (["retrain", "runs", "-o", "json"], _HEAVY),
    (["abtest", "ztest", "--control", "120/1000", "--treatment", "150/1000", "-o", "json"], _HEAVY),
    (["demo", "status", "--state-dir", "{demo}", "-o", "json"], _HEAVY),
    (["incident", "timeline", "--since", "1h", "-o", "json"], _HEAVY),
    (["checklist", "-o", "json"], _HEAVY),
    (["doctor", "-o", "json"], _HEAVY),
    (["report", "--since", "1h"], _HEAVY),
    (["drift", "fraud-detector", "-o", "json"], ("numpy", "pandas", "psycopg")),
]


def _fake_demo(root: Path) -> Path:
    """A demo.json naming this (live) process as supervisor and a server on a closed port: `demo status`
    reads it and asks the server for its faults over HTTP (which fails, as for a stopped server)."""
    import os
    import socket

    from opsctl.demo.fleet import DemoState, FleetLayout, ServerState, write_state

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    layout = FleetLayout.at(root / "demo")
    write_state(layout, DemoState(
        supervisor_pid=os.getpid(), state_dir=str(root / "demo" / "state"), config=str(root / "opsctl.toml"),
        prometheus_url="http://127.0.0.1:1", prometheus_pid=os.getpid(), daemon_pid=os.getpid(),
        daemon_socket=str(root / "opsctl.sock"), traffic_pid=None,
        servers=(ServerState("fraud-detector", ("1.0.0",), port, os.getpid()),)))
    return layout.root


@pytest.mark.parametrize("daemon_up", [True, False], ids=["daemon-up", "daemon-down"])
def test_cli_paths_do_not_import_heavy_libraries(daemon_env: OpsctlEnv, daemon_up: bool,
                                                 request: pytest.FixtureRequest) -> None:
    import subprocess
    import sys

    for version in ("1.0.0", "1.1.0"):
        artifact = daemon_env.root / f"model-{version}.joblib"
        artifact.write_bytes(f"weights {version}".encode())
        assert daemon_env.run("register", "fraud-detector", "--version", version, "--artifact",
                              str(artifact)).code == 0
        assert daemon_env.run("promote", "fraud-detector", version, "--yes").code == 0
    if daemon_up:
        request.getfixturevalue("daemon")
    assert daemon_env.socket.exists() == daemon_up
    demo = _fake_demo(daemon_env.root)
    for args, listed in _LIGHT_COMMANDS:
        argv = [a.replace("{demo}", str(demo)) for a in args]
        # "name?" is forbidden only with the daemon down (the daemon's client needs it when the daemon is up).
        forbidden = tuple(m.rstrip("?") for m in listed if not (m.endswith("?") and daemon_up))
        code = (f"import sys; from opsctl.cli.main import main; code = main({argv!r});"
                f"loaded = [m for m in {forbidden!r} if m in sys.modules];"
                "sys.stderr.write(f'\\nexit={code} loaded={loaded!r}')")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=daemon_env.env,
                              timeout=60)
        last = done.stderr.strip().splitlines()[-1]
        assert last.endswith("loaded=[]"), f"opsctl {' '.join(argv)}: {done.stderr}"
        # The command really ran its daemon or registry path (not a usage error before any import). Exit 2
        # is also `opsctl checklist`'s "a required item fails": then stdout is its document, not an error.
        if last.startswith("exit=2"):
            assert done.stdout.startswith("{") and "error" not in __import__("json").loads(done.stdout), (
                f"opsctl {' '.join(argv)}: {done.stderr}")
