"""Break-glass promote/rollback through the real ``opsctl`` script with no daemon running.

With ``[actuators] kind = "command"`` the one-shot CLI runs the configured command itself (a real
script recording its arguments), audits it, and a failing command changes nothing and exits 1.
With the default routing table, the routing document next to the registry is rewritten and the
report says so, and that routers asking only the daemon wait for it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from opsctl.sdk.router import read_routing_document
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env

SET_WEIGHT = """\
import json, os, sys
record = {"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items() if k.startswith("OPSCTL_")}}
if os.path.exists(sys.argv[1] + ".fail"):
    print("upstream weights rejected by nginx -t", file=sys.stderr)
    sys.exit(3)
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(record) + "\\n")
"""


def _seed(env: OpsctlEnv, tmp_path: Path) -> None:
    for version in ("1.0.0", "1.1.0"):
        artifact = tmp_path / f"m-{version}.bin"
        artifact.write_bytes(version.encode())
        registered = env.run("register", "fraud", "--version", version, "--artifact", str(artifact))
        assert registered.code == 0, registered.stderr


def _command_env(tmp_path: Path) -> tuple[OpsctlEnv, Path]:
    script = tmp_path / "set-weight.py"
    script.write_text(SET_WEIGHT)
    calls = tmp_path / "calls.jsonl"
    argv = [sys.executable, str(script), str(calls), "{model}", "{production_version}", "{production_weight}",
            "{canary_version}", "{canary_weight}"]
    extra = (f"[actuators]\nkind = \"command\"\ncommand = {json.dumps(argv)}\nattempts = 2\n"
             "retry_backoff_seconds = 0.0\n")
    return make_opsctl_env(tmp_path / "opsctl", extra), calls


def _calls(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(line)["argv"][1:] for line in path.read_text().splitlines()]


def test_with_the_daemon_down_the_cli_runs_the_command_actuator_and_audits_it(tmp_path: Path) -> None:
    env, calls = _command_env(tmp_path)
    _seed(env, tmp_path)
    assert env.run("promote", "fraud", "1.0.0", "--yes").code == 0
    promoted = env.run("promote", "fraud", "1.1.0", "--yes")
    assert promoted.code == 0, promoted.stderr
    assert "the daemon is not answering" in promoted.stderr

    rolled = env.run("rollback", "fraud", "--yes", "--reason", "p99 regression")
    assert rolled.code == 0, rolled.stderr
    assert "registry: roll back fraud 1.1.0 -> 1.0.0" in rolled.stdout
    assert "directly on the registry: the daemon is down" in rolled.stdout
    assert "traffic: routing document updated (generation 3); actuator `command` ran ok" in rolled.stdout
    # The script really ran, before each commit, with the split filled in.
    assert _calls(calls) == [["fraud", "1.0.0", "100", "", "0"], ["fraud", "1.1.0", "100", "", "0"],
                             ["fraud", "1.0.0", "100", "", "0"]]
    last = env.run("history", "fraud", "-n", "1", "-o", "json").json()[0]
    assert (last["action"], last["outcome"], last["via"]) == ("rollback", "ok", "direct (daemon down)")
    assert "traffic: actuator `command` ran ok" in last["detail"]


def test_a_failing_actuator_is_a_failure_and_changes_nothing(tmp_path: Path) -> None:
    env, calls = _command_env(tmp_path)
    _seed(env, tmp_path)
    assert env.run("promote", "fraud", "1.0.0", "--yes").code == 0
    assert env.run("promote", "fraud", "1.1.0", "--yes").code == 0
    Path(f"{calls}.fail").touch()

    rolled = env.run("rollback", "fraud", "--yes", "-o", "json")
    assert rolled.code == 1, (rolled.stdout, rolled.stderr)
    error = rolled.json()["error"]  # -o json: the error document, and no change claimed
    assert set(rolled.json()) == {"error"} and error["type"] == "ActuatorError"
    assert "command actuator failed" in error["message"] and "exited with 3" in error["message"]
    assert "after 2 attempts" in error["message"] and "Nothing was changed" in error["message"]
    models = env.run("models", "-o", "json").json()
    assert models[0]["production_version"] == "1.1.0"  # the registry did not move
    last = env.run("history", "fraud", "-n", "1", "-o", "json").json()[0]
    assert (last["action"], last["outcome"]) == ("rollback", "failed")
    assert "nginx -t" in last["detail"] and "nothing was changed in the registry" in last["detail"]
    assert len(_calls(calls)) == 2  # the two promotes; the failed attempts recorded nothing


def test_with_the_routing_table_the_document_moves_and_the_report_says_who_still_waits(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl")
    _seed(env, tmp_path)
    assert env.run("promote", "fraud", "1.0.0", "--yes").code == 0
    assert env.run("promote", "fraud", "1.1.0", "--yes").code == 0
    document = env.state_dir / "routing.json"
    assert read_routing_document(document, "fraud").weights == (("1.1.0", 100.0),)

    rolled = env.run("rollback", "fraud", "--yes", "-o", "json")
    assert rolled.code == 0, rolled.stderr
    report = rolled.json()
    split = read_routing_document(document, "fraud")
    assert split.weights == (("1.0.0", 100.0),) and split.generation == report["generation"]
    assert report["reached_traffic"] is True and report["daemon_up"] is False
    assert report["traffic"]["via"] == "routing_document"
    assert report["traffic"]["routing_generation"] == json.loads(document.read_text())["generation"]
    assert "sudo systemctl start opsctl" in report["report"][1]
    assert "Routers that only ask the daemon (GET /v1/routing) keep the old split" in report["report"][1]


def test_versions_and_help_say_where_a_rollback_goes(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl")
    _seed(env, tmp_path)
    assert env.run("promote", "fraud", "1.0.0", "--yes").code == 0
    assert env.run("promote", "fraud", "1.1.0", "--yes").code == 0
    listed = env.run("versions", "fraud")
    assert "1.0.0 <- rollback" in listed.stdout
    assert "`opsctl rollback fraud` goes to 1.0.0, the production version before 1.1.0" in listed.stdout
    marked = {v["version"]: v["rollback_target"] for v in env.run("versions", "fraud", "-o", "json").json()}
    assert marked == {"1.0.0": True, "1.1.0": False}
    helped = env.run("rollback", "--help")
    assert "Every promote pushes the outgoing production version" in helped.stdout
    assert "--verify" in helped.stdout


def test_a_daemon_started_after_break_glass_converges_from_the_registry_and_keeps_the_change(
        tmp_path: Path) -> None:
    import signal

    from tests.fixtures.daemon import DaemonProcess

    env = make_opsctl_env(tmp_path / "opsctl")
    _seed(env, tmp_path)
    daemon = DaemonProcess(env).start()
    try:
        assert env.run("promote", "fraud", "1.0.0", "--yes").code == 0
        assert env.run("promote", "fraud", "1.1.0", "--yes").code == 0
        daemon.signal(signal.SIGKILL)
        daemon.wait()
        rolled = env.run("rollback", "fraud", "--yes", "-o", "json")
        assert rolled.code == 0 and rolled.json()["daemon_up"] is False, rolled.stderr
        document = env.state_dir / "routing.json"
        document.unlink()  # as if the rollback's process had died between its commit and its rewrite

        daemon.start()
        assert read_routing_document(document, "fraud").weights == (("1.0.0", 100.0),)
        with daemon.http() as http:
            body = http.get("/v1/routing/fraud").json()
        assert body["splits"] == [{"version": "1.0.0", "weight": 100.0}]
        assert body["generation"] == rolled.json()["generation"]  # nothing changed it back or forward
        assert env.run("models", "-o", "json").json()[0]["production_version"] == "1.0.0"
    finally:
        daemon.stop()
