"""``opsctl incident timeline`` end to end: a real daemon checks a real exporter through the session's
real Prometheus; a version starts failing, its alert fires, an operator rolls back, the alert resolves.
The timeline (JSON, Markdown, postmortem) must list those effects in order with the sources' own
timestamps, through the registry whether the daemon runs or not."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_health_subsystem import (
    DEGRADED_FOR_SECONDS,
    ME,
    alert_for,
    deploy,
    health_config,
    wait_alert,
    wait_health,
)
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess


def at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))


@pytest.mark.slow
def test_timeline_of_a_fault_a_rollback_and_the_alert_resolving(tmp_path: Path, prometheus_stack: Any,
                                                                  exporter: Any) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", health_config(prometheus_stack.url))
    daemon = DaemonProcess(env).start()
    model = "inc-fraud"
    try:
        exporter.set(model, "v1", request_rate=40, error_ratio=0.0, latency_lo=0.02, latency_hi=0.08)
        exporter.set(model, "v2", request_rate=40, error_ratio=0.0, latency_lo=0.02, latency_hi=0.08)
        deploy(env, model, "v1")
        deploy(env, model, "v2")
        wait_health(env, model, "healthy", timeout=20)

        exporter.set(model, "v2", error_ratio=0.3)  # the fault: v2 starts failing 30 % of requests
        wait_health(env, model, "degraded", timeout=10)
        wait_alert(env, model, "firing", timeout=DEGRADED_FOR_SECONDS + 10)
        rolled = env.run("rollback", model, "--yes", "--reason", "v2 error rate 30 %")
        assert rolled.code == 0, rolled.stderr
        wait_alert(env, model, "resolved", timeout=20)
        alert = alert_for(env, model)
        assert alert is not None

        result = env.run("incident", "timeline", "--since", "10m", "--model", model, "-o", "json",
                         "--postmortem", str(tmp_path / "pm.md"))
        assert result.code == 0, result.stderr
        assert "does not answer" not in result.stderr  # served by the daemon (GET /v1/incident/timeline)
        document = result.json()
        assert document["sources"] == ["audit", "alert", "health", "canary", "drift", "retrain"]
        entries = document["entries"]
        assert entries == sorted(entries, key=at)
        assert {e["model"] for e in entries} == {model}

        def first(source: str, kind: str, version: str | None = "v2") -> dict[str, Any]:
            return next(e for e in entries if e["source"] == source and e["kind"] == kind
                        and (version is None or e["version"] == version))

        degraded = first("health", "degraded")
        firing = first("alert", "firing")
        rollback = first("audit", "rollback", version=None)
        resolved = first("alert", "resolved")
        assert at(degraded) < at(firing) < at(rollback) < at(resolved)
        assert entries.index(degraded) < entries.index(firing) < entries.index(rollback) < entries.index(resolved)
        # Timestamps come from the sources: the alert store's own fired/resolved moments.
        assert firing["at"] == alert["fired_at"] and resolved["at"] == alert["resolved_at"]
        assert degraded["numbers"]["error_rate"] > 1.0 and degraded["numbers"]["error_rate_threshold"] == 1.0
        assert "error_rate" in degraded["why"]
        assert rollback["why"] == "v2 error rate 30 %" and rollback["who"].startswith(ME)
        assert "v2 -> v1" in rollback["what"]
        assert firing["what"].startswith("alert ModelSlaDegraded firing")

        summary = document["summary"]
        assert summary["first_degraded"] == degraded["at"] and summary["first_alert_firing"] == firing["at"]
        assert summary["first_rollback"] == rollback["at"]
        detection = (at(firing) - at(degraded)).total_seconds()
        assert summary["detection_seconds"] == pytest.approx(detection)
        assert DEGRADED_FOR_SECONDS - 1 <= detection <= DEGRADED_FOR_SECONDS + 3
        assert summary["time_to_rollback_seconds"] == pytest.approx((at(rollback) - at(degraded)).total_seconds())

        draft = (tmp_path / "pm.md").read_text()
        assert f"- First alert firing: {firing['at']}" in draft
        assert "Detection time (degraded to alert firing): " in draft and "unknown" not in draft.split("## Impact")[0]
        for heading in ("## Summary", "## Timeline", "## What went well", "## What went badly", "## Action items"):
            assert heading in draft
        assert draft.index("health degraded") < draft.index("alert ModelSlaDegraded firing") < draft.index(
            "rollback v2 -> v1")
    finally:
        daemon.stop()

    # The daemon is down: the same timeline comes straight from the registry file.
    offline = env.run("incident", "timeline", "--since", "10m", "--model", model, "-o", "json")
    assert offline.code == 0, offline.stderr
    assert "the daemon does not answer; reading the registry" in offline.stderr
    assert offline.json()["entries"] == entries
    markdown = env.run("incident", "timeline", "--since", "10m", "--model", model, "-o", "md")
    assert markdown.code == 0 and markdown.stdout.startswith("| time (UTC) | source |")
    assert "v2 error rate 30 %" in markdown.stdout


def test_a_bad_duration_is_a_usage_error_and_a_missing_registry_is_not_found(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl")
    bad = env.run("incident", "timeline", "--since", "soon", "-o", "json")
    assert bad.code == 2 and "bad duration" in bad.json()["error"]["message"]
    missing = env.run("incident", "timeline", "--since", "1h", "-o", "json")
    assert missing.code == 3 and "registry" in missing.json()["error"]["message"]
