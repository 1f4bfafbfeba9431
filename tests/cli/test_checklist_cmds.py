"""``opsctl checklist`` against a real daemon, the session's real Prometheus and Alertmanager: every row
of the chapter's table is there with a status and evidence, and items follow the live state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsctl.core.checklist import ITEMS
from tests.daemon.test_health_subsystem import deploy, health_config, wait_health
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

MODEL_ITEMS = {item_id for item_id, *_, per_model in ITEMS if per_model}


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in document["items"]}


def test_checklist_has_every_item_and_follows_a_failing_version(tmp_path: Path, prometheus_stack: Any,
                                                                exporter: Any, alertmanager: Any) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", health_config(prometheus_stack.url, alertmanager.url))
    daemon = DaemonProcess(env).start()
    model = "chk-fraud"
    try:
        for version in ("v1", "v2"):
            exporter.set(model, version, request_rate=40, error_ratio=0.0, latency_lo=0.02, latency_hi=0.08,
                         accuracy=0.95)
        deploy(env, model, "v1", accuracy=0.93)
        deploy(env, model, "v2", accuracy=0.95)
        wait_health(env, model, "healthy", timeout=20)

        def checklist() -> tuple[int, dict[str, Any]]:
            result = env.run("checklist", model, "-o", "json")
            assert result.code in (0, 1, 2, 3), result.stderr
            return result.code, result.json()

        code, document = checklist()
        items = by_id(document)
        assert [i["id"] for i in document["items"]] == [item_id for item_id, *_ in ITEMS]
        assert all(i["status"] in ("pass", "fail", "unknown") and i["evidence"] for i in document["items"])
        assert {i["id"] for i in document["items"] if i["model"] == model} == MODEL_ITEMS
        assert items["accuracy_above_baseline"]["status"] == "pass"
        assert "v2 accuracy 0.95 vs v1 0.93" in items["accuracy_above_baseline"]["evidence"]
        assert items["rollback_procedure"]["status"] == "pass"
        assert "goes to v1" in items["rollback_procedure"]["evidence"]
        assert items["ab_significance"]["status"] == "fail"  # promoted directly, without a canary
        assert items["load_test"]["status"] == "unknown"
        assert items["prometheus_metrics"]["status"] == "pass"
        assert items["sla_error_rate"]["status"] == "pass"
        # The session Prometheus loads no rule files: opsctl says which rules are missing.
        assert items["alerts"]["status"] == "fail" and "ModelHighErrorRate" in items["alerts"]["evidence"]
        assert items["on_call"]["status"] == "pass"  # the session Alertmanager's webhook receiver
        assert items["runbooks"]["status"] == "pass"
        assert items["drift_detection"]["status"] == "fail"  # no reference sample: drift never ran
        assert code == 2  # required items fail

        exporter.set(model, "v2", error_ratio=0.3)
        wait_health(env, model, "degraded", timeout=10)
        failing = wait_for(lambda: (d := checklist()[1]) and by_id(d)["sla_error_rate"]["status"] == "fail"
                             and d, timeout=10, what="error-rate item fails")
        evidence = by_id(failing)["sla_error_rate"]["evidence"]
        assert evidence.startswith("error_rate ") and "(threshold 1.0): fail" in evidence
    finally:
        daemon.stop()

    # The daemon is down: the checklist still reads the registry and shows the table.
    table = env.run("checklist", model)
    assert table.code == 2 and "Latency P95 < 500ms" in table.stdout and "error_rate" in table.stdout
