"""The README's "Instrument a model server" listing, run as written against a real daemon and a real Prometheus.

The listing is extracted from README.md (between the sdk-quickstart markers) and served by uvicorn in
its own process; Prometheus scrapes it; the daemon's jobs run every fraction of a second with short
PromQL windows (the mechanism is the one used with the defaults). A user sees, through the CLI:
the server's metrics in ``opsctl health``, its prediction log ingested for ``opsctl drift``, and its
router following the canary's weight.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsctl.adapters.prometheus_launcher import LocalPrometheus, free_port
from opsctl.sdk.router import TrafficRouter
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
MODEL = "iris"
CANARY_WEIGHT = 20.0


def listing() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- sdk-quickstart:begin -->\n```python\n(.*?)```\n<!-- sdk-quickstart:end -->", text,
                      re.DOTALL)
    assert found, "README.md has no sdk-quickstart listing"
    return found.group(1)


def config(prometheus_url: str) -> str:
    return f"""
[jobs]
housekeeping_seconds = 60
health_seconds = 1
alerts_seconds = 3600
ingest_seconds = 0.2
drift_seconds = 0.5
performance_seconds = 3600
canary_seconds = 3600

[prometheus]
url = "{prometheus_url}"
window = "4s"
staleness_seconds = 3
timeout_seconds = 2

[sla]
require_accuracy = false

[ingest]
log_dirs = ["logs"]

[canary]
stages = [{CANARY_WEIGHT:g}, 100]
min_stage_seconds = 3600
progress_deadline_seconds = 7200
"""


@dataclass
class Stack:
    env: OpsctlEnv
    daemon: DaemonProcess
    server_url: str
    rows: list[dict[str, float]]
    sent: int = 0

    def cli(self, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
        result = self.env.run(*args, "-o", "json")
        assert result.code in codes, (result.code, result.stderr)
        return result.json()

    def predict(self, http: httpx.Client, users: range) -> dict[str, dict[str, Any]]:
        """One request per user, the features cycling through the reference rows (so no drift)."""
        answers = {}
        for i in users:
            features = self.rows[self.sent % len(self.rows)]
            self.sent += 1
            response = http.post("/predict", json={"user_id": f"u{i}", "features": features})
            assert response.status_code == 200, response.text
            answers[f"u{i}"] = response.json()
        return answers


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns="target")
    frame.columns = [name.removesuffix(" (cm)").replace(" ", "_") for name in frame.columns]
    rows = frame.to_dict("records")

    server_dir = tmp_path / "server"
    server_dir.mkdir()
    (server_dir / "model_server.py").write_text(listing(), encoding="utf-8")
    port = free_port()
    prometheus = LocalPrometheus(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: model-server\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    env = make_opsctl_env(tmp_path / "opsctl")
    logs = env.root / "logs"
    logs.mkdir()
    reference = env.root / "iris.csv"
    frame.to_csv(reference, index=False)
    server: subprocess.Popen[bytes] | None = None
    daemon: DaemonProcess | None = None
    try:
        prometheus.start()
        env.config.write_text(env.config.read_text() + config(prometheus.url))
        for version in ("1.0.0", "1.1.0"):
            artifact = env.root / f"iris-{version}.bin"
            artifact.write_bytes(version.encode())
            registered = env.run("register", MODEL, "--version", version, "--artifact", str(artifact),
                                 "--reference", str(reference))
            assert registered.code == 0, registered.stderr
        assert env.run("promote", MODEL, "1.0.0", "--yes").code == 0
        daemon = DaemonProcess(env).start()
        server_log = (tmp_path / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "model_server:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=server_dir, stdout=server_log, stderr=subprocess.STDOUT,
            env={**env.env, "OPSCTL_SOCKET": str(env.socket), "OPSCTL_LOG_DIR": str(logs)})
        server_log.close()
        url = f"http://127.0.0.1:{port}"

        def server_up() -> bool:
            assert server is not None and server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{url}/metrics", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(server_up, 30, 0.1, what="the README's model server to serve",
                 context=lambda: (tmp_path / "server.log").read_text())
        yield Stack(env, daemon, url, rows)
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(20)
        if daemon is not None:
            daemon.stop()
        prometheus.stop()


def test_the_readme_model_server_reports_to_opsctl(stack: Stack) -> None:
    rows = len(stack.rows)
    with httpx.Client(base_url=stack.server_url, timeout=10) as http:
        # Before any canary: production takes everyone. Two whole passes over the reference rows.
        answers = stack.predict(http, range(2 * rows))
        assert {a["version"] for a in answers.values()} == {"1.0.0"}
        assert http.post("/feedback", json={"prediction_id": answers["u0"]["prediction_id"],
                                            "label": 0}).status_code == 200

        # Its prediction log is ingested and checked for drift (the traffic is the reference sample again).
        def drift_checked() -> dict[str, Any] | None:
            versions = [v for v in stack.cli("drift", MODEL)["versions"] if v["version"] == "1.0.0"]
            return versions[0] if versions and versions[0].get("rows_current") == 2 * rows else None

        drift = wait_for(drift_checked, 20, 0.2, what="a drift check over the server's logged predictions")
        assert drift["verdict"] == "no_drift", drift
        with stack.daemon.http() as daemon_http:
            window = daemon_http.get(f"/v1/drift/{MODEL}").json()["window"]
        assert window["labelled"] == 1, window  # the feedback log joined its prediction

        # Its metrics, scraped by Prometheus, are what `opsctl health` judges.
        def healthy() -> dict[str, Any] | None:
            stack.predict(http, range(30))  # keep traffic above [sla] min_request_rate
            document = stack.cli("health", MODEL, codes=(0, 1, 2, 3))
            versions = [v for v in document["models"] if v["version"] == "1.0.0"]
            return versions[0] if versions and versions[0]["status"] == "healthy" else None

        version = wait_for(healthy, 30, 0.2, what="opsctl health to judge the server's metrics healthy")
        checks = {c["name"]: c for c in version["checks"]}
        assert checks["request_rate"]["value"] > 0 and checks["error_rate"]["value"] == 0.0
        assert checks["latency_p95"]["value"] is not None

        # A canary's weight reaches the router: each user lands where the daemon's split sends them.
        started = stack.cli("canary", "start", MODEL, "1.1.0", "--reason", "readme quick start")
        assert started["weight"] == CANARY_WEIGHT, started
        expected = TrafficRouter({"1.0.0": 100.0 - CANARY_WEIGHT, "1.1.0": CANARY_WEIGHT})
        users = range(1000, 1400)

        def follows() -> dict[str, str] | None:
            routed = {user: answer["version"] for user, answer in stack.predict(http, users).items()}
            return routed if all(routed[u] == expected.route(u) for u in routed) else None

        routed = wait_for(follows, 20, 0.5, what="the server's router to follow the canary's weight")
        share = sum(1 for v in routed.values() if v == "1.1.0") / len(routed)
        assert 0.1 < share < 0.3, share
