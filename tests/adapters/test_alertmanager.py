"""AlertmanagerNotifier against a real Alertmanager, retries, and the health -> alert -> page path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from opsctl.adapters.alertmanager import AlertmanagerNotifier, AlertmanagerSettings, alertmanager_alert
from opsctl.adapters.prometheus import PrometheusSettings, PrometheusSource
from opsctl.adapters.prometheus_launcher import free_port
from opsctl.clock import ManualClock
from opsctl.core.alerts import (
    AlertPhase,
    AlertPolicy,
    AlertRule,
    Condition,
    Severity,
    acknowledge,
    health_conditions,
    new_silence,
    step,
)
from opsctl.core.runbooks import runbook_url
from opsctl.core.sla import SlaThresholds, evaluate_fleet
from tests.fixtures.wait import wait_for

RULE = AlertRule("OpsctlTestAlert", Severity.CRITICAL, for_seconds=30, annotations={"runbook": "none"})


def am_alerts(url: str, alertname: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v2/alerts", params={"filter": f'alertname="{alertname}"'})
    response.raise_for_status()
    return response.json()


def recorded(recorder, alertname: str, status: str) -> list[dict]:
    return [a for body in recorder.bodies for a in body.get("alerts", [])
            if a["labels"].get("alertname") == alertname and a["status"] == status]


def fire(clock: ManualClock, rule: AlertRule, labels: dict[str, str]):
    alerts, _ = step((), [Condition(rule, labels, True)], clock.now())
    clock.advance(rule.for_seconds)
    return step(alerts, [Condition(rule, labels, True)], clock.now())


def test_payload_shape() -> None:
    clock = ManualClock()
    _, sent = fire(clock, RULE, {"model": "fraud", "model_version": "v3"})
    body = alertmanager_alert(sent[0], "http://opsctl.example:8080")
    assert body["labels"]["alertname"] == "OpsctlTestAlert" and body["labels"]["model"] == "fraud"
    assert body["annotations"] == {"runbook": "none", "runbook_url": runbook_url("OpsctlTestAlert")}
    hosted = alertmanager_alert(sent[0], runbook_base_url="https://wiki.example.org/rb")
    assert hosted["annotations"]["runbook_url"] == "https://wiki.example.org/rb/OpsctlTestAlert.md"
    with pytest.raises(ValueError, match="runbook_base_url"):
        AlertmanagerSettings(runbook_base_url="wiki/rb")
    assert body["startsAt"] == "2026-01-01T00:00:00Z"
    assert body["generatorURL"] == f"http://opsctl.example:8080/alerts/{sent[0].alert.id}"


def test_real_alertmanager_receives_the_alert_then_its_resolution(alertmanager, webhook_recorder) -> None:
    name = "OpsctlAmRoundTrip"
    rule = AlertRule(name, Severity.CRITICAL, for_seconds=30)
    labels = {"model": "fraud", "model_version": "v3"}
    # The state machine's clock runs behind the wall clock, so the resolution's endsAt is already past
    # for the real Alertmanager while the firing endsAt (+4 resend intervals) is still ahead.
    clock = ManualClock(current=datetime.now(UTC) - timedelta(seconds=60))
    notifier = AlertmanagerNotifier(AlertmanagerSettings(url=alertmanager.url))
    alerts, sent = fire(clock, rule, labels)
    assert [n.kind for n in sent] == ["firing"]
    (result,) = notifier.send(sent)
    assert result.ok and result.sent == 1

    active = wait_for(lambda: am_alerts(alertmanager.url, name), 10, what="alert in Alertmanager")
    assert active[0]["labels"]["model_version"] == "v3"
    assert active[0]["status"]["state"] == "active"
    wait_for(lambda: recorded(webhook_recorder, name, "firing"), 10, what="Alertmanager paged the receiver")

    clock.advance(10)
    alerts, sent = step(alerts, [Condition(rule, labels, False)], clock.now())
    assert [n.kind for n in sent] == ["resolved"]
    assert notifier.send(sent)[0].ok
    wait_for(lambda: not am_alerts(alertmanager.url, name), 10, what="alert resolved in Alertmanager")
    resolved = wait_for(lambda: recorded(webhook_recorder, name, "resolved"), 10, what="resolution delivered")
    assert resolved[0]["endsAt"].startswith(clock.now().strftime("%Y-%m-%dT%H:%M:%S"))


def test_alertmanager_down_never_raises_and_retries_later(webhook_recorder) -> None:
    clock = ManualClock()
    _, sent = fire(clock, RULE, {"model": "retry", "model_version": "v1"})
    dead = AlertmanagerNotifier(AlertmanagerSettings(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1))
    (result,) = dead.send(sent)
    assert not result.ok and result.error and dead.queued() == 1
    assert dead.last_results["alertmanager"] is result

    webhook_recorder.status = 500
    try:
        notifier = AlertmanagerNotifier(AlertmanagerSettings(webhook_url=webhook_recorder.url))
        (failed,) = notifier.send(sent)
        assert not failed.ok and "HTTP 500" in failed.error and notifier.queued("webhook") == 1
    finally:
        webhook_recorder.status = 200
    (retried,) = notifier.send([])  # nothing new: the queued notification goes out
    assert retried.ok and retried.sent == 1 and notifier.queued("webhook") == 0
    assert [a["labels"]["model"] for a in webhook_recorder.bodies[-1]["alerts"]] == ["retry"]
    assert webhook_recorder.bodies[-1]["alerts"][0]["status"] == "firing"


def test_a_resolution_replaces_a_queued_firing_notification() -> None:
    clock = ManualClock()
    labels = {"model": "q", "model_version": "v1"}
    alerts, sent = fire(clock, RULE, labels)
    posted: list[list[dict]] = []
    fail = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        if fail[0]:
            return httpx.Response(503)
        posted.append(__import__("json").loads(request.content))
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    notifier = AlertmanagerNotifier(AlertmanagerSettings(url="http://am.test"), client=client)
    assert not notifier.send(sent)[0].ok
    clock.advance(5)
    alerts, resolved = step(alerts, [Condition(RULE, labels, False)], clock.now())
    fail[0] = False
    assert notifier.send(resolved)[0].ok
    assert len(posted) == 1 and len(posted[0]) == 1
    assert posted[0][0]["endsAt"] == "2026-01-01T00:00:35Z"


@pytest.mark.parametrize("suppress", ["ack", "silence"])
def test_health_degradation_pages_through_alertmanager_and_ack_or_silence_suppresses(
    prometheus_stack, exporter, alertmanager, webhook_recorder, suppress: str
) -> None:
    model = f"paged-{suppress}"
    exporter.set(model, "v1", error_ratio=0.3)
    source = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, window="4s", staleness_seconds=3))
    rule = AlertRule(f"OpsctlSla_{suppress}", Severity.CRITICAL, for_seconds=60)
    policy = AlertPolicy(resend_interval_seconds=30, ends_after_resends=40)
    notifier = AlertmanagerNotifier(AlertmanagerSettings(url=alertmanager.url))
    # The state machine's clock (behind the wall clock so the final endsAt is past); Prometheus is real.
    clock = ManualClock(current=datetime.now(UTC) - timedelta(seconds=180))

    def conditions():
        results = evaluate_fleet(source.fetch_fleet(datetime.now(UTC)), [(model, "v1")], SlaThresholds(),
                                 {(model, "v1"): 0.95}, clock.now())
        return health_conditions(results, degraded_rule=rule, unknown_rule=AlertRule("Ignored", for_seconds=1e9))

    wait_for(lambda: conditions()[0].active, 20, what="degraded")
    alerts, sent = step((), conditions(), clock.now(), policy=policy)
    assert alerts[0].phase is AlertPhase.PENDING and sent == ()
    clock.advance(60)
    alerts, sent = step(alerts, conditions(), clock.now(), policy=policy)
    assert alerts[0].phase is AlertPhase.FIRING and [n.kind for n in sent] == ["firing"]
    assert notifier.send(sent)[0].ok
    wait_for(lambda: am_alerts(alertmanager.url, rule.name), 10, what="paged")

    silences = []
    if suppress == "ack":
        alerts = acknowledge(alerts, alerts[0].id, by="alice", now=clock.now())
    else:
        silences = [new_silence([f"model={model}"], author="alice", comment="deploy", now=clock.now(),
                                duration_seconds=3600)]
    clock.advance(30)  # a re-send is due, but suppressed
    alerts, sent = step(alerts, conditions(), clock.now(), policy=policy, silences=silences)
    assert alerts[0].phase is AlertPhase.FIRING and sent == ()

    exporter.set(model, "v1", error_ratio=0.0)
    wait_for(lambda: not conditions()[0].active, 15, what="recovered")
    clock.advance(30)
    alerts, sent = step(alerts, conditions(), clock.now(), policy=policy, silences=silences)
    assert alerts[0].phase is AlertPhase.RESOLVED and alerts[0].resolved_at == clock.now()
    assert [n.kind for n in sent] == ["resolved"]  # suppressed or not, the page is closed
    assert notifier.send(sent)[0].ok
    wait_for(lambda: not am_alerts(alertmanager.url, rule.name), 10, what="resolved in Alertmanager")
