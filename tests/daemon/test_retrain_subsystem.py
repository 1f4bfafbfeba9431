"""Retraining in the real daemon: the API, the CLI, single flight, and a hanging run that stalls nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess, upload
from tests.fixtures.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
EP = "tests.retrain_entrypoints"


def retrain_config(tmp_path: Path) -> str:
    return f"""
[jobs]
housekeeping_seconds = 0.5

[retrain]
timeout_seconds = 30
memory_limit_mb = 0
kill_grace_seconds = 0.2
cooldown_seconds = 600
min_improvement = 0.02

[retrain.models.hung]
entrypoint = "{EP}:hang"
timeout_seconds = 3

[retrain.models.fraud]
entrypoint = "{EP}:train_curve"
params = {{ release = "{tmp_path / 'release'}", weight = "5" }}

[retrain.models.churn]
entrypoint = "{EP}:train_curve"

[retrain.models.gated]
entrypoint = "{EP}:train_curve"
approval_before_canary = true
"""


@pytest.fixture
def retrain_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    env = make_opsctl_env(tmp_path / "opsctl", retrain_config(tmp_path))
    # The test models (tests.retrain_entrypoints) are unpickled by the daemon and imported by training.
    process = DaemonProcess(env, extra_env={"PYTHONPATH": str(REPO)}).start()
    try:
        yield process
    finally:
        process.stop()


def _run(daemon: DaemonProcess, run_id: str) -> dict:  # type: ignore[type-arg]
    with daemon.http() as http:
        return http.get(f"/v1/retrain/{run_id}").json()  # type: ignore[no-any-return]


def test_a_hanging_run_is_killed_at_its_timeout_while_the_daemon_keeps_answering(
        retrain_daemon: DaemonProcess) -> None:
    with retrain_daemon.http() as http:
        started = http.post("/v1/models/hung/retrain", json={"reason": "see what happens"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run"]["id"]
        housekeeping_runs = _job_runs(http, "housekeeping")
        slowest = 0.0
        while _run(retrain_daemon, run_id)["status"] == "running":
            t0 = time.monotonic()
            status = http.get("/v1/status")
            slowest = max(slowest, time.monotonic() - t0)
            assert status.status_code == 200
            assert [r["id"] for r in status.json()["retrain"]["running"]] in ([run_id], [])
            time.sleep(0.1)
        assert slowest < 1.0, f"/v1/status took {slowest:.2f} s during the run"
        # Other jobs kept running while the training hung (housekeeping every 0.5 s).
        assert _job_runs(http, "housekeeping") >= housekeeping_runs + 3
        run = _run(retrain_daemon, run_id)
        assert run["status"] == "timed_out"
        assert "did not finish within 3 s" in run["error"] and "training forever" in run["logs"]
        # The model was never registered (so /v1/history?model= does not know it); the log does.
        history = [e for e in http.get("/v1/history").json() if e["model"] == "hung"]
        assert [(e["action"], e["outcome"]) for e in history] == [("retrain", "ok"), ("retrain", "failed")]
        assert history[0]["actor"] != "unknown" and history[0]["reason"] == "see what happens"


def _job_runs(http, name: str) -> int:  # type: ignore[no-untyped-def]
    jobs = {j["name"]: j for j in http.get("/v1/status").json()["jobs"]}
    return int(jobs[name]["runs"])


def test_ten_api_triggers_start_one_run_and_the_cli_follows_and_shows_runs(
        retrain_daemon: DaemonProcess, tmp_path: Path) -> None:
    env: OpsctlEnv = retrain_daemon.env
    with retrain_daemon.http() as http:
        answers = [http.post("/v1/models/fraud/retrain", json={"reason": f"try {i}"}).json() for i in range(10)]
        assert [a["verdict"] for a in answers] == ["started"] + ["joined"] * 9
        run_id = answers[0]["run"]["id"]
        assert {a["run"]["id"] for a in answers} == {run_id}
        (tmp_path / "release").touch()
        done = wait_for(lambda: _run(retrain_daemon, run_id)["status"] not in ("running", "evaluating") and
                        _run(retrain_daemon, run_id), timeout=30, what="the fraud run to end")
        assert done["joined_triggers"] == 9
        # Nothing in production: the first candidate is 1.0.0 and stays registered.
        assert (done["status"], done["candidate_version"]) == ("kept", "1.0.0")
        assert done["decision"]["outcome"] == "no_champion"

    result = env.run("retrain", "churn", "--wait", "--reason", "engineer asked", timeout=60)
    assert result.code == 0, result.stderr
    assert "| training curve, weight 5.0" in result.stderr
    assert "[100%] done" in result.stderr
    assert "churn kept" in result.stdout and "candidate 1.0.0" in result.stdout

    listed = env.run("retrain", "runs", "-o", "json")
    assert listed.code == 0, listed.stderr
    assert [(r["model"], r["trigger"]) for r in listed.json()] == [("churn", "manual"), ("fraud", "manual")]
    only = env.run("retrain", "runs", "fraud", "-o", "json").json()
    assert [r["id"] for r in only] == [run_id]

    shown = env.run("retrain", "show", run_id)
    assert shown.code == 0, shown.stderr
    assert "9 more triggers joined this run" in shown.stdout
    assert "| waiting for release" in shown.stdout and "no_champion" in shown.stdout

    missing = env.run("retrain", "show", "nosuchrun")
    assert missing.code == 3 and "not found" in missing.stderr
    unknown = env.run("retrain", "nosuchmodel")
    assert unknown.code == 3 and "retrain.models.nosuchmodel" in unknown.stderr


def test_cli_needs_the_daemon(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", retrain_config(tmp_path))
    result = env.run("retrain", "fraud", "--reason", "x")
    assert result.code == 6 and "retraining runs in the daemon" in result.stderr


def test_a_better_candidate_starts_a_canary_in_the_daemon_never_a_promotion(
        retrain_daemon: DaemonProcess, tmp_path: Path) -> None:
    from tests.retrain_entrypoints import write_model

    champion = write_model(-0.5, tmp_path / "champion.joblib")  # gets the sign wrong: easy to beat
    with retrain_daemon.http(timeout=60) as http:
        created = http.post("/v1/models/churn/versions", json={"version": "2.3.4", "artifact": upload(http, champion)})
        assert created.status_code == 201, created.text
        assert http.post("/v1/models/churn/promote", json={"version": "2.3.4"}).status_code == 200
        answer = http.post("/v1/models/churn/retrain", json={"reason": "quarterly refresh", "wait": True}).json()
        run = answer["run"]
        assert run["status"] == "canary_started", run
        assert (run["parent_version"], run["candidate_version"]) == ("2.3.4", "2.3.5")
        assert run["decision"]["outcome"] == "canary" and run["decision"]["improvement"] > 0.5
        canaries = http.get("/v1/canaries", params={"model": "churn"}).json()
        assert [(c["canary_version"], c["production_version"]) for c in canaries] == [("2.3.5", "2.3.4")]
        versions = {v["version"]: v for v in http.get("/v1/models/churn/versions").json()}
        assert versions["2.3.4"]["status"] == "production" and versions["2.3.5"]["status"] == "canary"
        assert versions["2.3.5"]["lineage"]["parent_version"] == "2.3.4"
        assert versions["2.3.5"]["lineage"]["trigger"] == "manual"
        story = [e["action"] for e in http.get("/v1/history", params={"model": "churn"}).json()]
        assert story[story.index("retrain"):][:4] == ["retrain", "register", "retrain-decision", "canary_start"]


def test_stopping_the_daemon_kills_a_training_in_flight(retrain_daemon: DaemonProcess) -> None:
    import signal

    from opsctl.adapters import retrain_store
    from opsctl.adapters.registry import Registry
    from opsctl.adapters.training import training_pids

    with retrain_daemon.http() as http:
        run_id = http.post("/v1/models/hung/retrain", json={"reason": "x"}).json()["run"]["id"]
    output = retrain_daemon.env.state_dir / "retrain" / "hung" / run_id / "output"
    wait_for(lambda: training_pids(output), timeout=10, what="the training process")
    retrain_daemon.signal(signal.SIGTERM)
    assert retrain_daemon.wait(30) == 0
    assert training_pids(output) == []  # nothing outlives the daemon
    registry = Registry(retrain_daemon.env.state_dir / "registry.db")
    with registry.read() as tx:
        run = retrain_store.get_run(tx, run_id)
    registry.close()
    assert run is not None and run.status.value == "abandoned"


def test_approval_before_canary_through_the_cli(retrain_daemon: DaemonProcess, tmp_path: Path) -> None:
    from tests.retrain_entrypoints import write_model

    env = retrain_daemon.env
    champion = write_model(-0.5, tmp_path / "champion.joblib")
    assert env.run("register", "gated", "--version", "1.0.0", "--artifact", str(champion)).code == 0
    assert env.run("promote", "gated", "1.0.0", "--yes").code == 0
    waited = env.run("retrain", "gated", "--wait", "-o", "json", timeout=60)
    assert waited.code == 0, waited.stderr
    run = waited.json()
    assert run["status"] == "awaiting_approval" and run["candidate_version"] == "1.0.1"
    with retrain_daemon.http() as http:
        assert http.get("/v1/canaries", params={"model": "gated"}).status_code == 404  # nothing started yet
    approved = env.run("retrain", "approve", run["id"], "--reason", "numbers look right")
    assert approved.code == 0, approved.stderr
    assert "canary_started" in approved.stdout
    again = env.run("retrain", "approve", run["id"])
    assert again.code == 4 and "not awaiting approval" in again.stderr
    history = env.run("history", "gated", "-o", "json").json()
    approval = next(e for e in history if e["action"] == "retrain-approve")
    assert approval["reason"] == "numbers look right" and approval["to_version"] == "1.0.1"
