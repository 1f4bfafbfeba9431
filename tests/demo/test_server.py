"""The demo model server as a real subprocess on a free loopback port."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse

from opsctl.demo import models
from opsctl.demo.faults import CRASH_EXIT_CODE
from opsctl.sdk.router import TrafficRouter
from tests.fixtures.wait import wait_for
from tests.sdk.test_router import FakeDaemon

MODEL = models.CHURN
START_DEADLINE_SECONDS = 30.0


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    log_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Two churn versions (production recipe and candidate recipe), saved with their sha256."""
    directory = tmp_path_factory.mktemp("artifacts")
    found = {}
    for version, variant in (("1.0.0", 0), ("1.1.0", 1)):
        path = directory / f"{MODEL}-{version}.joblib"
        digest = models.save_artifact(models.train_model(MODEL, variant=variant).estimator, path)
        found[version] = (path, digest)
    return found


def start_server(directory: Path, artifacts: dict[str, tuple[Path, str]], *extra: str) -> RunningServer:
    ready = directory / "ready.json"
    log_dir = directory / "logs"
    args = [sys.executable, "-m", "opsctl.demo.server", "--model", MODEL, "--port", "0",
            "--log-dir", str(log_dir), "--ready-file", str(ready), "--seed", "7"]
    for version, (path, digest) in artifacts.items():
        args += ["--version", f"{version}={path}:{digest}"]
    process = subprocess.Popen([*args, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}: {process.stderr.read().decode()}")
        return ready.exists()

    wait_for(started, START_DEADLINE_SECONDS, what="the server's ready file")
    server = RunningServer(process, json.loads(ready.read_text())["port"], log_dir)
    wait_for(lambda: httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200, START_DEADLINE_SECONDS,
             what="the server to answer /healthz", ignore=(httpx.HTTPError,))
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, tuple[Path, str]]) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("server"), artifacts,
                           "--split", "1.0.0=50", "--split", "1.1.0=50", "--accuracy-window", "20")
    yield running
    running.stop()
    # Graceful: the lifespan shutdown flushed the logs, then uvicorn re-raised SIGTERM.
    assert running.process.returncode == -signal.SIGTERM
    assert "stopped, logs flushed" in running.process.stderr.read().decode()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
        http.delete("/fault")  # no fault leaks into the next test


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def live_rows(n: int, seed: int = 5) -> tuple[list[dict], list[int]]:
    data = models.make_dataset(MODEL, n, seed=seed, purpose="live")
    return data.rows(), [int(v) for v in data.y]


def test_predict_routes_by_stable_hash_and_answers_like_the_model(
    client: httpx.Client, artifacts: dict[str, tuple[Path, str]]
) -> None:
    rows, _ = live_rows(40)
    expected_router = TrafficRouter([("1.0.0", 50.0), ("1.1.0", 50.0)])
    loaded = {v: models.load_artifact(p, d) for v, (p, d) in artifacts.items()}
    seen = set()
    for i, row in enumerate(rows):
        body = client.post("/predict", json={"id": f"user-{i}", "features": row}).json()
        # The server in another process routes exactly as this process does.
        assert body["version"] == expected_router.route(f"user-{i}")
        score = models.predict_scores(loaded[body["version"]], models.rows_to_frame(MODEL, [row]))[0]
        assert body["score"] == pytest.approx(score)
        assert body["prediction"] == int(score >= 0.5)
        seen.add(body["version"])
        again = client.post("/predict", json={"id": f"user-{i}", "features": row}).json()
        assert again["version"] == body["version"] and again["prediction_id"] != body["prediction_id"]
    assert seen == {"1.0.0", "1.1.0"}
    samples = scrape(client)
    total = sum(sample(samples, "model_predictions_total", model=MODEL, model_version=v, status="success") or 0
                for v in ("1.0.0", "1.1.0"))
    assert total >= 80


def test_bad_requests_are_422_and_not_counted_as_model_errors(client: httpx.Client) -> None:
    before = scrape(client)
    assert client.post("/predict", json={"features": {"contract": "one-year"}}).status_code == 422
    assert client.post("/predict", content=b"not json").status_code == 422
    assert client.post("/feedback", json={"prediction_id": "x", "label": 7}).status_code == 422
    assert client.post("/fault", json={"kind": "meteor"}).status_code == 422
    assert client.post("/fault", json={"kind": "errors", "level": 2}).status_code == 422
    assert client.post("/fault", json={"kind": "drift", "features": ["nope"]}).status_code == 422
    after = scrape(client)
    for version in ("1.0.0", "1.1.0"):
        key = dict(model=MODEL, model_version=version, status="error")
        assert sample(after, "model_predictions_total", **key) == sample(before, "model_predictions_total", **key)


def test_feedback_sets_accuracy_and_the_accuracy_fault_degrades_it(client: httpx.Client, server: RunningServer) -> None:
    rows, _ = live_rows(30, seed=11)
    answers = []
    for i, row in enumerate(rows):
        answers.append(client.post("/predict", json={"id": "one-user", "prediction_id": f"acc-{i}",
                                                     "features": row}).json())
    version = answers[0]["version"]
    assert {a["version"] for a in answers} == {version}  # one user, one version
    # Ground truth equal to the predictions: accuracy 1.0 over the window.
    for a in answers[:20]:
        assert client.post("/feedback", json={"prediction_id": a["prediction_id"], "label": a["prediction"]}
                           ).json() == {"matched": True, "version": version}
    assert sample(scrape(client), "model_accuracy", model=MODEL, model_version=version) == 1.0
    # Every label flipped by the fault: the last 10 of a 20-wide window are wrong.
    client.post("/fault", json={"kind": "accuracy", "level": 1.0})
    for a in answers[20:]:
        client.post("/feedback", json={"prediction_id": a["prediction_id"], "label": a["prediction"]})
    assert sample(scrape(client), "model_accuracy", model=MODEL, model_version=version) == 0.5
    assert client.post("/feedback", json={"prediction_id": "never-made", "label": 1}).json()["matched"] is False
    # The feedback log has the labels as delivered (noisy ones included), for the join.
    path = server.log_dir / f"{MODEL}.feedback.jsonl"
    lines = wait_for(lambda: (found := path.read_text().splitlines() if path.exists() else []) and len(found) >= 31
                     and found, 5, what="31 feedback lines in the log")
    labels = {r["prediction_id"]: r["label"] for r in map(json.loads, lines)}
    assert labels["acc-0"] == answers[0]["prediction"]
    assert labels["acc-29"] == 1 - answers[29]["prediction"]


def test_errors_and_latency_faults_show_in_the_scrape_and_clear(client: httpx.Client) -> None:
    row = live_rows(1)[0][0]
    client.post("/fault", json={"kind": "errors", "level": 1.0, "versions": ["1.0.0"]})
    key = dict(model=MODEL, model_version="1.0.0")
    before = scrape(client)
    assert sample(before, "opsctl_demo_fault_active", **key, kind="errors") == 1
    assert sample(before, "opsctl_demo_fault_active", model=MODEL, model_version="1.1.0", kind="errors") == 0
    user_on_stable = next(f"u{i}" for i in range(100)
                          if TrafficRouter([("1.0.0", 50.0), ("1.1.0", 50.0)]).route(f"u{i}") == "1.0.0")
    for _ in range(5):
        assert client.post("/predict", json={"id": user_on_stable, "features": row}).status_code == 500
    after = scrape(client)
    assert (sample(after, "model_predictions_total", **key, status="error")
            - sample(before, "model_predictions_total", **key, status="error")) == 5
    assert client.delete("/fault", params={"kind": "errors"}).json()["cleared"][0]["kind"] == "errors"
    assert client.post("/predict", json={"id": user_on_stable, "features": row}).status_code == 200
    assert sample(scrape(client), "opsctl_demo_fault_active", **key, kind="errors") == 0

    client.post("/fault", json={"kind": "latency", "level": 0.3})
    before = scrape(client)
    started = time.monotonic()
    client.post("/predict", json={"id": user_on_stable, "features": row})
    assert time.monotonic() - started >= 0.3
    after = scrape(client)
    assert (sample(after, "model_prediction_latency_seconds_sum", **key)
            - sample(before, "model_prediction_latency_seconds_sum", **key)) >= 0.3
    # The slow prediction landed above the 0.25 s bucket.
    assert (sample(after, "model_prediction_latency_seconds_bucket", **key, le="0.25")
            == sample(before, "model_prediction_latency_seconds_bucket", **key, le="0.25"))
    assert client.get("/fault").json()["faults"][0]["kind"] == "latency"


def test_drift_fault_shifts_the_features_the_model_sees_and_logs(client: httpx.Client, server: RunningServer) -> None:
    row = live_rows(1)[0][0]
    client.post("/fault", json={"kind": "drift", "level": 2.0, "features": ["monthly_charges"]})
    body = client.post("/predict", json={"prediction_id": "drifted-1", "features": row}).json()
    path = server.log_dir / f"{MODEL}.predictions.jsonl"
    record = wait_for(lambda: next((r for r in map(json.loads, path.read_text().splitlines())
                                    if r["prediction_id"] == "drifted-1"), None), 5, 0.02,
                      what="the prediction in the log")
    scale = models.reference_scales(MODEL)["monthly_charges"]
    assert record["features"]["monthly_charges"] == pytest.approx(row["monthly_charges"] + 2.0 * scale)
    assert record["features"]["tenure_months"] == row["tenure_months"]
    assert record["version"] == body["version"] and record["score"] == pytest.approx(body["score"])


def test_crash_fault_ends_the_process(tmp_path: Path, artifacts: dict[str, tuple[Path, str]]) -> None:
    running = start_server(tmp_path, artifacts)
    try:
        response = httpx.post(f"{running.url}/fault", json={"kind": "crash"}, timeout=5)
        assert response.status_code == 202
        assert running.process.wait(10) == CRASH_EXIT_CODE
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", running.port)) != 0  # nothing listens any more
    finally:
        running.stop()


def test_a_tampered_artifact_is_refused_before_loading(tmp_path: Path, artifacts: dict[str, tuple[Path, str]]) -> None:
    path, digest = artifacts["1.0.0"]
    wrong = "f" * 64
    result = subprocess.run(
        [sys.executable, "-m", "opsctl.demo.server", "--model", MODEL, "--version", f"1.0.0={path}:{wrong}",
         "--port", "0", "--log-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 5
    assert "failed verification" in result.stderr and digest in result.stderr
    assert "Traceback" not in result.stderr


def test_split_follows_the_daemons_routing_table(tmp_path: Path, artifacts: dict[str, tuple[Path, str]]) -> None:
    daemon = FakeDaemon()
    daemon.splits = [{"version": "1.0.0", "weight": 0.0}, {"version": "1.1.0", "weight": 100.0}]
    daemon.start()
    running = None
    try:
        running = start_server(tmp_path, artifacts, "--routing-url", daemon.url, "--routing-ttl", "0.2")
        row = live_rows(1)[0][0]
        with httpx.Client(base_url=running.url, timeout=10) as http:
            assert {http.post("/predict", json={"id": f"u{i}", "features": row}).json()["version"]
                    for i in range(20)} == {"1.1.0"}
            daemon.splits = [{"version": "1.0.0", "weight": 100.0}, {"version": "1.1.0", "weight": 0.0}]
            wait_for(lambda: http.post("/predict", json={"id": "u0", "features": row}).json()["version"] == "1.0.0",
                     10, what="the server to pick up the new split")
            daemon.stop()  # the daemon goes away: the last known split stays
            wait_for(lambda: (sample(scrape(http), "opsctl_sdk_routing_fetch_failures_total", model=MODEL) or 0) >= 2,
                     10, what="failed refreshes to be counted")
            assert {http.post("/predict", json={"id": f"u{i}", "features": row}).json()["version"]
                    for i in range(20)} == {"1.0.0"}
            assert http.get("/healthz").json()["split"] == [{"version": "1.0.0", "weight": 100.0},
                                                            {"version": "1.1.0", "weight": 0.0}]
    finally:
        if running is not None:
            running.stop()
        if daemon._thread is not None and daemon._thread.is_alive():
            daemon.stop()



class VersionsDaemon(FakeDaemon):
    """FakeDaemon that also lists versions (``GET /v1/models/{model}/versions``) like the real daemon."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: list[dict[str, str]] = []

    async def list_versions(self, request: Request) -> JSONResponse:
        return JSONResponse(self.versions)

    def start(self) -> None:
        import threading

        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(routes=[Route("/v1/routing/{model}", self.routing),
                                Route("/v1/models/{model}/versions", self.list_versions)])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        server = self._server
        wait_for(lambda: server.started, 10, 0.01, what="the fake daemon to start")


def test_a_version_the_daemon_routes_to_is_loaded_from_the_store(
        tmp_path: Path, artifacts: dict[str, tuple[Path, str]]) -> None:
    # A retrained candidate registered after the server started: the daemon's split names it.
    store = tmp_path / "store"
    store.mkdir()
    path, digest = artifacts["1.1.0"]
    shutil.copyfile(path, store / f"sha256-{digest}.joblib")
    (store / "tampered.joblib").write_bytes(path.read_bytes() + b"x")
    daemon = VersionsDaemon()
    daemon.versions = [{"version": "1.1.0", "artifact": f"sha256-{digest}.joblib", "sha256": digest},
                       {"version": "1.2.0", "artifact": "tampered.joblib", "sha256": digest}]
    daemon.splits = [{"version": "1.0.0", "weight": 100.0}]
    daemon.start()
    running = None
    try:
        running = start_server(tmp_path, {"1.0.0": artifacts["1.0.0"]}, "--routing-url", daemon.url,
                               "--routing-ttl", "0.2", "--artifacts-dir", str(store))
        rows, _ = live_rows(20)
        with httpx.Client(base_url=running.url, timeout=10) as http:
            def served() -> set[str]:
                return {http.post("/predict", json={"id": f"u{i}", "features": row}).json()["version"]
                        for i, row in enumerate(rows)}

            assert served() == {"1.0.0"} and http.get("/healthz").json()["versions"] == ["1.0.0"]
            # A tampered artifact is never loaded: the last split it can honour stays.
            daemon.splits = [{"version": "1.0.0", "weight": 50.0}, {"version": "1.2.0", "weight": 50.0}]
            wait_for(lambda: (sample(scrape(http), "opsctl_demo_routing_split_rejected", model=MODEL) or 0) >= 1,
                     10, what="the tampered version's split to be rejected")
            assert served() == {"1.0.0"} and http.get("/healthz").json()["versions"] == ["1.0.0"]
            daemon.splits = [{"version": "1.0.0", "weight": 50.0}, {"version": "1.1.0", "weight": 50.0}]
            wait_for(lambda: served() == {"1.0.0", "1.1.0"}, 10, what="the routed-to version to be loaded")
            assert http.get("/healthz").json()["versions"] == ["1.0.0", "1.1.0"]
            assert sample(scrape(http), "opsctl_demo_routing_split_rejected", model=MODEL) == 0
            # The loaded version is a full citizen: its predictions are counted under its own label.
            counted = scrape(http)
            assert any(name.startswith("model_predictions") and ("model_version", "1.1.0") in labels and value > 0
                       for (name, labels), value in counted.items()), sorted({n for n, _ in counted})
    finally:
        if running is not None:
            running.stop()
        if daemon._thread is not None and daemon._thread.is_alive():
            daemon.stop()
    assert running is not None
    stderr = running.process.stderr.read().decode()
    assert "failed verification" in stderr and "now serves 1.1.0" in stderr
