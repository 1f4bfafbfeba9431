"""The checklist's rules on hand-made facts: staleness, unknown vs fail, exit codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from opsctl.core.checklist import FleetFacts, HealthCheckFact, ModelFacts, Status, evaluate, exit_code

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
FLEET = FleetFacts(now=NOW, health_seconds=15, drift_seconds=300, ingest_seconds=5, log_dirs_configured=True,
                   ingest_last_at=NOW - timedelta(seconds=3), ingest_last_ok=True, prometheus_rules=("A", "B"),
                   expected_rules=("A", "B"), alertmanager_url="http://am:9093", receivers_with_integrations=1)
MODEL = ModelFacts("fraud", "v2", production_accuracy=0.95, previous_version="v1", previous_accuracy=0.93,
                   canary_phase="succeeded", load_test="pass", health_status="healthy",
                   health_at=NOW - timedelta(seconds=10),
                   checks=(HealthCheckFact("latency_p95", 120.0, 500.0, "pass"),
                           HealthCheckFact("error_rate", 0.1, 1.0, "pass"),
                           HealthCheckFact("availability", 99.99, 99.9, "pass"),
                           HealthCheckFact("accuracy", 0.95, 0.9, "pass")),
                   drift_at=NOW - timedelta(seconds=200), drift_verdict="ok", predictions_bytes=10, feedback_bytes=5)


def statuses(fleet: FleetFacts = FLEET, model: ModelFacts = MODEL) -> dict[str, Status]:
    return {i.id: i.status for i in evaluate(fleet, [model])}


def test_all_seen_items_pass_and_the_unseeable_are_unknown() -> None:
    s = statuses()
    assert {k for k, v in s.items() if v is not Status.PASS} == {"dashboard", "backup"}
    assert {s["dashboard"], s["backup"]} == {Status.UNKNOWN}
    assert exit_code(evaluate(FLEET, [MODEL])) == 3


def test_drift_detection_that_stopped_fails() -> None:
    stopped = replace(MODEL, drift_at=NOW - timedelta(seconds=3 * 300 + 121))
    assert statuses(model=stopped)["drift_detection"] is Status.FAIL
    assert exit_code(evaluate(FLEET, [stopped])) == 1  # a recommended item
    assert statuses(model=replace(MODEL, drift_at=NOW - timedelta(seconds=3 * 300 + 119)))[
        "drift_detection"] is Status.PASS


def test_stale_health_makes_sla_items_unknown_never_pass() -> None:
    old = replace(MODEL, health_at=NOW - timedelta(seconds=3 * 15 + 121))
    s = statuses(model=old)
    assert {s[k] for k in ("prometheus_metrics", "sla_latency_p95", "sla_error_rate", "sla_availability")} == {
        Status.UNKNOWN}


def test_required_failures_exit_2() -> None:
    failing = replace(MODEL, checks=(HealthCheckFact("error_rate", 30.0, 1.0, "fail"),))
    s = statuses(model=failing)
    assert s["sla_error_rate"] is Status.FAIL and s["sla_latency_p95"] is Status.UNKNOWN
    assert exit_code(evaluate(FLEET, [failing])) == 2
    assert statuses(fleet=replace(FLEET, alertmanager_url=""))["on_call"] is Status.FAIL
    assert statuses(fleet=replace(FLEET, prometheus_rules=None))["alerts"] is Status.UNKNOWN
    assert statuses(model=replace(MODEL, previous_version=None))["rollback_procedure"] is Status.FAIL
    assert statuses(model=replace(MODEL, production_accuracy=0.9))["accuracy_above_baseline"] is Status.FAIL
