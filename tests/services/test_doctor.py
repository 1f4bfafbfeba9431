"""``run_doctor`` against a real Prometheus scraping tiny real exporters (prometheus_client, one per scenario,
each in its own scrape job so ``[prometheus] matchers = {job = ...}`` gives each test its own slice).

The daemon itself is not started here: its check is injected as "up" (the CLI test covers the real probe).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.prometheus_launcher import LocalPrometheus, free_port
from opsctl.adapters.registry import Registry
from opsctl.clock import SystemClock
from opsctl.config import Settings, parse_settings
from opsctl.core.doctor import EXIT_FAIL, DoctorReport, Finding, Status
from opsctl.domain import Actor
from opsctl.services.doctor import DaemonCheck, run_doctor
from opsctl.services.registry import RegisterRequest, RegistryService
from tests.fixtures.secure import USER, SecurePrometheus
from tests.fixtures.wait import wait_for

ALICE = Actor("alice", 1000, "test")
LABELS = ["model", "model_version", "status"]


@dataclass
class TinyExporter:
    """One real /metrics endpoint on 127.0.0.1 with its own registry."""

    registry: CollectorRegistry
    server: Any = None
    port: int = 0

    def start(self) -> TinyExporter:
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.port = self.server.server_port
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def renamed() -> CollectorRegistry:
    """The team's exporter calls its counter predictions_total, not model_predictions_total."""
    registry = CollectorRegistry()
    Counter("predictions", "p", LABELS, registry=registry).labels("doc-renamed", "v1", "success").inc(10)
    return registry


def relabelled() -> CollectorRegistry:
    """The right metric name, but the model and version are in labels svc and rev."""
    registry = CollectorRegistry()
    Counter("model_predictions", "p", ["svc", "rev", "status"], registry=registry).labels(
        "doc-labels", "v1", "success").inc(10)
    return registry


class _Traffic:
    """Counts 10 successful predictions at every scrape, so the rate is not zero."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def collect(self) -> list[Any]:
        self.counter.inc(10)
        return []


def uninitialised() -> CollectorRegistry:
    """A labelled counter that has seen no error yet: the status="error" series does not exist."""
    registry = CollectorRegistry()
    counter = Counter("model_predictions", "p", LABELS, registry=registry)
    registry.register(_Traffic(counter.labels("doc-uninit", "v1", "success")))  # type: ignore[arg-type]
    Histogram("model_prediction_latency_seconds", "l", LABELS[:2], registry=registry).labels(
        "doc-uninit", "v1").observe(0.05)
    Gauge("model_accuracy", "a", LABELS[:2], registry=registry).labels("doc-uninit", "v1").set(0.9)
    return registry


def stale() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("model_predictions", "p", LABELS, registry=registry).labels("doc-stale", "v1", "success").inc(10)
    return registry


SCENARIOS = {"renamed": renamed, "relabelled": relabelled, "uninit": uninitialised, "stale": stale}


@dataclass
class DoctorStack:
    prometheus: LocalPrometheus
    exporters: dict[str, TinyExporter]


@pytest.fixture(scope="module")
def doctor_stack() -> Iterator[DoctorStack]:
    exporters = {name: TinyExporter(make()).start() for name, make in SCENARIOS.items()}
    jobs = "".join(f"  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{e.port}']\n"
                   for name, e in exporters.items())
    config = f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
    prom = LocalPrometheus(config)
    try:
        prom.start()
        import httpx

        def all_scraped() -> bool:
            # rate() needs two samples in its window: wait for three scrapes of every target.
            query = "count(count_over_time(up[20s]) >= 3)"
            result = httpx.get(f"{prom.url}/api/v1/query", params={"query": query}).json()["data"]["result"]
            return bool(result) and result[0]["value"][1] == str(len(exporters))

        wait_for(all_scraped, timeout=30, what="every tiny exporter scraped three times")
        yield DoctorStack(prom, exporters)
    finally:
        prom.stop()
        for e in exporters.values():
            e.stop()


def deploy(state: Path, model: str, version: str = "v1") -> None:
    registry = Registry(state / "registry.db")
    service = RegistryService(registry, ArtifactStore(state / "artifacts"), clock=SystemClock())
    artifact = state / f"{model}-{version}.bin"
    artifact.write_bytes(f"{model} {version}".encode())
    service.register(RegisterRequest(model, version, artifact), actor=ALICE)
    service.promote(model, version, actor=ALICE)


def settings_for(tmp_path: Path, url: str, job: str | None, extra: str = "") -> Settings:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    matchers = f'\n[prometheus.matchers]\njob = "{job}"\n' if job else ""
    return parse_settings(f"""
[daemon]
state_dir = "{state}"
socket = "{tmp_path / 'opsctl.sock'}"
[prometheus]
url = "{url}"
window = "20s"
staleness_seconds = 3
timeout_seconds = 3
{extra}{matchers}""").validate()


def doctor(settings: Settings) -> DoctorReport:
    return run_doctor(settings, SystemClock(), lambda: DaemonCheck(True, "up (injected)"))


def finding(report: DoctorReport, check: str, model: str | None = None) -> Finding:
    found = [f for f in report.findings if f.check == check and (model is None or f.model == model)]
    assert len(found) == 1, [f.to_json() for f in report.findings]
    return found[0]


def test_wrong_metric_name_says_it_does_not_exist_and_names_the_close_one(tmp_path: Path,
                                                                          doctor_stack: DoctorStack) -> None:
    settings = settings_for(tmp_path, doctor_stack.prometheus.url, "renamed")
    deploy(Path(settings.daemon.state_dir), "doc-renamed")
    report = doctor(settings)
    request_rate = finding(report, "query request_rate", "doc-renamed")
    assert request_rate.status is Status.FAIL
    assert "metric model_predictions_total does not exist" in request_rate.summary
    assert "predictions_total" in request_rate.summary.split("similar names")[1]
    assert "[prometheus.queries] request_rate" in request_rate.fix
    assert finding(report, "prometheus").status is Status.OK
    assert report.exit_code == EXIT_FAIL


def test_wrong_label_names_lists_the_labels_present(tmp_path: Path, doctor_stack: DoctorStack) -> None:
    settings = settings_for(tmp_path, doctor_stack.prometheus.url, "relabelled")
    deploy(Path(settings.daemon.state_dir), "doc-labels")
    report = doctor(settings)
    request_rate = finding(report, "query request_rate", "doc-labels")
    assert request_rate.status is Status.FAIL
    assert "exists with other label names" in request_rate.summary
    assert "Labels present: instance, job, rev, status, svc" in request_rate.summary
    assert "model_label / version_label" in request_rate.fix


def test_uninitialised_error_counter_suggests_the_or_times_zero_idiom(tmp_path: Path,
                                                                      doctor_stack: DoctorStack) -> None:
    # A hand-written error_rate without the `or ... * 0` branch (the new user).
    bare = ('sum by ({model_label}, {version_label}) '
            '(rate(model_predictions_total{status="error",{selector}}[{window}]))'
            ' / sum by ({model_label}, {version_label}) (rate(model_predictions_total{{selector}}[{window}]))')
    settings = settings_for(tmp_path, doctor_stack.prometheus.url, "uninit",
                            f"[prometheus.queries]\nerror_rate = '{bare}'\n")
    deploy(Path(settings.daemon.state_dir), "doc-uninit")
    report = doctor(settings)
    error_rate = finding(report, "query error_rate", "doc-uninit")
    assert error_rate.status is Status.FAIL
    assert 'model_predictions_total{status="error",' in error_rate.summary
    assert "has no series for this version while model_predictions_total does" in error_rate.summary
    assert "or ... * 0" in error_rate.fix
    for name in ("request_rate", "latency_p95", "accuracy"):
        assert finding(report, f"query {name}", "doc-uninit").status is Status.OK
    # The shipped default error_rate has the idiom: the same exporter then answers 0.
    fixed = doctor(settings_for(tmp_path, doctor_stack.prometheus.url, "uninit"))
    ok = finding(fixed, "query error_rate", "doc-uninit")
    assert ok.status is Status.OK and "(0)" in ok.summary


def test_stale_exporter_is_named_with_the_target_error(tmp_path: Path, doctor_stack: DoctorStack) -> None:
    settings = settings_for(tmp_path, doctor_stack.prometheus.url, "stale")
    deploy(Path(settings.daemon.state_dir), "doc-stale")
    before = doctor(settings)
    assert finding(before, "freshness", "doc-stale").status is Status.OK
    assert finding(before, "staleness vs scrape interval").status is Status.OK
    doctor_stack.exporters["stale"].stop()

    def stale_now() -> DoctorReport | None:
        report = doctor(settings)
        return report if finding(report, "freshness", "doc-stale").status is Status.FAIL else None

    report = wait_for(stale_now, timeout=20, interval=0.5, what="doctor sees the stopped exporter as stale")
    freshness = finding(report, "freshness", "doc-stale")
    assert freshness.summary.startswith("stale: no new samples in the last 3s (scrape interval 1s)")
    assert "last sample" in freshness.summary
    port = doctor_stack.exporters["stale"].port
    assert f"targets down: 127.0.0.1:{port}:" in freshness.summary
    # Over the 20 s window the query still answers (rate keeps old samples): only freshness catches it.
    assert finding(report, "query request_rate", "doc-stale").status is Status.OK


def test_staleness_shorter_than_two_scrapes_is_a_config_finding(tmp_path: Path, doctor_stack: DoctorStack) -> None:
    text = f"""
[daemon]
state_dir = "{tmp_path / 'state'}"
socket = "{tmp_path / 'opsctl.sock'}"
[prometheus]
url = "{doctor_stack.prometheus.url}"
staleness_seconds = 1.5
"""
    report = doctor(parse_settings(text))
    staleness = finding(report, "staleness vs scrape interval")
    assert staleness.status is Status.FAIL and "less than two scrape intervals (1s each)" in staleness.summary


def test_prometheus_down_is_named_and_the_query_checks_are_unknown(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, f"http://127.0.0.1:{free_port()}", None)
    deploy(Path(settings.daemon.state_dir), "doc-down")
    report = doctor(settings)
    prometheus = finding(report, "prometheus")
    assert prometheus.status is Status.FAIL and "unreachable" in prometheus.summary
    assert "Prometheus is running" in prometheus.fix
    assert finding(report, "queries").status is Status.UNKNOWN
    assert report.exit_code == EXIT_FAIL
    # A daemon that is up but whose health job keeps failing is a warning with the job's own summary.
    failing = DaemonCheck(True, "up (injected)", ("health: PrometheusUnreachable: ...",))
    with_daemon = run_doctor(settings, SystemClock(), lambda: failing)
    daemon = finding(with_daemon, "daemon")
    assert daemon.status is Status.WARN
    assert "jobs whose last run failed: health: PrometheusUnreachable" in daemon.summary


def test_wrong_password_is_named(tmp_path: Path, secure_prometheus: SecurePrometheus) -> None:
    tls = secure_prometheus.tls
    settings = settings_for(tmp_path, secure_prometheus.url, None, f"""
[prometheus.basic_auth]
username = "{USER}"
password_file = "{tls.wrong_password}"
[prometheus.tls_config]
ca_file = "{tls.ca}"
""")
    report = doctor(settings)
    prometheus = finding(report, "prometheus")
    assert prometheus.status is Status.FAIL
    assert prometheus.summary.startswith(f"authentication failed (401) at {secure_prometheus.url}")
    assert "password_file" in prometheus.fix


def test_a_metric_the_preset_lacks_is_not_provided_never_ok(tmp_path: Path, doctor_stack: DoctorStack) -> None:
    settings = settings_for(tmp_path, doctor_stack.prometheus.url, "uninit", 'preset = "bentoml"\n')
    assert settings.prometheus.queries.accuracy is None  # BentoML exports no accuracy
    deploy(Path(settings.daemon.state_dir), "doc-uninit")
    accuracy = finding(doctor(settings), "query accuracy", "doc-uninit")
    assert accuracy.status is Status.UNKNOWN and "not provided by preset bentoml" in accuracy.summary
