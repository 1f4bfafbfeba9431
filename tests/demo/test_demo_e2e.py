"""``opsctl demo`` end to end: the real fleet (Prometheus, servers, traffic, daemon) judged through
``opsctl health -o json``, faults injected with ``opsctl demo fault``; and the registry seed."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.config import load_file
from opsctl.demo.fleet import DEMO_MODELS, FleetLayout, demo_config_toml, pid_alive
from opsctl.demo.models import sha256_file, spec
from opsctl.demo.seed import CANDIDATE_VERSION, PRODUCTION_VERSION, seed_registry
from tests.fixtures.cli import OPSCTL, OpsctlEnv, make_opsctl_env
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus binary")

START_DEADLINE_SECONDS = 120.0
# Health runs every 5 s over a 20 s window (the demo's opsctl.toml): a cleared fault is forgotten
# within about 25 s.
HEALTH_DEADLINE_SECONDS = 60.0


def _descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in parents.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / "demo-supervisor.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
        self.env = {**env, "OPSCTL_CONFIG": str(root / "opsctl.toml"), "NO_COLOR": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[str, Any]:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([OPSCTL, "demo", "--no-tui", "--state-dir", str(self.root)],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"opsctl demo exited with {proc.returncode}:\n{self.output()}")
            return (self.root / "demo.json").exists()

        wait_for(up, START_DEADLINE_SECONDS, 0.2, what="the demo to come up", context=self.output)
        return self.state()

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / "demo.json").read_text())  # type: ignore[no-any-return]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        """The end of the demo's output, for a failure message."""
        return self.output()[-2000:]

    def opsctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OPSCTL, *args], env=self.env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    def health(self) -> dict[str, str]:
        """model -> status of its production version, from ``opsctl health -o json``."""
        result = self.opsctl("health", "-o", "json")
        # Exit codes follow the monitoring-plugin convention (1 degraded, 3 unknown); stdout is the document.
        document = json.loads(result.stdout)
        return {m["model"]: m["status"] for m in document["models"] if m.get("role", "production") == "production"}

    def wait_for_health(self, expected: dict[str, str]) -> None:
        wait_for(lambda: self.health() == expected, HEALTH_DEADLINE_SECONDS, 1.0,
                 what=f"health to become {expected}",
                 context=lambda: f"{self.opsctl('health', '-o', 'json').stdout}\n{self.output()[-3000:]}")

    def kill_everything(self) -> None:
        """Last-resort cleanup when a test failed half way: nothing may outlive the test."""
        if self.proc is None:
            return
        leftovers = _descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in leftovers:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo-state")
    try:
        yield running
    finally:
        running.kill_everything()


@pytest.mark.slow
def test_demo_health_follows_faults_and_teardown_leaves_nothing(demo: Demo) -> None:
    state = demo.start()
    assert "starting Prometheus… ok (127.0.0.1:" in demo.output()
    assert f"OPSCTL_CONFIG={demo.root / 'opsctl.toml'}" in demo.output()
    assert {s["model"] for s in state["servers"]} == set(DEMO_MODELS)
    tree = _descendants(state["supervisor_pid"])
    recorded = {state["prometheus"]["pid"], state["daemon"]["pid"], state["traffic"]["pid"],
                *(s["pid"] for s in state["servers"])}
    assert recorded <= tree
    ports = [int(state["prometheus"]["url"].rsplit(":", 1)[1]), *(s["port"] for s in state["servers"])]
    assert all(_listening(port) for port in ports)

    everyone_healthy = dict.fromkeys(DEMO_MODELS, "healthy")
    demo.wait_for_health(everyone_healthy)

    fault = demo.opsctl("demo", "fault", "fraud-detector", "errors", "--state-dir", str(demo.root))
    assert fault.returncode == 0, fault.stderr
    assert "injected errors (level 0.5) into fraud-detector [all versions]" in fault.stdout
    demo.wait_for_health({**everyone_healthy, "fraud-detector": "degraded"})

    # No --state-dir: OPSCTL_CONFIG points at the demo's config, which is how another terminal finds it.
    cleared = demo.opsctl("demo", "clear", "fraud-detector")
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared errors on fraud-detector" in cleared.stdout
    demo.wait_for_health(everyone_healthy)

    crash = demo.opsctl("demo", "fault", "churn-predictor", "crash")
    assert crash.returncode == 0, crash.stderr
    demo.wait_for_health({**everyone_healthy, "churn-predictor": "unknown"})
    crashed = next(s for s in state["servers"] if s["model"] == "churn-predictor")
    assert not pid_alive(crashed["pid"]), "the crashed server must stay down (restart is off by default)"
    assert "churn-predictor exit code 70 (the injected crash fault); not restarting" in demo.output()

    assert demo.proc is not None
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(60) == 0, demo.output()
    assert "opsctl demo: stopped; nothing left running" in demo.output()
    assert [pid for pid in tree if pid_alive(pid)] == []
    assert [port for port in ports if _listening(port)] == []
    assert not (demo.root / "demo.json").exists()
    assert not Path(state["daemon"]["socket"]).exists()

    after = demo.opsctl("demo", "fault", "fraud-detector", "errors", "--state-dir", str(demo.root))
    assert after.returncode == 3
    assert "running demo" in after.stderr and "not found" in after.stderr


def test_fault_without_a_running_demo_says_how_to_start_one(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl")
    result = env.run("demo", "fault", "fraud-detector", "latency", "--state-dir", str(tmp_path / "nothing"))
    assert result.code == 3
    assert f"start one with `opsctl demo --state-dir {tmp_path / 'nothing'}`" in result.stderr


def test_seed_registers_verified_versions_metrics_and_references_once(tmp_path: Path) -> None:
    layout = FleetLayout.at(tmp_path / "demo")
    layout.root.mkdir()
    layout.config.write_text(demo_config_toml(layout, "http://127.0.0.1:9"), encoding="utf-8")
    settings = load_file(layout.config)
    settings.validate()  # the demo's config is valid in every section, [canary] and [sla] included
    env = OpsctlEnv(root=layout.root, config=layout.config,
                    env={**{k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")},
                         "OPSCTL_CONFIG": str(layout.config), "NO_COLOR": "1"})

    seeded = seed_registry(settings, layout.seed_dir, DEMO_MODELS)

    assert [s.model for s in seeded] == list(DEMO_MODELS)
    models = {m["model"]: m for m in env.run("models", "-o", "json").json()}
    for model in seeded:
        assert (model.production, model.candidate) == (PRODUCTION_VERSION, CANDIDATE_VERSION)
        assert models[model.model]["production_version"] == PRODUCTION_VERSION
        assert models[model.model]["canary_version"] is None
        versions = {v["version"]: v for v in env.run("versions", model.model, "-o", "json").json()}
        assert {v: versions[v]["status"] for v in versions} == {PRODUCTION_VERSION: "production",
                                                                CANDIDATE_VERSION: "registered"}
        for served in model.versions:  # what the servers load: the registry's copy, hash as recorded
            assert sha256_file(served.artifact) == served.sha256 == versions[served.version]["sha256"]
            verified = env.run("verify", model.model, served.version)
            assert verified.code == 0, verified.stderr
            metrics = versions[served.version]["metrics"]
            assert 0.6 < metrics["accuracy"] <= 1.0 and 0.6 < metrics["auc"] <= 1.0
            assert metrics["auc"] == metrics["roc_auc"]
            reference = layout.seed_dir / f"{model.model}-{served.version}.reference.csv"
            with reference.open() as handle:
                rows = list(csv.DictReader(handle))
            assert list(rows[0]) == spec(model.model).feature_names and len(rows) == 2_000
            assert versions[served.version]["reference_sha256"] == sha256_file(reference)
            assert json.loads(reference.with_name(reference.name.replace(".reference.csv", ".metrics.json"))
                              .read_text()) == metrics

    history_before = env.run("history", "-n", "100", "-o", "json").json()
    again = seed_registry(settings, layout.seed_dir, DEMO_MODELS)
    assert again == seeded
    assert env.run("history", "-n", "100", "-o", "json").json() == history_before  # nothing re-registered
