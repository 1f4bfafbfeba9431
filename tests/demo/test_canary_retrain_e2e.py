"""Canaries and retraining on the demo fleet, end to end: a real Prometheus, real model servers with
SDK routing, the traffic generator with delayed labels, the daemon, all through ``opsctl``.

One demo for the whole module (``--config-extra`` shortens the canary and drift intervals). The tests
run in order and build on each other: (a) promotes fraud-detector 1.1.0, (b) rolls back a faulty
churn-predictor 1.1.0, (c) drifts fraud-detector until a retrain hands a candidate to a canary.

(c) needs two things of the demo: its ``[drift]`` policy counts the default drift fault (two
features) as dataset drift, and the model server loads the retrained candidate the daemon routes to.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.demo.test_demo_e2e import Demo
from tests.fixtures.wait import wait_for

# One demo for the whole module, on one xdist worker, in file order: (c) builds on the production
# version (a) promoted, and two demos at once would only slow each other down.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-canary-retrain"),
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus binary")]

RATE = 20.0  # requests per second per model
ANALYSIS_SECONDS = 3.0
FAILURE_THRESHOLD = 2
ERROR_LEVEL = 0.5  # the fraction of the faulty canary's requests that fail (issue 14: "canaries at 50 % errors")
SCRAPE_SECONDS = 1.0
# The canary job ticks well inside the analysis interval, so an evaluation falls due at most a
# quarter second late and the detection bound applies unchanged.
CANARY_JOB_SECONDS = 0.25
EXTRA = f"""\
[jobs]
canary_seconds = {CANARY_JOB_SECONDS}
drift_seconds = 10.0
# The performance check on a few dozen labels flags recall on healthy traffic; keep it out of the
# story so the retrain below is the drift's.
performance_seconds = 3600.0

[window]
max_age_seconds = 30.0

[retrain]
cooldown_seconds = 60

# 12000 fresh rows (3000 held out) instead of 4000: a retrain on the drifted data then beats 1.1.0
# by 0.03-0.05 AUC, clear of the 0.01 margin (with 4000, ~1 run in 6 lands under it and is kept).
[retrain.models.fraud-detector.params]
n_samples = "12000"

[canary]
stages = [20.0, 50.0]
min_stage_seconds = 10.0
analysis_interval_seconds = {ANALYSIS_SECONDS}
failure_threshold = {FAILURE_THRESHOLD}
inconclusive_limit = 30
error_rate_min_baseline = 0.05
error_rate_mde_relative = 4.0
accuracy_gate = true
# The accuracy gate's labels come from the drift window (30 s here): about a hundred labels per
# look, enough for the sequential test at the demo's 10-point tolerance, not at 5 points.
accuracy_tolerance = 0.1
progress_deadline_seconds = 120.0
"""
TERMINAL = {"succeeded", "rolled_back", "aborted", "failed"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("canary-demo")
    extra = root / "extra.toml"
    extra.write_text(EXTRA, encoding="utf-8")
    running = Demo(root / "demo-state")
    running.start_args = ["--rate", str(RATE), "--config-extra", str(extra)]  # type: ignore[attr-defined]
    try:
        _start(running)
        yield running
    finally:
        running.kill_everything()


def _start(demo: Demo) -> None:
    import subprocess

    from tests.fixtures.cli import OPSCTL

    with demo.log.open("wb") as log:
        demo.proc = subprocess.Popen([OPSCTL, "demo", "--no-tui", "--state-dir", str(demo.root),
                                      *demo.start_args],  # type: ignore[attr-defined]
                                     env=demo.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc = demo.proc

    def up() -> bool:
        assert proc.poll() is None, demo.output()
        return (demo.root / "demo.json").exists()

    wait_for(up, 120, 0.2, what="the demo to come up", context=demo.output)


def ok(demo: Demo, *args: str) -> Any:
    result = demo.opsctl(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout) if "-o" in args else result.stdout


def canary(demo: Demo, model: str) -> dict[str, Any]:
    result = demo.opsctl("canary", "status", model, "-o", "json")
    document = json.loads(result.stdout)
    return document[0] if isinstance(document, list) else document  # type: ignore[no-any-return]


def routing(demo: Demo, model: str) -> dict[str, float]:
    socket = demo.state()["daemon"]["socket"]
    with httpx.Client(transport=httpx.HTTPTransport(uds=socket), base_url="http://opsctld", timeout=5) as client:
        body = client.get(f"/v1/routing/{model}").json()
    return {s["version"]: s["weight"] for s in body["splits"] if s["weight"] > 0}


def history(demo: Demo, model: str) -> list[dict[str, Any]]:
    events = ok(demo, "history", model, "-n", "500", "-o", "json")
    return sorted(events, key=lambda e: e["id"])  # type: ignore[no-any-return]




def test_a_healthy_candidate_goes_through_every_stage_and_is_promoted(demo: Demo) -> None:
    model = "fraud-detector"
    wait_for(lambda: routing(demo, model) == {"1.0.0": 100.0}, 30, 0.5, what="traffic", context=demo.tail)
    started = ok(demo, "canary", "start", model, "1.1.0", "--reason", "e2e healthy", "-o", "json")
    assert started["weight"] == 20.0
    final = wait_for(lambda: (lambda c: c if c["state"] in TERMINAL else None)(canary(demo, model)), 150, 0.5,
                     what="a decision", context=demo.tail)
    assert final["state"] == "succeeded" and final["stage"] == 2 and final["weight"] == 100.0
    verdicts = {g["name"]: g["verdict"] for g in final["gates"]}
    assert set(verdicts.values()) == {"pass"} and "accuracy" in verdicts, final["gates"]
    # Registry, routing table and audit log agree.
    versions = {v["version"]: v["status"] for v in ok(demo, "versions", model, "-o", "json")}
    assert versions["1.1.0"] == "production" and versions["1.0.0"] != "production"
    assert routing(demo, model) == {"1.1.0": 100.0}
    actions = [e["action"] for e in history(demo, model) if e["action"].startswith("canary_")]
    assert actions[0] == "canary_start" and actions.count("canary_stage") == 1
    assert actions[-1] in ("canary_weight", "canary_succeeded", "canary_promote") and "canary_succeeded" in actions
    moves = [e["detail"] for e in history(demo, model) if e["action"] == "canary_weight" and e["outcome"] == "ok"]
    # Every stage's weight reached traffic in order; the promotion itself is the production change.
    assert [m.split(": ", 1)[1].split(";")[0] for m in moves][:2] == ["0% -> 20%", "20% -> 50%"]


def test_b_a_canary_with_errors_is_rolled_back_within_the_bound(demo: Demo) -> None:
    model = "churn-predictor"
    started = ok(demo, "canary", "start", model, "1.1.0", "--reason", "e2e faulty", "-o", "json")
    assert started["weight"] == 20.0
    wait_for(lambda: routing(demo, model).get("1.1.0") == 20.0, 10, 0.5, what="stage 1 weight", context=demo.tail)
    before = max(e["id"] for e in history(demo, model))
    # Half the canary's requests fail: the premise of issue 14's rule below (at 20 % errors, 10 requests are
    # not yet significant and the rule does not apply).
    fault = ok(demo, "demo", "fault", model, "errors", "--version", "1.1.0", "--level", str(ERROR_LEVEL))
    injected = time.time()
    assert f"injected errors (level {ERROR_LEVEL:g}) into {model} [1.1.0]" in fault, fault
    try:
        wait_for(lambda: canary(demo, model)["state"] in TERMINAL, 60, 0.5, what="rollback", context=demo.tail)
    finally:
        ok(demo, "demo", "clear", model)
    # Measured from the daemon's own audit timestamp of the weight going to 0, not from when this
    # test's polling (a CLI call every 0.5 s) happened to notice it.
    to_zero = next(e for e in history(demo, model) if e["id"] > before and e["action"] == "canary_weight"
                   and e["outcome"] == "ok" and "% -> 0% (rolled_back)" in e["detail"])
    detected = datetime.fromisoformat(to_zero["at"].replace("Z", "+00:00")).timestamp() - injected
    final = canary(demo, model)
    assert final["state"] == "rolled_back" and final["weight"] == 0.0, final
    assert routing(demo, model) == {"1.0.0": 100.0}
    versions = {v["version"]: v["status"] for v in ok(demo, "versions", model, "-o", "json")}
    assert versions["1.0.0"] == "production"
    # Issue 14's rule for exact tests: rolled back within failure_threshold looks after the first look at
    # which the faulty canary has served 10 requests (no decision on fewer), plus two scrapes.
    canary_rate = RATE * 20.0 / 100.0
    bound = (FAILURE_THRESHOLD + 1) * ANALYSIS_SECONDS + 2 * SCRAPE_SECONDS + 10 / canary_rate
    print(f"\nfault to weight 0: {detected:.1f}s (bound {bound:g}s): {final['reason']}")
    (demo.root.parent / "figures.json").write_text(json.dumps({"detection_seconds": detected, "bound": bound}))
    assert detected <= bound, f"{detected:.1f}s > {bound:g}s: {final['reason']}"
    # Issue 14's end-to-end bound: rolled back within 30 s of the fault, with a reason naming the error gate.
    assert detected <= 30.0, f"{detected:.1f}s > 30s: {final['reason']}"
    assert "error_rate" in final["reason"], final["reason"]


def test_c_drift_triggers_a_retrain_whose_candidate_goes_through_a_canary(demo: Demo) -> None:
    model = "fraud-detector"
    before = max(e["id"] for e in history(demo, model))
    production = next(v["version"] for v in ok(demo, "versions", model, "-o", "json")
                      if v["status"] == "production")
    ok(demo, "demo", "fault", model, "drift", "--level", "2.0")
    try:
        def finished() -> Any:
            events = [e for e in history(demo, model) if e["id"] > before]
            ends = [e for e in events if e["action"] in ("canary_succeeded", "canary_rolled_back", "canary_paused",
                                                         "canary_failed")]
            return events if ends else None

        events = wait_for(finished, 200, 0.5, what="a drift-triggered retrain and its canary", context=demo.tail)
    finally:
        ok(demo, "demo", "clear", model)
    actions = [e["action"] for e in events]
    print(f"\nstory: {actions}")
    # Each run, in order: retrain (asked by the drift job) -> register the candidate -> the decision
    # on the same holdout. A challenger short of the margin is kept registered ("keep") and the drift,
    # still there, asks again after the cooldown; the first "canary" decision hands over.
    pipeline = [e for e in events if e["action"] in ("retrain", "register", "retrain-decision", "canary_start")]
    runs = [pipeline[i:i + 3] for i in range(0, len(pipeline) - 1, 3)]
    assert runs and pipeline[len(runs) * 3:] == [pipeline[-1]] and pipeline[-1]["action"] == "canary_start", \
        [(e["action"], e["to_version"]) for e in pipeline]
    for number, (retrain, register, decision) in enumerate(runs, 1):
        assert [retrain["action"], register["action"], decision["action"]] == ["retrain", "register",
                                                                              "retrain-decision"], actions
        assert retrain["outcome"] == "ok" and (retrain["actor"], retrain["via"]) == ("opsctld", "drift"), retrain
        drifted = retrain["reason"].removeprefix(f"data drift on {model} {production}: ").split(", ")
        assert {"v1", "v2"} <= set(drifted), retrain  # the features the fault shifts
        assert decision["to_version"] == register["to_version"], (register, decision)
        verdict = (f"canary for {register['to_version']}: roc_auc +" if number == len(runs)
                   else f"kept {production}: challenger {register['to_version']} roc_auc ")
        assert decision["detail"].startswith(verdict), decision["detail"]
        print(f"run {number}: {decision['detail']}")
    candidate = runs[-1][1]["to_version"]
    assert pipeline[-1]["to_version"] == candidate and "retrain run" in pipeline[-1]["detail"]
    version = next(v for v in ok(demo, "versions", model, "-o", "json") if v["version"] == candidate)
    lineage = version["lineage"]
    print(f"candidate {candidate}: {json.dumps(lineage)}")
    assert lineage["parent_version"] == production and lineage["trigger"] == "drift", lineage
    assert lineage["training_data_hash"].startswith("sha256:") and "opsctl.demo.training:train" in \
        lineage["code_version"], lineage
    end = next(a for a in actions if a in ("canary_succeeded", "canary_rolled_back", "canary_paused",
                                            "canary_failed"))
    final = canary(demo, model)
    assert final["canary_version"] == candidate, final
    # The candidate really served its share: the model server loaded it from the daemon's store
    # (a canary of a version nobody serves only ever pauses on "no series").
    server = next(s for s in demo.state()["servers"] if s["model"] == model)
    assert candidate in httpx.get(f"{server['url']}/healthz", timeout=5).json()["versions"]
    assert "metrics source error" not in final["reason"], final["reason"]
    if end == "canary_succeeded":
        assert actions.index("canary_succeeded") < actions.index("canary_promote")
        assert routing(demo, model) == {candidate: 100.0}
        versions = {v["version"]: v["status"] for v in ok(demo, "versions", model, "-o", "json")}
        assert versions[candidate] == "production" and versions[production] != "production"
    else:  # ended as the policy says, judged on the candidate's own traffic; the reason is on record
        assert final["reason"], final
        print(f"canary ended {end}: {final['reason']}")
