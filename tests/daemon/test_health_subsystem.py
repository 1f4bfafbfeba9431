"""Health checks and alerts in the real daemon, against the session's real Prometheus and Alertmanager,
driven through the real CLI (``opsctl health``, ``opsctl alerts``) as a user would.

The daemon runs its health job every second on short PromQL windows (4 s rate window, 3 s staleness) so
the scenarios take seconds; the mechanism is the one used with the 15 s / 5m / 60 s defaults.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.adapters.prometheus_launcher import free_port
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

ME = pwd.getpwuid(os.getuid()).pw_name
HEALTH_SECONDS = 1.0
DEGRADED_FOR_SECONDS = 4 * HEALTH_SECONDS  # ModelSlaDegraded fires after 4 health cycles
SCRAPE_SECONDS = 1.0  # the session Prometheus's scrape interval
RUNBOOK_BASE = "https://runbooks.example.org/opsctl/"


def health_config(prometheus_url: str, alertmanager_url: str | None = None) -> str:
    config = f"""
[jobs]
housekeeping_seconds = 60
health_seconds = {HEALTH_SECONDS}
alerts_seconds = 0.5

[prometheus]
url = "{prometheus_url}"
window = "4s"
staleness_seconds = 3
timeout_seconds = 2

[alerts]
resend_interval_seconds = 1
"""
    if alertmanager_url:
        config += (f'\n[alertmanager]\nurl = "{alertmanager_url}"\ntimeout_seconds = 2\n'
                   f'runbook_base_url = "{RUNBOOK_BASE}"\n')
    return config


def deploy(env: OpsctlEnv, model: str, version: str = "v1", accuracy: float = 0.95) -> None:
    artifact = env.root / f"{model}-{version}.bin"
    artifact.write_bytes(f"{model} {version}".encode())
    metrics = env.root / f"{model}-{version}.json"
    metrics.write_text(json.dumps({"accuracy": accuracy}))
    registered = env.run("register", model, "--version", version, "--artifact", str(artifact),
                         "--metrics", str(metrics))
    assert registered.code == 0, registered.stderr
    promoted = env.run("promote", model, version, "--yes")
    assert promoted.code == 0, promoted.stderr


def health(env: OpsctlEnv, model: str) -> tuple[int, dict[str, Any]]:
    result = env.run("health", model, "-o", "json")
    assert result.code in (0, 1, 2, 3), result.stderr
    return result.code, result.json()


def only_version(document: dict[str, Any]) -> dict[str, Any]:
    (version,) = document["models"]
    return version


def checks(version: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in version["checks"]}


def wait_health(env: OpsctlEnv, model: str, status: str, timeout: float, interval: float = 0.1
                ) -> tuple[int, dict[str, Any]]:
    def reached() -> tuple[int, dict[str, Any]] | None:
        code, document = health(env, model)
        return (code, document) if document["models"] and only_version(document)["status"] == status else None

    return wait_for(reached, timeout=timeout, interval=interval, what=f"{model} {status}")  # type: ignore[no-any-return]


def alerts(env: OpsctlEnv, *, all_: bool = True) -> list[dict[str, Any]]:
    result = env.run("alerts", *(["--all"] if all_ else []), "-o", "json")
    assert result.code == 0, result.stderr
    return result.json()["alerts"]  # type: ignore[no-any-return]


def alert_for(env: OpsctlEnv, model: str, rule: str = "ModelSlaDegraded") -> dict[str, Any] | None:
    found = [a for a in alerts(env) if a["labels"].get("model") == model and a["rule"] == rule]
    return found[0] if found else None


def wait_alert(env: OpsctlEnv, model: str, state: str, timeout: float) -> dict[str, Any]:
    return wait_for(lambda: (a := alert_for(env, model)) and a["state"] == state and a,  # type: ignore[no-any-return]
                    timeout=timeout, interval=0.1, what=f"{model} alert {state}")


def am_alerts(url: str, model: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v2/alerts", params={"filter": f'model="{model}"'})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def metric_samples(daemon: DaemonProcess, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = daemon.http().get("/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def replayed_events(daemon: DaemonProcess, wanted: int, predicate: Any) -> list[dict[str, Any]]:
    """Events from the daemon's SSE stream (history replayed from the start) matching ``predicate``,
    read until ``wanted`` of them arrived or 5 s passed (job events keep the stream busy)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    with daemon.http(timeout=5).stream("GET", "/v1/events", params={"since": "0"}) as response:
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                break
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if predicate(event):
                    found.append(event)
                    if len(found) >= wanted:
                        break
    return found


def seconds_between(start: str, end: str) -> float:
    def parse(text: str) -> float:
        from datetime import datetime

        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return parse(end) - parse(start)


@pytest.fixture(scope="module")
def health_daemon(tmp_path_factory: pytest.TempPathFactory, prometheus_stack: Any, alertmanager: Any
                  ) -> Iterator[DaemonProcess]:
    root: Path = tmp_path_factory.mktemp("health") / "opsctl"
    env = make_opsctl_env(root, health_config(prometheus_stack.url, alertmanager.url))
    process = DaemonProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


# --------------------------------------------------------------------------- health


def test_health_follows_the_exporter_healthy_degraded_unknown_and_back(health_daemon: DaemonProcess,
                                                                       flaky_exporter: Any) -> None:
    env, model = health_daemon.env, "hc-life"
    # Latency ~ Uniform(0.05, 0.45): p95/p99 interpolate inside the (0.25, 0.5] bucket.
    flaky_exporter.set(model, "v1", request_rate=40, error_ratio=0.0, latency_lo=0.05, latency_hi=0.45,
                       accuracy=0.95)
    deploy(env, model)
    wait_health(env, model, "healthy", timeout=20)

    def window_filled() -> tuple[int, dict[str, Any]] | None:
        # rate() under-reads a series younger than its window (it cannot extrapolate past the first
        # sample); judge the numbers once the 4 s window holds only this test's traffic.
        code, document = health(env, model)
        rate = checks(only_version(document))["request_rate"]["value"]
        return (code, document) if rate is not None and abs(rate - 40) <= 6 else None

    code, document = wait_for(window_filled, timeout=10, interval=0.2, what="request rate near 40/s")
    assert code == 0 and document["status"] == "ok"
    version = only_version(document)
    assert (version["model"], version["version"], version["role"], version["reason"]) == (model, "v1",
                                                                                        "production", "")
    c = checks(version)
    assert c["latency_p95"]["value"] == pytest.approx((0.25 + 0.45 / 0.5 * 0.25) * 1000, rel=1e-6)
    assert c["latency_p99"]["value"] == pytest.approx((0.25 + 0.49 / 0.5 * 0.25) * 1000, rel=1e-6)
    assert (c["latency_p95"]["threshold"], c["latency_p99"]["threshold"]) == (500, 1000)
    assert c["error_rate"]["value"] == 0.0 and c["availability"]["value"] == 100.0
    assert c["accuracy"]["value"] == pytest.approx(0.95)
    assert c["accuracy"]["threshold"] == pytest.approx(0.95 * 0.95)
    assert {ch["verdict"] for ch in version["checks"]} == {"pass"}
    assert all(set(ch) >= {"name", "value", "threshold", "verdict", "reason"} for ch in version["checks"])

    gauges = metric_samples(health_daemon, "opsctl_health_status", model=model, model_version="v1")
    assert {dict(k)["status"]: v for k, v in gauges.items()} == {"healthy": 1.0, "degraded": 0.0, "unknown": 0.0}
    (p95,) = metric_samples(health_daemon, "opsctl_health_check_value", model=model, check="latency_p95").values()
    assert p95 == pytest.approx(475.0, rel=1e-6)

    table = env.run("health", model)
    assert table.code == 0 and "healthy" in table.stdout and "475ms(500)" in table.stdout, table.stdout

    flaky_exporter.set(model, "v1", error_ratio=0.3)
    failing_since = time.monotonic()
    code, document = wait_health(env, model, "degraded", timeout=2 * HEALTH_SECONDS + SCRAPE_SECONDS + 2)
    took = time.monotonic() - failing_since
    version = only_version(document)
    assert code == 2 and version["critical"] is True  # production version failing its error rate
    assert [ch["name"] for ch in version["checks"] if ch["verdict"] == "fail"] == ["error_rate"]
    assert checks(version)["error_rate"]["value"] > 1.0
    assert took <= 2 * HEALTH_SECONDS + SCRAPE_SECONDS + 0.5, f"degraded only after {took:.1f}s"

    flaky_exporter.set(model, "v1", error_ratio=0.0)
    code, _ = wait_health(env, model, "healthy", timeout=15)
    assert code == 0

    flaky_exporter.stop()
    code, document = wait_health(env, model, "unknown", timeout=10)
    assert code == 3 and "stale" in only_version(document)["reason"]
    gauges = metric_samples(health_daemon, "opsctl_health_status", model=model, model_version="v1")
    assert {dict(k)["status"]: v for k, v in gauges.items()} == {"healthy": 0.0, "degraded": 0.0, "unknown": 1.0}

    flaky_exporter.start()
    code, _ = wait_health(env, model, "healthy", timeout=20)
    assert code == 0


def test_a_slow_version_is_degraded_not_critical_and_its_alert_pends_fires_and_resolves(
        health_daemon: DaemonProcess, exporter: Any, alertmanager: Any, webhook_recorder: Any) -> None:
    env, model = health_daemon.env, "hc-alert"
    exporter.set(model, "v1", request_rate=40, latency_lo=0.6, latency_hi=0.9)  # p95 above 500 ms
    deploy(env, model)
    code, document = wait_health(env, model, "degraded", timeout=20)
    assert code == 1 and only_version(document)["critical"] is False
    assert "latency_p95" in only_version(document)["reason"]

    pending = wait_alert(env, model, "pending", timeout=5)
    assert pending["severity"] == "critical" and pending["labels"]["model_version"] == "v1"
    assert pending["fired_at"] is None
    firing = wait_alert(env, model, "firing", timeout=DEGRADED_FOR_SECONDS + 5)
    held = seconds_between(firing["starts_at"], firing["fired_at"])
    assert DEGRADED_FOR_SECONDS <= held <= DEGRADED_FOR_SECONDS + 2, held
    assert firing["id"] == pending["id"] and firing["starts_at"] == pending["starts_at"]
    changes = replayed_events(health_daemon, 3, lambda e: model in (e["data"].get("model"),
                                                                    e["data"].get("labels", {}).get("model")) and (
        (e["kind"] == "health" and e["data"]["status"] == "degraded")
        # Only this rule: a first cycle before the exporter's first scrape may also pend ModelHealthUnknown.
        or (e["kind"] == "alert" and e["data"]["rule"] == "ModelSlaDegraded"
            and e["data"]["to"] in ("pending", "firing"))))
    assert [(e["kind"], e["data"].get("status") or e["data"]["to"]) for e in changes] == [
        ("health", "degraded"), ("alert", "pending"), ("alert", "firing")]
    paged = wait_for(lambda: am_alerts(alertmanager.url, model), timeout=10, what="alert in Alertmanager")
    assert paged[0]["labels"]["alertname"] == "ModelSlaDegraded"
    assert paged[0]["labels"]["model_version"] == "v1"
    assert paged[0]["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}ModelSlaDegraded.md"

    exporter.set(model, "v1", latency_lo=0.02, latency_hi=0.08)
    recovered_at = time.time()
    resolved = wait_alert(env, model, "resolved", timeout=15)
    assert resolved["fired_at"] == firing["fired_at"]
    assert seconds_between(firing["fired_at"], resolved["resolved_at"]) > 0
    assert resolved["resolved_at"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(recovered_at - 1))
    assert model not in {a["labels"].get("model") for a in alerts(env, all_=False)}  # only with --all
    wait_for(lambda: not am_alerts(alertmanager.url, model), timeout=10, what="resolved in Alertmanager")
    wait_for(lambda: any(a["labels"].get("model") == model and a["status"] == "resolved"
                           for body in webhook_recorder.bodies for a in body.get("alerts", [])),
             timeout=10, what="the resolution delivered by Alertmanager")


def test_ack_and_silence_suppress_notifications_and_are_audited(health_daemon: DaemonProcess, exporter: Any,
                                                                alertmanager: Any) -> None:
    env = health_daemon.env
    silenced = env.run("alerts", "silence", "--match", "model=hc-silenced", "--for", "10m",
                       "--comment", "maintenance window", "-o", "json")
    assert silenced.code == 0, silenced.stderr
    silence = silenced.json()
    assert silence["author"] == ME and silence["matchers"] == ['model="hc-silenced"']
    assert seconds_between(silence["starts_at"], silence["ends_at"]) == pytest.approx(600)
    for model in ("hc-paged", "hc-acked", "hc-silenced"):
        exporter.set(model, "v1", request_rate=40, latency_lo=0.6, latency_hi=0.9)
        deploy(env, model)
    pending = wait_alert(env, "hc-acked", "pending", timeout=20)
    acked = env.run("alerts", "ack", pending["id"][:8], "--comment", "looking into it", "-o", "json")
    assert acked.code == 0, acked.stderr
    assert acked.json()["ack"]["by"] == ME and acked.json()["ack"]["until"] is None

    for model in ("hc-paged", "hc-acked", "hc-silenced"):
        wait_alert(env, model, "firing", timeout=DEGRADED_FOR_SECONDS + 10)
    # The control alert reaches Alertmanager; wait for a later re-send of it, after which the acked and
    # silenced alerts had been firing for a full resend interval without being sent.
    first = wait_for(lambda: am_alerts(alertmanager.url, "hc-paged"), timeout=10, what="control paged")
    wait_for(lambda: (now := am_alerts(alertmanager.url, "hc-paged")) and
             now[0]["updatedAt"] != first[0]["updatedAt"], timeout=10, what="control re-sent")
    assert am_alerts(alertmanager.url, "hc-acked") == []
    assert am_alerts(alertmanager.url, "hc-silenced") == []
    assert alert_for(env, "hc-acked")["ack"]["by"] == ME  # type: ignore[index]

    history = env.run("history", "-o", "json", "-n", "200").json()
    ack_event = next(e for e in history if e["action"] == "alert.ack")
    silence_event = next(e for e in history if e["action"] == "alert.silence")
    assert (ack_event["actor"], ack_event["uid"], ack_event["via"], ack_event["model"]) == (
        ME, os.getuid(), "daemon", "hc-acked")
    assert ack_event["reason"] == "looking into it" and pending["id"] in ack_event["detail"]
    assert (silence_event["actor"], silence_event["model"], silence_event["reason"]) == (
        ME, "hc-silenced", "maintenance window")

    listed = env.run("alerts", "silences", "-o", "json").json()["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]
    expired = env.run("alerts", "unsilence", silence["id"], "--reason", "done")
    assert expired.code == 0, expired.stderr
    assert env.run("alerts", "silences", "-o", "json").json()["silences"] == []
    # With the silence gone, the still-firing alert is paged at the next round.
    wait_for(lambda: am_alerts(alertmanager.url, "hc-silenced"), timeout=10, what="paged after unsilence")


def test_alert_state_and_acks_survive_a_daemon_restart_and_alertmanager_down_is_retried_and_shown(
        health_daemon: DaemonProcess, exporter: Any, alertmanager: Any) -> None:
    env, model, other = health_daemon.env, "hc-restart", "hc-restart-unacked"
    for name in (model, other):
        exporter.set(name, "v1", request_rate=40, latency_lo=0.6, latency_hi=0.9)
        deploy(env, name)
    firing = wait_alert(env, model, "firing", timeout=20 + DEGRADED_FOR_SECONDS)
    wait_alert(env, other, "firing", timeout=10)
    assert env.run("alerts", "ack", firing["id"], "--for", "1h", "--comment", "known").code == 0

    health_daemon.stop()
    assert env.run("alerts").code == 6
    # Come back with Alertmanager unreachable: a closed port.
    original = env.config.read_text()
    env.config.write_text(original.replace(alertmanager.url, f"http://127.0.0.1:{free_port()}"))
    health_daemon.start()
    after = alert_for(env, model)
    assert after is not None and after["state"] == "firing"
    assert (after["id"], after["starts_at"], after["fired_at"]) == (firing["id"], firing["starts_at"],
                                                                     firing["fired_at"])
    assert after["ack"]["by"] == ME and after["ack"]["comment"] == "known"

    def jobs() -> dict[str, dict[str, Any]]:
        return {j["name"]: j for j in env.run("status", "-o", "json").json()["jobs"]}

    wait_for(lambda: jobs()["alerts"]["runs"] >= 4, timeout=10, what="alert rounds after the restart")
    again = alert_for(env, model)
    assert again is not None and again["state"] == "firing" and again["fired_at"] == firing["fired_at"]

    # The unacked alert is due for re-sending every second: delivery fails, is queued, shown, and the
    # health job is unaffected.
    listing = env.run("alerts", "-o", "json")
    delivery = listing.json()["delivery"]["alertmanager"]
    assert delivery["ok"] is False and delivery["queued"] >= 1
    assert "alertmanager delivery failing" in listing.stderr and "queued for retry" in listing.stderr
    status = jobs()
    assert status["alerts"]["last_ok"] is False and "queued for retry" in status["alerts"]["last_summary"]
    assert status["health"]["last_ok"] is True
    # Back to the real Alertmanager (SIGHUP reload): delivery recovers with the next re-send.
    env.config.write_text(original)
    health_daemon.signal(signal.SIGHUP)
    wait_for(lambda: env.run("alerts", "-o", "json").json()["delivery"]["alertmanager"]["ok"], timeout=10,
             what="delivery recovered after reload")
    wait_for(lambda: am_alerts(alertmanager.url, other), timeout=10, what="retried alert delivered")


# --------------------------------------------------------------------------- Prometheus down


def test_prometheus_unreachable_makes_every_version_unknown_and_the_job_fail(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", health_config(f"http://127.0.0.1:{free_port()}"))
    daemon = DaemonProcess(env).start()
    try:
        deploy(env, "hc-dark-a")
        deploy(env, "hc-dark-b")

        def both_unknown() -> tuple[int, dict[str, Any]] | None:
            result = env.run("health", "-o", "json")
            document = result.json()
            return (result.code, document) if len(document["models"]) == 2 else None

        code, document = wait_for(both_unknown, timeout=10, what="both versions evaluated")
        assert code == 3
        assert {m["status"] for m in document["models"]} == {"unknown"}
        assert all("PrometheusUnreachable" in m["reason"] for m in document["models"])
        assert document["prometheus"]["ok"] is False

        status = env.run("status", "-o", "json").json()
        job = next(j for j in status["jobs"] if j["name"] == "health")
        assert job["last_ok"] is False and job["failures"] >= 1
        assert "unreachable" in job["last_summary"]
        assert {m["model"]: m["status"] for m in status["health"]["models"]} == {
            "hc-dark-a": "unknown", "hc-dark-b": "unknown"}
        assert daemon.http().get("/healthz").status_code == 200
        paths = daemon.http().get("/openapi.json").json()["paths"]
        assert set(paths["/v1/health"]) == {"get"} and set(paths["/v1/silences"]) == {"get", "post"}
        assert {"/v1/alerts", "/v1/alerts/{id}/ack", "/v1/silences/{id}/expire"} <= set(paths)
        schema = paths["/v1/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]["models"]["items"]["required"]) <= set(document["models"][0])
        failures = metric_samples(daemon, "opsctl_job_failures_total", job="health")
        assert sum(failures.values()) >= 1
    finally:
        daemon.stop()
