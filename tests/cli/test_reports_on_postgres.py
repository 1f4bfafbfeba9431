"""`opsctl report`, `opsctl checklist`, `opsctl incident timeline` and the daemon's change counter against a real
daemon on a real PostgreSQL registry show what they show for the same history on the embedded SQLite file.

The same story runs on both engines (register two versions, promote both, roll back, silence an alert) through
the real CLI and a real daemon; Prometheus is an address nobody answers on, so both sides' live items read
``unknown`` alike. Times differ between the two runs, so they are masked before comparing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.wait import wait_for

# The checklist reads the ingest job's last run: have it run soon on both (on PostgreSQL only once leading).
CONFIG = '[prometheus]\nurl = "http://127.0.0.1:9"\ntimeout_seconds = 0.5\n[jobs]\ningest_seconds = 1\n'
_TIMES = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|\+00:00)?|\d\d:\d\d:\d\d"
                    r"|\b\d+(\.\d+)?\s?(ms|s|m|h)\b")


_SILENCE_ID = re.compile(r"silence [0-9a-f]{8,}")


def masked(text: str) -> str:
    return _SILENCE_ID.sub("silence <id>", _TIMES.sub("<t>", text))


def story(env: OpsctlEnv, root: Path) -> dict[str, Any]:
    """One history through a running daemon, then what each read-only command shows of it."""
    daemon = DaemonProcess(env).start(timeout=60)
    try:
        with daemon.http() as http:
            wait_for(lambda: any(j["name"] == "ingest" and j["runs"] and not j["running"]
                                 for j in http.get("/v1/status").json()["jobs"]), 30, what="the ingest job to run")
        for version in ("v1", "v2"):
            artifact = root / f"{version}.bin"
            artifact.write_bytes(f"weights {version}".encode())
            assert env.run("register", "fraud", "--version", version, "--artifact", str(artifact)).code == 0
            promoted = env.run("promote", "fraud", version, "--yes", "--reason", f"ship {version}")
            assert promoted.code == 0, promoted.stderr
        rolled = env.run("rollback", "fraud", "--yes", "--reason", "v2 error rate 30 %")
        assert rolled.code == 0, rolled.stderr
        silenced = env.run("alerts", "silence", "--match", "model=fraud", "--for", "1h", "--comment", "noisy")
        assert silenced.code == 0, silenced.stderr

        timeline = env.run("incident", "timeline", "--since", "1h", "-o", "json")
        assert timeline.code == 0, timeline.stderr
        assert "does not answer" not in timeline.stderr  # the daemon's GET /v1/incident/timeline
        checklist = env.run("checklist", "fraud", "-o", "json")
        assert checklist.code in (0, 1, 2), checklist.stderr
        report = root / "report.md"
        made = env.run("report", "--since", "1h", "--md", str(report))
        assert made.code == 0, made.stderr
        with daemon.http() as http:
            metrics = http.get("/metrics").text
    finally:
        daemon.stop()
    offline = env.run("incident", "timeline", "--since", "1h", "-o", "json")  # straight from the registry
    assert offline.code == 0 and "reading the registry" in offline.stderr, offline.stderr
    changes = sorted(line for line in metrics.splitlines()
                     if line.startswith("opsctl_model_changes_total{") and not line.endswith(" 0.0"))
    return {
        "timeline": [(e["source"], e["kind"], e["model"], e["version"], masked(e["what"]), e["why"])
                     for e in timeline.json()["entries"]],
        "offline": [(e["source"], e["kind"], masked(e["what"])) for e in offline.json()["entries"]],
        "checklist": [(i["id"], i["model"], i["status"], masked(i["evidence"])) for i in checklist.json()["items"]],
        "report": masked(report.read_text()),
        "changes": changes,
    }


def test_the_read_only_commands_show_the_same_on_postgresql_as_on_sqlite(tmp_path: Path,
                                                                         postgres_server: PostgresServer) -> None:
    on_sqlite = story(make_opsctl_env(tmp_path / "sqlite", CONFIG), tmp_path / "sqlite")
    url = postgres_server.create_database()
    pg_env = make_opsctl_env(tmp_path / "pg", CONFIG + f'[registry]\nurl = "{url}"\n')
    on_postgres = story(pg_env, tmp_path / "pg")
    assert not (pg_env.state_dir / "registry.db").exists()  # nothing read from (or written to) a SQLite file

    # The story is there at all (so equal is not equally empty).
    audit = [(kind, what) for source, kind, _, _, what, _ in on_sqlite["timeline"] if source == "audit"]
    assert [kind for kind, _ in audit] == ["register", "promote", "register", "promote", "rollback",
                                           "alert.silence"]
    assert any(kind == "rollback" and what.startswith("rollback v2 -> v1 (ok)") for kind, what in audit), audit
    assert 'opsctl_model_changes_total{change="promote",model="fraud"} 2.0' in on_sqlite["changes"]
    assert 'opsctl_model_changes_total{change="rollback",model="fraud"} 1.0' in on_sqlite["changes"]
    assert "## Recent changes" in on_sqlite["report"] and "v2 error rate 30 %" in on_sqlite["report"]
    assert {status for _, _, status, _ in on_sqlite["checklist"]} >= {"pass", "fail", "unknown"}

    for key in ("timeline", "offline", "checklist", "changes"):
        assert on_postgres[key] == on_sqlite[key], key
    assert on_postgres["report"].splitlines() == on_sqlite["report"].splitlines()
