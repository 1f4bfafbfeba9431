"""The real daemon process, driven through its socket and the real CLI."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.cli import OpsctlEnv
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

ME = pwd.getpwuid(os.getuid()).pw_name


def seed(env: OpsctlEnv) -> None:
    for version in ("1.0.0", "1.1.0"):
        artifact = env.root / f"m-{version}.bin"
        artifact.write_bytes(version.encode())
        assert env.run("register", "fraud-detector", "--version", version, "--artifact", str(artifact)).code == 0
    assert env.run("promote", "fraud-detector", "1.0.0", "--yes").code == 0


def job_runs(daemon: DaemonProcess, job: str) -> float:
    text = daemon.http().get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "opsctl_job_runs_total" and sample.labels.get("job") == job:
                return sample.value
    return 0.0


def test_status_answers_from_the_daemon(daemon: DaemonProcess) -> None:
    result = daemon.env.run("status", "-o", "json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["daemon"]["up"] is True and document["daemon"]["pid"] == daemon.pid
    housekeeping = next(j for j in document["jobs"] if j["name"] == "housekeeping")
    assert housekeeping["runs"] >= 1 and housekeeping["last_ok"] is True
    table = daemon.env.run("status")
    assert table.code == 0 and "daemon: up" in table.stdout and "housekeeping" in table.stdout


def test_changes_through_the_daemon_are_attributed_to_the_calling_user(daemon: DaemonProcess) -> None:
    env = daemon.env
    seed(env)
    assert env.run("promote", "fraud-detector", "1.1.0", "--yes", "--reason", "canary passed").code == 0
    rolled = env.run("rollback", "fraud-detector", "--yes", "--reason", "p99", "-o", "json")
    assert rolled.code == 0, rolled.stderr
    assert "acting directly" not in rolled.stderr
    history = env.run("history", "fraud-detector", "-o", "json").json()
    last = history[-1]
    assert (last["action"], last["actor"], last["uid"], last["via"], last["reason"]) == (
        "rollback", ME, os.getuid(), "daemon", "p99")


def test_sse_delivers_a_promote_within_one_second(daemon: DaemonProcess) -> None:
    seed(daemon.env)
    received: list[tuple[float, dict[str, object]]] = []
    connected = threading.Event()

    def listen() -> None:
        with daemon.http(timeout=10).stream("GET", "/v1/events") as response:
            for line in response.iter_lines():
                connected.set()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event["kind"] == "audit" and event["data"]["action"] == "promote":
                        received.append((time.monotonic(), event))
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(5)
    sent = time.monotonic()
    response = daemon.http().post("/v1/models/fraud-detector/promote", json={"version": "1.1.0", "reason": "sse"})
    assert response.status_code == 200
    listener.join(5)
    assert received, "no promote event on the stream"
    arrived, event = received[0]
    assert arrived - sent < 1.0
    assert event["data"]["to_version"] == "1.1.0"


def test_metrics_parse_and_job_counters_move(daemon: DaemonProcess) -> None:
    first = wait_for(lambda: job_runs(daemon, "housekeeping"), what="a housekeeping run")
    wait_for(lambda: job_runs(daemon, "housekeeping") >= first + 2, timeout=10, what="more runs")
    names = {f.name for f in text_string_to_metric_families(daemon.http().get("/metrics").text)}
    assert {"opsctl_up", "opsctl_job_runs", "opsctl_job_failures", "opsctl_job_duration_seconds",
            "opsctl_job_last_success_timestamp_seconds", "opsctl_api_requests", "opsctl_sse_clients",
            "opsctl_registry_models"} <= names


def test_socket_is_group_only_and_a_second_daemon_is_refused(daemon: DaemonProcess) -> None:
    mode = stat.S_IMODE(daemon.env.socket.stat().st_mode)
    assert mode == 0o660
    second = daemon.env.run("daemon", timeout=30)
    assert second.code != 0
    assert "already listening" in second.stderr
    assert daemon.answers()


def test_kill_9_then_rollback_works_directly_and_says_so(daemon: DaemonProcess) -> None:
    env = daemon.env
    seed(env)
    assert env.run("promote", "fraud-detector", "1.1.0", "--yes").code == 0
    daemon.signal(signal.SIGKILL)
    daemon.wait()
    assert env.socket.exists()  # a stale socket is left behind by SIGKILL
    result = env.run("rollback", "fraud-detector", "--yes", "--reason", "daemon dead", "-o", "json")
    assert result.code == 0, result.stderr
    assert "acting directly on the registry" in result.stderr
    assert result.json()["to_version"] == "1.0.0"
    last = env.run("history", "fraud-detector", "-o", "json").json()[-1]
    assert (last["via"], last["actor"]) == ("direct (daemon down)", ME)
    status = env.run("status", "-o", "json")
    assert status.code == 6 and status.json()["daemon"]["up"] is False
    # A restarted daemon replaces the stale socket.
    DaemonProcess(env).start().stop()


def test_sigterm_exits_zero_and_removes_the_socket(daemon: DaemonProcess) -> None:
    stream = daemon.http(timeout=30).stream("GET", "/v1/events")
    response = stream.__enter__()  # an open SSE client must not hold up the shutdown
    assert response.status_code == 200
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert time.monotonic() - started < 15
    assert not daemon.env.socket.exists()
    stream.__exit__(None, None, None)


def test_sighup_with_a_broken_config_keeps_the_old_one(daemon: DaemonProcess) -> None:
    config = daemon.env.config
    good = config.read_text()
    config.write_text(good + "\n[jobs]\nhealth_seconds = 'often'\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "config reload failed" in daemon.log(), what="the reload failure in the log")
    assert daemon.answers()
    assert daemon.http().get("/v1/status").json()["daemon"]["up"] is True
    assert 'opsctl_config_reloads_total{result="failed"} 1.0' in daemon.http().get("/metrics").text
    config.write_text(good.replace("housekeeping_seconds = 0.5", "housekeeping_seconds = 7"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: any(j["interval_seconds"] == 7 for j in daemon.http().get("/v1/status").json()["jobs"]),
             what="the new interval")


def test_sd_notify_ready_and_watchdog(daemon_env: OpsctlEnv, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.settimeout(10)
    process = DaemonProcess(daemon_env, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}).start()
    try:
        messages: list[str] = []
        while sum(m == "WATCHDOG=1" for m in messages) < 3:
            messages.append(sink.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=serving on" in ready and f"MAINPID={process.pid}" in ready
        assert messages.index(ready) < messages.index("WATCHDOG=1")
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
        rest = []
        while True:
            try:
                rest.append(sink.recv(4096).decode())
            except TimeoutError:
                break
            if "STOPPING=1" in rest[-1]:
                break
        assert any("STOPPING=1" in m for m in rest)
    finally:
        process.stop()
        sink.close()


def test_tcp_listener_requires_the_bearer_token(tmp_path: Path) -> None:
    from tests.fixtures.cli import make_opsctl_env

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-tests-only\n")
    token.chmod(0o600)
    env = make_opsctl_env(tmp_path / "tcp")
    env.config.write_text(env.config.read_text().replace(
        "[daemon]\n", f'[daemon]\ntcp_listen = "127.0.0.1:{port}"\ntoken_file = "{token}"\n'))
    process = DaemonProcess(env).start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/status", timeout=5).status_code == 401
        wrong = httpx.get(f"{base}/v1/status", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert wrong.status_code == 401
        ok = httpx.get(f"{base}/v1/status", headers={"Authorization": "Bearer s3cret-token-for-tests-only"},
                       timeout=5)
        assert ok.status_code == 200 and ok.json()["daemon"]["up"] is True
    finally:
        process.stop()
