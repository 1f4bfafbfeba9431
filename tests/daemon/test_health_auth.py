"""The real daemon against a Prometheus behind TLS and basic auth: healthy with the right credentials,
``unknown`` with the clear reason (never healthy) with a wrong password or an untrusted CA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsctl.adapters.prometheus_launcher import free_port
from tests.daemon.test_health_subsystem import (
    DEGRADED_FOR_SECONDS,
    deploy,
    health_config,
    only_version,
    wait_alert,
    wait_health,
)
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.secure import USER, SecurePrometheus
from tests.fixtures.wait import wait_for


def auth_config(prom: SecurePrometheus, password: Path, ca: Path) -> str:
    return health_config(prom.url) + f"""
[prometheus.basic_auth]
username = "{USER}"
password_file = "{password}"
[prometheus.tls_config]
ca_file = "{ca}"
"""


@pytest.mark.parametrize("case", ["right", "wrong-password", "wrong-ca"])
def test_health_through_an_authenticated_prometheus(tmp_path: Path, secure_prometheus: SecurePrometheus,
                                                    case: str) -> None:
    tls = secure_prometheus.tls
    model = f"auth-{case}"
    secure_prometheus.exporter.set(model, "v1", request_rate=20.0)
    password = tls.wrong_password if case == "wrong-password" else tls.password
    ca = tls.other_ca if case == "wrong-ca" else tls.ca
    env = make_opsctl_env(tmp_path / "opsctl", auth_config(secure_prometheus, password, ca))
    daemon = DaemonProcess(env).start()
    try:
        deploy(env, model)
        if case == "right":
            code, document = wait_health(env, model, "healthy", timeout=30)
            assert code == 0
            return
        code, document = wait_health(env, model, "unknown", timeout=15)
        expected = (f"authentication failed (401) at {secure_prometheus.url}" if case == "wrong-password"
                    else f"TLS: unknown authority at {secure_prometheus.url}")
        assert code == 3 and expected in only_version(document)["reason"]
        assert document["prometheus"]["ok"] is False
        status: dict[str, Any] = env.run("status", "-o", "json").json()
        job = next(j for j in status["jobs"] if j["name"] == "health")
        assert job["last_ok"] is False and expected in job["last_summary"]
        assert {m["model"]: m["status"] for m in status["health"]["models"]} == {model: "unknown"}
        # Later reads still say unknown: the version never flips to healthy while the source refuses us.
        for _ in range(2):
            code, document = wait_health(env, model, "unknown", timeout=5)
            assert code == 3
        assert "correct horse" not in daemon.log()
    finally:
        daemon.stop()


def test_an_alertmanager_pair_behind_auth_gets_every_alert_and_one_down_is_shown_not_blocking(
        tmp_path: Path, secure_prometheus: SecurePrometheus, secure_alertmanagers: Any) -> None:
    tls = secure_prometheus.tls
    live, _ = secure_alertmanagers
    dead = f"https://127.0.0.1:{free_port()}"
    model = "auth-paged"
    secure_prometheus.exporter.set(model, "v1", request_rate=40, error_ratio=0.3)
    config = auth_config(secure_prometheus, tls.password, tls.ca) + f"""
[alertmanager]
urls = ["{dead}", "{live.url}"]
timeout_seconds = 2
[alertmanager.basic_auth]
username = "{USER}"
password_file = "{tls.password}"
[alertmanager.tls_config]
ca_file = "{tls.ca}"
"""
    env = make_opsctl_env(tmp_path / "opsctl", config)
    daemon = DaemonProcess(env).start()
    try:
        deploy(env, model)
        wait_alert(env, model, "firing", timeout=30 + DEGRADED_FOR_SECONDS)

        def paged(status: str) -> list[dict[str, Any]]:
            return [a for body in live.recorder.bodies for a in body.get("alerts", [])
                    if a["labels"].get("model") == model and a["status"] == status]

        wait_for(lambda: paged("firing"), timeout=10, what="the live Alertmanager paged")
        listing = env.run("alerts", "-o", "json")
        delivery = listing.json()["delivery"]
        assert delivery[f"alertmanager {live.url}"]["ok"] is True
        assert delivery[f"alertmanager {dead}"]["ok"] is False and delivery[f"alertmanager {dead}"]["queued"] >= 1
        assert f"alertmanager {dead} delivery failing" in listing.stderr
        secure_prometheus.exporter.set(model, "v1", error_ratio=0.0)
        wait_for(lambda: paged("resolved"), timeout=40, what="the live Alertmanager sent the resolution")
        assert "correct horse" not in daemon.log()
    finally:
        daemon.stop()
