"""Canaries end to end: the real daemon, a real Prometheus, ControlledExporter traffic, the real CLI.

Traffic comes from the ControlledExporter (deterministic counts, no sampling noise), not the demo
fleet; its canary and production rates do not follow the weight (the gates compare rates, so the
weight does not change their verdicts). Short stages: min_stage_seconds 2, analysis interval 1 s,
the job every 0.25 s, Prometheus scraping every 1 s.
"""

from __future__ import annotations

import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.domain import Actor
from opsctl.services.registry import RegisterRequest, RegistryService
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.prometheus import ControlledExporter, PrometheusStack
from tests.fixtures.wait import wait_for

SCRAPE_SECONDS = 1.0
ANALYSIS_SECONDS = 1.0
FAILURE_THRESHOLD = 2
TERMINAL = {"succeeded", "rolled_back", "aborted", "failed"}
HEALTHY = {"request_rate": 2000.0, "error_ratio": 0.005}
FAULTY = {"request_rate": 2000.0, "error_ratio": 0.2}


def config(prometheus_url: str) -> str:
    return f"""\
[jobs]
canary_seconds = 0.25
housekeeping_seconds = 60
[prometheus]
url = "{prometheus_url}"
window = "30s"
staleness_seconds = 3
[sla]
require_accuracy = false
error_rate_percent = 5
[canary]
stages = [10, 50, 100]
min_stage_seconds = 2
analysis_interval_seconds = {ANALYSIS_SECONDS}
failure_threshold = {FAILURE_THRESHOLD}
inconclusive_limit = 10
metrics_error_limit = 3
accuracy_gate = false
error_rate_mde_relative = 2.0
error_rate_min_baseline = 0.005
progress_deadline_seconds = 120
"""


def seed(env: OpsctlEnv, model: str, versions: tuple[str, ...] = ("v1", "v2")) -> None:
    registry = Registry(env.state_dir / "registry.db")
    service = RegistryService(registry, ArtifactStore(env.state_dir / "artifacts"))
    actor = Actor("test", None, "test")
    for version in versions:
        artifact = env.root / f"{model}-{version}.bin"
        artifact.write_bytes(f"{model}{version}".encode())
        service.register(RegisterRequest(model, version, artifact), actor=actor)
    service.promote(model, versions[0], actor=actor)
    registry.close()


@pytest.fixture
def canary_env(tmp_path: Path, prometheus_stack: PrometheusStack) -> OpsctlEnv:
    return make_opsctl_env(tmp_path / "opsctl", config(prometheus_stack.url))


@pytest.fixture
def canary_daemon(canary_env: OpsctlEnv) -> Any:
    process = DaemonProcess(canary_env)
    try:
        yield process
    finally:
        process.stop()


def canary(daemon: DaemonProcess, model: str) -> dict[str, Any]:
    docs = daemon.http().get("/v1/canaries", params={"model": model}).json()
    return docs[0]  # type: ignore[no-any-return]


def routing(daemon: DaemonProcess, model: str) -> dict[str, float]:
    body = daemon.http().get(f"/v1/routing/{model}").json()
    return {s["version"]: s["weight"] for s in body["splits"]}


def start(daemon: DaemonProcess, model: str, version: str = "v2", **overrides: Any) -> dict[str, Any]:
    response = daemon.http().post("/v1/canaries", json={"model": model, "version": version, "reason": "test",
                                                        "overrides": overrides})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def audit(env: OpsctlEnv, model: str) -> list[dict[str, Any]]:
    registry = Registry(env.state_dir / "registry.db")
    try:
        return [e.to_json() for e in registry.audit(model, limit=1000)]
    finally:
        registry.close()


def weight_moves(events: list[dict[str, Any]]) -> list[str]:
    return [e["detail"].split(": ", 1)[1].split(";")[0] for e in events
            if e["action"] == "canary_weight" and e["outcome"] == "ok"]


def test_healthy_candidate_goes_through_every_stage_and_is_promoted(
        canary_env: OpsctlEnv, canary_daemon: DaemonProcess, exporter: ControlledExporter) -> None:
    model = "canary-healthy"
    seed(canary_env, model)
    exporter.set(model, "v1", **HEALTHY)
    exporter.set(model, "v2", **HEALTHY)
    canary_daemon.start()
    started = canary_env.run("canary", "start", model, "v2", "--reason", "new model", "-o", "json")
    assert started.code == 0, started.stderr
    assert started.json()["weight"] == 10.0 and routing(canary_daemon, model) == {"v1": 90.0, "v2": 10.0}
    watched = canary_env.run("canary", "status", model, "--watch", "--timeout", "60", "-o", "json", timeout=90)
    assert watched.code == 0, (watched.stdout, watched.stderr)
    final = watched.json()
    assert final["state"] == "succeeded" and final["weight"] == 100.0 and final["stage"] == 3
    # The last stage is 100 %: production serves nothing, so the comparison reports its numbers as
    # not applicable and the absolute ceiling (the SLA's 5 %) is what judged the errors.
    verdicts = {g["name"]: g["verdict"] for g in final["gates"]}
    assert verdicts["error_rate"] == "not_applicable" and verdicts["error_rate_ceiling"] == "pass"
    assert verdicts["latency"] == "not_applicable" and verdicts["sla"] == "pass"
    # Every gate says what it had and what it needed.
    assert all("sample_size" in g and "sample_needed" in g and "expected_seconds" in g for g in final["gates"])
    # Registry, routing table and audit log agree.
    assert routing(canary_daemon, model) == {"v2": 100.0}
    models = {m["model"]: m for m in canary_daemon.http().get("/v1/models").json()}
    assert models[model]["production_version"] == "v2" and models[model]["canary_version"] is None
    events = audit(canary_env, model)
    actions = [e["action"] for e in events]
    assert actions.count("canary_start") == 1 and actions.count("canary_stage") == 2
    assert actions.count("canary_succeeded") == 1 and actions.count("canary_promote") == 1
    assert weight_moves(events) == ["0% -> 10%", "10% -> 50%", "50% -> 100%"]
    start_event = next(e for e in events if e["action"] == "canary_start")
    assert start_event["reason"] == "new model" and start_event["via"] == "daemon"
    # Gauges carry the outcome and the gate verdicts with their numbers.
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(canary_daemon.http().get("/metrics").text)
               for s in f.samples}
    assert samples[("opsctl_canary_weight", (("canary_version", "v2"), ("model", model)))] == 100.0
    assert samples[("opsctl_canary_stage", (("model", model),))] == 3
    assert samples[("opsctl_canary_gate_verdict", (("gate", "error_rate_ceiling"), ("model", model)))] == 1.0
    assert math.isnan(samples[("opsctl_canary_gate_verdict", (("gate", "error_rate"), ("model", model)))])
    assert ("opsctl_canary_failed_checks", (("model", model),)) in samples


def test_injected_errors_roll_back_within_the_bound(
        canary_env: OpsctlEnv, canary_daemon: DaemonProcess, exporter: ControlledExporter) -> None:
    model = "canary-faulty"
    seed(canary_env, model)
    exporter.set(model, "v1", **HEALTHY)
    exporter.set(model, "v2", **HEALTHY)
    canary_daemon.start()
    start(canary_daemon, model, min_stage_seconds=60, progress_deadline_seconds=300)
    # Let a few healthy evaluations land first, so detection starts from a running stage.
    wait_for(lambda: (canary(canary_daemon, model).get("last_evaluation") or {}).get("verdict") == "pass",
             timeout=20, what="a passing evaluation")
    injected = time.monotonic()
    exporter.set(model, "v2", error_ratio=0.2)
    wait_for(lambda: routing(canary_daemon, model) == {"v1": 100.0}, timeout=30, interval=0.05,
             what="weight 0 after the fault")
    detection = time.monotonic() - injected
    bound = (FAILURE_THRESHOLD + 1) * ANALYSIS_SECONDS + 2 * SCRAPE_SECONDS
    print(f"\ndetection time, 20% errors vs 0.5%: {detection:.2f}s (bound {bound:.1f}s)")
    assert detection <= bound
    doc = canary(canary_daemon, model)
    assert doc["state"] == "rolled_back" and doc["weight"] == 0.0 and doc["failed_checks"] == FAILURE_THRESHOLD
    assert "error_rate" in doc["reason"]
    status = canary_env.run("canary", "status", model, "-o", "json")
    assert status.code == 1 and status.json()["state"] == "rolled_back"
    models = {m["model"]: m for m in canary_daemon.http().get("/v1/models").json()}
    assert models[model]["production_version"] == "v1"


@pytest.mark.parametrize("on_error, expected", [("pause", "paused"), ("rollback", "rolled_back")])
def test_stopped_exporter_never_advances_and_ends_as_the_policy_says(
        canary_env: OpsctlEnv, canary_daemon: DaemonProcess, flaky_exporter: ControlledExporter,
        on_error: str, expected: str) -> None:
    model = f"canary-stop-{on_error}"
    seed(canary_env, model)
    flaky_exporter.set(model, "v1", **HEALTHY)
    flaky_exporter.set(model, "v2", **HEALTHY)
    canary_daemon.start()
    # While the staleness window runs out, the SLA's availability check sees `up == 0` and may fail
    # a check or two (evidence counts); a high threshold lets the metrics-error rule decide here.
    start(canary_daemon, model, min_stage_seconds=4, on_metrics_error=on_error, failure_threshold=10)
    wait_for(lambda: (canary(canary_daemon, model).get("last_evaluation") or {}).get("verdict") == "pass",
             timeout=20, what="a passing evaluation")
    flaky_exporter.stop()
    stopped = time.monotonic()
    doc = wait_for(lambda: (d := canary(canary_daemon, model))["state"] in ("paused", *TERMINAL) and d,
                   timeout=30, what=f"the canary to end in {expected}")
    assert doc["state"] == expected, doc["reason"]
    assert doc["stage"] == 1 and doc["metrics_error_streak"] >= 3, doc
    assert "stale" in doc["reason"] or "no series" in doc["reason"]
    assert routing(canary_daemon, model) == ({"v1": 90.0, "v2": 10.0} if expected == "paused" else {"v1": 100.0})
    # Nothing advanced while the data was gone.
    assert [e for e in audit(canary_env, model) if e["action"] == "canary_stage"] == []
    print(f"\nexporter stopped -> {expected} after {time.monotonic() - stopped:.1f}s")
    if expected == "paused":
        assert canary_env.run("canary", "status", model).code == 2


def test_operator_commands_and_rollback_through_the_cli(
        canary_env: OpsctlEnv, canary_daemon: DaemonProcess, exporter: ControlledExporter) -> None:
    model = "canary-ops"
    seed(canary_env, model, ("v1", "v2", "v3"))
    exporter.set(model, "v1", **HEALTHY)
    exporter.set(model, "v2", **HEALTHY)
    canary_daemon.start()
    env = canary_env
    assert env.run("canary", "start", model, "v2", "--set", "min_stage_seconds=60", "--reason", "r").code == 0
    assert env.run("canary", "pause", model, "--reason", "lunch").code == 0
    assert env.run("canary", "pause", model).code == 4  # already paused: a conflict
    assert env.run("canary", "status", model).code == 2
    assert env.run("canary", "resume", model, "--reason", "back").code == 0
    # `opsctl rollback` aborts the running canary at once, without analysis.
    rolled = env.run("rollback", model, "--yes", "--reason", "pager", "-o", "json")
    assert rolled.code == 0, rolled.stderr
    assert routing(canary_daemon, model) == {"v1": 100.0}
    doc = canary(canary_daemon, model)
    assert doc["state"] == "aborted" and not doc["active"]
    assert env.run("canary", "status", model).code == 1
    # A fresh canary, promoted by hand (skipping stages).
    assert env.run("canary", "start", model, "v3", "--set", "min_stage_seconds=60").code == 0
    assert env.run("canary", "promote", model, "--yes", "--reason", "hotfix").code == 0
    assert routing(canary_daemon, model) == {"v3": 100.0}
    actions = [(e["action"], e["reason"]) for e in audit(env, model)]
    for expected in [("canary_pause", "lunch"), ("canary_resume", "back"), ("canary_abort", "pager"),
                     ("canary_promote", "hotfix")]:
        assert expected in actions
    listing = env.run("canary", "status", "-o", "json")
    assert listing.code == 0 and [d["model"] for d in listing.json()] == [model]


def test_canary_commands_need_the_daemon(canary_env: OpsctlEnv) -> None:
    result = canary_env.run("canary", "status", "anything")
    assert result.code == 6 and "need the daemon" in result.stderr and "opsctl rollback" in result.stderr


@pytest.mark.slow  # started first under xdist (tests/conftest.py)
def test_sigkill_at_20_random_points_ends_where_an_uninterrupted_run_would(
        canary_env: OpsctlEnv, canary_daemon: DaemonProcess, exporter: ControlledExporter) -> None:
    """Each round: a healthy canary (must be promoted) and one whose errors start at a random moment
    (must be rolled back); the daemon is SIGKILLed at random moments until both are finished."""
    rng = random.Random(20260101)
    kills = 0
    rounds = 0
    daemon = canary_daemon
    while kills < 20:
        rounds += 1
        good, bad = f"crash-good-{rounds}", f"crash-bad-{rounds}"
        for model in (good, bad):
            seed(canary_env, model)
            exporter.set(model, "v1", **HEALTHY)
            exporter.set(model, "v2", **HEALTHY)
        daemon.start()
        # Stage timers are persisted timestamps, so downtime counts: longer stages, more kills a round.
        start(daemon, good, min_stage_seconds=15)
        start(daemon, bad, min_stage_seconds=15)
        round_start = time.monotonic()
        fault_at = round_start + rng.uniform(1.0, 40.0)  # before the bad canary could finish its stages
        faulted = False
        while kills < 20:
            pause = rng.uniform(0.1, 1.0)
            while time.monotonic() < round_start + 120 and pause > 0:
                if not faulted and time.monotonic() >= fault_at:
                    exporter.set(bad, "v2", **FAULTY)
                    faulted = True
                time.sleep(min(0.05, pause))
                pause -= 0.05
            if not faulted:
                continue
            states = {canary(daemon, m)["state"] for m in (good, bad)}
            if states <= TERMINAL:
                break
            daemon.signal(signal.SIGKILL)
            daemon.wait(10)
            kills += 1
            daemon.start()
        if not faulted:
            exporter.set(bad, "v2", **FAULTY)
        pair = (good, bad)
        wait_for(lambda: {canary(daemon, m)["state"] for m in pair} <= TERMINAL,  # noqa: B023
                 timeout=60, interval=0.2, what="both canaries to finish after the crashes")
        assert canary(daemon, good)["state"] == "succeeded"
        assert canary(daemon, bad)["state"] == "rolled_back"
        assert routing(daemon, good) == {"v2": 100.0} and routing(daemon, bad) == {"v1": 100.0}
        good_events, bad_events = audit(canary_env, good), audit(canary_env, bad)
        good_actions, bad_actions = [e["action"] for e in good_events], [e["action"] for e in bad_events]
        # No stage skipped or repeated in effect, exactly one promotion.
        assert good_actions.count("canary_start") == 1 and good_actions.count("canary_stage") == 2
        assert weight_moves(good_events) == ["0% -> 10%", "10% -> 50%", "50% -> 100%"]
        assert good_actions.count("canary_succeeded") == 1 and good_actions.count("canary_promote") == 1
        assert bad_actions.count("canary_start") == 1 and bad_actions.count("canary_rolled_back") == 1
        assert "canary_promote" not in bad_actions
        moves = weight_moves(bad_events)
        assert moves[-1].endswith("-> 0% (rolled_back)")
        ups = [m for m in moves[:-1]]
        assert ups == ["0% -> 10%", "10% -> 50%", "50% -> 100%"][:len(ups)]  # in order, none twice
        daemon.stop()
    print(f"\n{kills} SIGKILLs over {rounds} rounds")
    assert kills == 20
