"""Authenticated metrics sources: Prometheus' http_config names against a real Prometheus and a real
Alertmanager pair behind TLS and basic auth (``tests/fixtures/secure.py``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsctl.adapters.alertmanager import AlertmanagerNotifier, AlertmanagerSettings
from opsctl.adapters.http_config import Authorization, BasicAuth, TlsConfig, build_client
from opsctl.adapters.prometheus import PrometheusSettings, PrometheusSource
from opsctl.clock import ManualClock
from opsctl.config import parse_settings
from opsctl.core.alerts import AlertRule, Condition, Severity, step
from opsctl.errors import ConfigError, MetricsAuthError
from tests.fixtures.secure import USER, SecurePrometheus, TlsFiles, authenticated_client
from tests.fixtures.wait import wait_for

FAST = {"window": "4s", "staleness_seconds": 3.0, "timeout_seconds": 2.0}


def secure_settings(prom: SecurePrometheus, *, password: Path | None = None, ca: Path | None = None,
                    **extra: Any) -> PrometheusSettings:
    tls = prom.tls
    return PrometheusSettings(
        url=prom.url, basic_auth=BasicAuth(USER, str(password or tls.password)),
        tls_config=TlsConfig(ca_file=str(ca or tls.ca)), **{**FAST, **extra})


def test_health_data_with_the_right_credentials_and_ca(secure_prometheus: SecurePrometheus) -> None:
    secure_prometheus.exporter.set("auth-ok", "v1", request_rate=20.0, error_ratio=0.1)
    with PrometheusSource(secure_settings(secure_prometheus)) as source:
        sample = wait_for(lambda: _fresh(source, "auth-ok"), timeout=20, what="a fresh sample through TLS + auth")
    assert sample.request_rate == pytest.approx(20.0, rel=0.2)
    assert sample.error_rate == pytest.approx(0.1, abs=0.02)


def _fresh(source: PrometheusSource, model: str) -> Any:
    sample = source.fetch_fleet(datetime.now(UTC), model=model).get(model, "v1")
    # The first samples in the rate window undercount; wait for a full window of traffic.
    ready = sample is not None and sample.fresh and sample.error_rate is not None and abs(sample.request_rate - 20) < 4
    return sample if ready else None


def test_server_name_verifies_the_certificate_for_another_name_than_the_url(
        secure_prometheus: SecurePrometheus) -> None:
    # The URL names an IP; the certificate is also issued to prometheus.test, which server_name selects.
    tls = secure_prometheus.tls
    settings = PrometheusSettings(url=secure_prometheus.url, basic_auth=BasicAuth(USER, str(tls.password)),
                                  tls_config=TlsConfig(ca_file=str(tls.ca), server_name="prometheus.test"))
    with PrometheusSource(settings) as source:
        assert source.query("vector(1)")[0][1] == 1.0
    wrong = PrometheusSettings(url=secure_prometheus.url, basic_auth=BasicAuth(USER, str(tls.password)),
                               tls_config=TlsConfig(ca_file=str(tls.ca), server_name="elsewhere.test"))
    with PrometheusSource(wrong) as source, pytest.raises(MetricsAuthError, match="name mismatch"):
        source.query("vector(1)")


def test_wrong_password_says_authentication_failed(secure_prometheus: SecurePrometheus) -> None:
    settings = secure_settings(secure_prometheus, password=secure_prometheus.tls.wrong_password)
    with PrometheusSource(settings) as source, pytest.raises(MetricsAuthError) as caught:
        source.fetch_fleet(datetime.now(UTC))
    assert str(caught.value).startswith(f"authentication failed (401) at {secure_prometheus.url}")
    no_auth = PrometheusSettings(url=secure_prometheus.url, tls_config=TlsConfig(ca_file=str(secure_prometheus.tls.ca)))
    with PrometheusSource(no_auth) as source, pytest.raises(MetricsAuthError, match=r"authentication failed \(401\)"):
        source.query("vector(1)")


def test_an_untrusted_ca_says_tls_unknown_authority(secure_prometheus: SecurePrometheus) -> None:
    settings = secure_settings(secure_prometheus, ca=secure_prometheus.tls.other_ca)
    with PrometheusSource(settings) as source, pytest.raises(MetricsAuthError) as caught:
        source.fetch_fleet(datetime.now(UTC))
    assert str(caught.value).startswith(f"TLS: unknown authority at {secure_prometheus.url}")
    # No CA configured: the system store does not know the test CA either.
    plain = PrometheusSettings(url=secure_prometheus.url,
                               basic_auth=BasicAuth(USER, str(secure_prometheus.tls.password)))
    with PrometheusSource(plain) as source, pytest.raises(MetricsAuthError, match="TLS: unknown authority"):
        source.query("vector(1)")


def test_a_missing_password_file_is_a_clear_query_error_not_a_crash(tmp_path: Path,
                                                                      secure_prometheus: SecurePrometheus) -> None:
    settings = secure_settings(secure_prometheus, password=tmp_path / "absent")
    with PrometheusSource(settings) as source, pytest.raises(MetricsAuthError) as caught:
        source.query("vector(1)")
    assert "prometheus.basic_auth.password_file" in str(caught.value) and "does not exist" in str(caught.value)


# --------------------------------------------------------------------------- headers, tokens, config


class _Recorder:
    """A plain HTTP listener recording request headers (what a tenant-aware proxy in front of Mimir sees)."""

    def __init__(self) -> None:
        self.headers: list[httpx.Headers] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})


def test_bearer_credentials_and_tenant_headers_come_from_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    extra = tmp_path / "extra"
    extra.write_text("from-a-file\n")
    settings = parse_settings(f"""
[prometheus]
url = "http://mimir.test"
[prometheus.authorization]
credentials_file = "{token}"
[prometheus.http_headers]
X-Scope-OrgID = "team-a"
X-Extra = {{ values = ["literal"], files = ["{extra}"] }}
""").prometheus
    client = build_client(settings.http, "prometheus")
    recorder = _Recorder()
    client._transport = httpx.MockTransport(recorder.handler)  # the wire is not what this test is about
    PrometheusSource(settings, client=client).query("up")
    (sent,) = recorder.headers
    assert sent["authorization"] == "Bearer s3cr3t-token"
    assert sent["x-scope-orgid"] == "team-a" and sent["x-extra"] == "literal, from-a-file"
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in settings.http.scheme_note


def test_config_rejects_inline_secrets_and_conflicting_auth() -> None:
    with pytest.raises(ConfigError, match="unknown key 'password'"):
        _ = parse_settings('[prometheus.basic_auth]\nusername = "u"\npassword = "inline"\n').prometheus
    with pytest.raises(ConfigError, match="mutually exclusive"):
        _ = parse_settings('[prometheus.basic_auth]\nusername = "u"\npassword_file = "p"\n'
                           '[prometheus.authorization]\ncredentials_file = "t"\n').prometheus
    with pytest.raises(ConfigError, match="Authorization is set by opsctl"):
        _ = parse_settings('[alertmanager]\nurl = "http://am"\n[alertmanager.http_headers]\nAuthorization = "x"\n'
                           ).alertmanager
    with pytest.raises(ValueError, match=r"cert_file and tls_config\.key_file go together"):
        TlsConfig(cert_file="c.pem")
    with pytest.raises(ValueError, match="Basic"):
        Authorization(type="Basic", credentials_file="x")


def test_config_check_validates_the_files_and_never_prints_a_secret(opsctl_env: Any, tls_files: TlsFiles,
                                                                      tmp_path: Path) -> None:
    config = opsctl_env.config
    base = config.read_text()
    password = config.parent / "prom.password"  # relative paths are taken from the config's folder
    password.write_text("hunter2-secret\n")
    config.write_text(base + f"""
[prometheus]
url = "https://127.0.0.1:1"
[prometheus.basic_auth]
username = "opsctl"
password_file = "prom.password"
[prometheus.tls_config]
ca_file = "{tls_files.ca}"
[alertmanager]
urls = ["https://127.0.0.1:2", "https://127.0.0.1:3"]
[alertmanager.authorization]
credentials_file = "missing.token"
""")
    failed = opsctl_env.run("config", "check")
    assert failed.code == 2
    assert "alertmanager.authorization.credentials_file" in failed.stderr
    assert f"{config.parent / 'missing.token'} does not exist" in failed.stderr
    (config.parent / "missing.token").write_text("token-secret-value\n")
    ok = opsctl_env.run("config", "check")
    assert ok.code == 0, ok.stderr
    as_json = opsctl_env.run("config", "check", "-o", "json")
    assert as_json.code == 0 and as_json.json()["ok"] is True
    for result in (failed, ok, as_json):
        assert "hunter2" not in result.stdout + result.stderr
        assert "token-secret" not in result.stdout + result.stderr
    unreadable = config.parent / "prom.password"
    unreadable.chmod(0)
    try:
        if not _can_read(unreadable):  # root reads everything; the check is for ordinary users
            denied = opsctl_env.run("config", "check")
            assert denied.code == 2 and "is not readable by this user" in denied.stderr
    finally:
        unreadable.chmod(0o600)
    bad_ca = config.parent / "not-a-ca.pem"
    bad_ca.write_text("not a certificate\n")
    config.write_text(config.read_text().replace(str(tls_files.ca), str(bad_ca)))
    wrong_ca = opsctl_env.run("config", "check")
    assert wrong_ca.code == 2 and "is not a usable CA file" in wrong_ca.stderr


def _can_read(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


# --------------------------------------------------------------------------- several Alertmanagers

RULE = AlertRule("OpsctlAuthPair", Severity.CRITICAL, for_seconds=30)


def _am_alerts(tls: TlsFiles, url: str, model: str) -> list[dict[str, Any]]:
    with authenticated_client(tls) as client:
        response = client.get(f"{url}/api/v2/alerts", params={"filter": f'model="{model}"'})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _delivered(recorder: Any, model: str, status: str) -> list[dict[str, Any]]:
    return [a for body in recorder.bodies for a in body.get("alerts", [])
            if a["labels"].get("model") == model and a["status"] == status]


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: an Alertmanager hanging until the timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"https://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def _pair_settings(tls: TlsFiles, urls: list[str], timeout: float = 4.0) -> AlertmanagerSettings:
    return AlertmanagerSettings(urls=tuple(urls), timeout_seconds=timeout,
                                basic_auth=BasicAuth(USER, str(tls.password)),
                                tls_config=TlsConfig(ca_file=str(tls.ca)))


def test_both_alertmanagers_receive_firing_and_resolved(secure_alertmanagers: Any, tls_files: TlsFiles) -> None:
    first, second = secure_alertmanagers
    notifier = AlertmanagerNotifier(_pair_settings(tls_files, [first.url, second.url]))
    labels = {"model": "am-pair", "model_version": "v1"}
    clock = ManualClock(current=datetime.now(UTC) - timedelta(seconds=60))
    alerts, _ = step((), [Condition(RULE, labels, True)], clock.now())
    clock.advance(RULE.for_seconds)
    alerts, firing = step(alerts, [Condition(RULE, labels, True)], clock.now())
    results = notifier.send(firing)
    assert {r.target for r in results} == {f"alertmanager {first.url}", f"alertmanager {second.url}"}
    assert all(r.ok and r.sent == 1 for r in results)
    for am in (first, second):
        wait_for(lambda am=am: _delivered(am.recorder, "am-pair", "firing"), 10, what=f"{am.url} paged")
    clock.advance(10)
    alerts, resolved = step(alerts, [Condition(RULE, labels, False)], clock.now())
    assert all(r.ok for r in notifier.send(resolved))
    for am in (first, second):
        wait_for(lambda am=am: _delivered(am.recorder, "am-pair", "resolved"), 10, what=f"{am.url} resolved")
    notifier.close()


def test_one_alertmanager_hanging_delays_nothing_for_the_other_and_each_retries_on_its_own(
        secure_alertmanagers: Any, tls_files: TlsFiles, blackhole: str) -> None:
    live = secure_alertmanagers[0]
    timeout = 4.0
    notifier = AlertmanagerNotifier(_pair_settings(tls_files, [blackhole, live.url], timeout=timeout))
    labels = {"model": "am-hang", "model_version": "v1"}
    clock = ManualClock(current=datetime.now(UTC) - timedelta(seconds=60))
    alerts, _ = step((), [Condition(RULE, labels, True)], clock.now())
    clock.advance(RULE.for_seconds)
    alerts, firing = step(alerts, [Condition(RULE, labels, True)], clock.now())
    results: list[Any] = []
    started = time.monotonic()
    sender = threading.Thread(target=lambda: results.extend(notifier.send(firing)))
    sender.start()
    wait_for(lambda: _am_alerts(tls_files, live.url, "am-hang"), timeout=timeout / 2, interval=0.05,
             what="the live Alertmanager has the alert while the other one still hangs")
    reached = time.monotonic() - started
    assert sender.is_alive(), "send() should still be waiting for the hanging Alertmanager"
    sender.join(timeout=timeout * 3)
    assert reached < timeout / 2
    by_target = {r.target: r for r in results}
    assert by_target[f"alertmanager {live.url}"].ok
    hung = by_target[f"alertmanager {blackhole}"]
    assert not hung.ok and "timed out" in hung.error
    assert notifier.queued(f"alertmanager {blackhole}") == 1 and notifier.queued(f"alertmanager {live.url}") == 0

    # The resolution reaches the live one at once; the hanging one keeps only the newest (resolved) entry.
    clock.advance(10)
    alerts, resolved = step(alerts, [Condition(RULE, labels, False)], clock.now())
    started = time.monotonic()
    sender = threading.Thread(target=lambda: notifier.send(resolved))
    sender.start()
    wait_for(lambda: not _am_alerts(tls_files, live.url, "am-hang"), timeout=timeout / 2, interval=0.05,
             what="the live Alertmanager resolved the alert")
    assert time.monotonic() - started < timeout / 2
    sender.join(timeout=timeout * 3)
    assert notifier.queued(f"alertmanager {blackhole}") == 1
    notifier.close()


def test_wrong_alertmanager_password_is_named(secure_alertmanagers: Any, tls_files: TlsFiles) -> None:
    am = secure_alertmanagers[1]
    settings = AlertmanagerSettings(url=am.url, basic_auth=BasicAuth(USER, str(tls_files.wrong_password)),
                                    tls_config=TlsConfig(ca_file=str(tls_files.ca)), timeout_seconds=2)
    notifier = AlertmanagerNotifier(settings)
    clock = ManualClock()
    alerts, _ = step((), [Condition(RULE, {"model": "am-401"}, True)], clock.now())
    clock.advance(RULE.for_seconds)
    _, firing = step(alerts, [Condition(RULE, {"model": "am-401"}, True)], clock.now())
    (result,) = notifier.send(firing)
    assert result.target == "alertmanager" and not result.ok
    assert result.error.startswith(f"authentication failed (401) at {am.url}")
    other_ca = AlertmanagerNotifier(AlertmanagerSettings(
        url=am.url, tls_config=TlsConfig(ca_file=str(tls_files.other_ca)), timeout_seconds=2))
    (result,) = other_ca.send(firing)
    assert result.error.startswith(f"TLS: unknown authority at {am.url}")
    notifier.close()
    other_ca.close()


def test_the_checklist_reads_rules_and_receivers_with_the_same_credentials(
        secure_prometheus: SecurePrometheus, secure_alertmanagers: Any, tls_files: TlsFiles) -> None:
    from opsctl.adapters.checklist_probe import alertmanager_receivers, prometheus_rule_names

    settings = secure_settings(secure_prometheus)
    rules, error = prometheus_rule_names(secure_prometheus.url, 2.0, settings.http)
    assert rules == () and error == ""  # answered: this Prometheus has no rule files
    rules, error = prometheus_rule_names(secure_prometheus.url, 2.0)
    assert rules is None and "CERTIFICATE_VERIFY_FAILED" in error
    am = secure_alertmanagers[0]
    receivers, error = alertmanager_receivers(am.url, 2.0, _pair_settings(tls_files, [am.url]).http)
    assert receivers == 1 and error == ""


def test_a_rotated_password_is_used_at_the_next_query(tmp_path: Path, secure_prometheus: SecurePrometheus) -> None:
    password = tmp_path / "password"
    password.write_text(secure_prometheus.tls.password.read_text())
    with PrometheusSource(secure_settings(secure_prometheus, password=password)) as source:
        assert source.query("vector(1)")[0][1] == 1.0
        password.write_text("rotated on the server side first\n")
        with pytest.raises(MetricsAuthError, match=r"authentication failed \(401\)"):
            source.query("vector(1)")
        password.write_text(secure_prometheus.tls.password.read_text())
        assert source.query("vector(1)")[0][1] == 1.0
        password.unlink()
        with pytest.raises(MetricsAuthError, match=r"password_file.*does not exist"):
            source.query("vector(1)")


def test_a_secret_file_missing_at_start_works_once_it_appears(tmp_path: Path,
                                                              secure_prometheus: SecurePrometheus) -> None:
    password = tmp_path / "late-password"
    with PrometheusSource(secure_settings(secure_prometheus, password=password)) as source:
        with pytest.raises(MetricsAuthError, match=r"password_file.*does not exist"):
            source.query("vector(1)")
        password.write_text(secure_prometheus.tls.password.read_text())
        assert source.query("vector(1)")[0][1] == 1.0
