"""Decisions on the shipped demo, end to end: the demo's own config and default traffic, no overrides.

One demo for the module (a real Prometheus, model servers, the traffic generator with delayed
labels, the daemon), in order: (a) left alone for 3 minutes, it raises no performance alert and
starts no retrain; (b) ``opsctl canary start fraud-detector 1.1.0`` without ``--set`` is promoted
within 5 minutes; (c) an ``errors`` fault on churn-predictor's canary is rolled back within 30 s,
naming an error gate; (d) the ``accuracy`` fault at level 0.4 raises ``ModelPerformanceDegraded``
within 3 minutes.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.demo.test_canary_retrain_e2e import _start, canary, history, ok, routing, wait_for
from tests.demo.test_demo_e2e import Demo

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-decisions"),
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus binary")]

TERMINAL = {"succeeded", "rolled_back", "aborted", "failed"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("decisions-demo")
    running = Demo(root / "demo-state")
    running.start_args = []  # type: ignore[attr-defined]
    try:
        _start(running)
        yield running
    finally:
        running.kill_everything()


def alerts(demo: Demo) -> list[dict[str, Any]]:
    document = ok(demo, "alerts", "--all", "-o", "json")
    return document if isinstance(document, list) else document.get("alerts", [])  # type: ignore[no-any-return]


def named(demo: Demo, name: str) -> list[dict[str, Any]]:
    return [a for a in alerts(demo) if name in json.dumps(a)]


def test_a_a_fresh_demo_left_alone_raises_no_performance_alert_and_starts_no_retrain(demo: Demo) -> None:
    wait_for(lambda: routing(demo, "fraud-detector") == {"1.0.0": 100.0}, 60, 0.5, what="traffic", context=demo.tail)
    end = time.monotonic() + 180
    while time.monotonic() < end:
        assert not named(demo, "ModelPerformanceDegraded"), named(demo, "ModelPerformanceDegraded")
        time.sleep(5)
    for model in ("fraud-detector", "churn-predictor"):
        retrains = [e for e in history(demo, model) if e["action"].startswith("retrain")]
        assert not retrains, retrains


def test_b_a_healthy_candidate_is_promoted_without_overrides_within_five_minutes(demo: Demo) -> None:
    model = "fraud-detector"
    started_at = time.monotonic()
    ok(demo, "canary", "start", model, "1.1.0", "--reason", "e2e shipped config", "-o", "json")
    final = wait_for(lambda: (lambda c: c if c["state"] in TERMINAL else None)(canary(demo, model)), 300, 0.5,
                     what="promotion", context=demo.tail)
    took = time.monotonic() - started_at
    print(f"\nhealthy canary promoted after {took:.0f}s")
    assert final["state"] == "succeeded", (final["reason"], final["gates"])
    for gate in final["gates"]:
        assert {"sample_size", "sample_needed", "expected_seconds"} <= set(gate)


def test_c_an_errors_fault_during_a_canary_is_rolled_back_within_30_s_naming_the_error_gate(demo: Demo) -> None:
    model = "churn-predictor"
    ok(demo, "canary", "start", model, "1.1.0", "--reason", "e2e errors", "-o", "json")
    wait_for(lambda: routing(demo, model).get("1.1.0") == 25.0, 20, 0.5, what="stage 1 weight", context=demo.tail)
    ok(demo, "demo", "fault", model, "errors", "--version", "1.1.0")
    injected = time.monotonic()
    try:
        final = wait_for(lambda: (lambda c: c if c["state"] in TERMINAL else None)(canary(demo, model)), 60, 0.5,
                         what="rollback", context=demo.tail)
    finally:
        ok(demo, "demo", "clear", model)
    took = time.monotonic() - injected
    print(f"\nerrors fault to rollback: {took:.1f}s")
    assert final["state"] == "rolled_back", final
    assert "error_rate" in final["reason"], final["reason"]
    assert took <= 30.0, f"{took:.1f}s: {final['reason']}"


def test_d_the_accuracy_fault_raises_model_performance_degraded_within_three_minutes(demo: Demo) -> None:
    model = "churn-predictor"
    ok(demo, "demo", "fault", model, "accuracy", "--level", "0.4")
    try:
        wait_for(lambda: [a for a in named(demo, "ModelPerformanceDegraded") if model in json.dumps(a)], 180, 0.5,
                 what="ModelPerformanceDegraded", context=demo.tail)
    finally:
        ok(demo, "demo", "clear", model)
