"""Presets against the real servers: BentoML and MLServer serving a scikit-learn model, scraped by a
real Prometheus, judged by the health cycle's source and SLA evaluation (PrometheusSource.fetch_fleet
+ evaluate_fleet, with settings parsed from an opsctl.toml that only names the preset).

The frameworks run from test-only environments (tests/fixtures/framework_envs.py); the injected
errors and latency happen inside the model's predict, so the framework's own error handling and
metrics report them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from opsctl.adapters.prometheus import PrometheusSource
from opsctl.adapters.prometheus_launcher import LocalPrometheus
from opsctl.config import Settings, parse_settings
from opsctl.core.sla import Check, HealthResult, HealthStatus, Verdict, evaluate_fleet
from tests.fixtures.framework_envs import ModelServer, scrape_config
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("framework-presets")]


def _settings(prometheus_url: str, preset: str) -> Settings:
    return parse_settings(f"""
[prometheus]
url = "{prometheus_url}"
preset = "{preset}"
window = "10s"
staleness_seconds = 4

[sla]
latency_p95_ms = 250
latency_p99_ms = 2000
error_rate_percent = 5
availability_percent = 90
min_request_rate = 0.5
require_accuracy = false
""")


class Traffic:
    """Real prediction requests, about ten a second, until stopped."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError):  # the server is stopping
                    self.server.request(client)
                self._stop.wait(0.1)  # pacing of the load, not a wait for a result

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _health(settings: Settings, server: ModelServer) -> HealthResult:
    with PrometheusSource(settings.prometheus) as source:
        now = datetime.now(UTC)
        fleet = source.fetch_fleet(now)
    (result,) = evaluate_fleet(fleet, [(server.model, server.version)], settings.sla, {}, now)
    return result


def _check(result: HealthResult, name: str) -> Check:
    return next(c for c in result.checks if c.name == name)


@pytest.fixture
def prometheus(model_server: ModelServer) -> Iterator[LocalPrometheus]:
    with LocalPrometheus(scrape_config(model_server.metrics_target)) as prom:
        yield prom  # type: ignore[misc]


@pytest.mark.parametrize("model_server", ["bentoml", "mlserver"], indirect=True)
def test_preset_judges_the_real_server_healthy_then_degraded_then_unknown(
    model_server: ModelServer, prometheus: LocalPrometheus
) -> None:
    preset = model_server.framework
    settings = _settings(prometheus.url, preset)
    seen: list[HealthResult] = []

    def status_is(wanted: HealthStatus, *, failing: str | None = None):  # type: ignore[no-untyped-def]
        def probe() -> HealthResult | None:
            result = _health(settings, model_server)
            seen.append(result)
            if result.status is not wanted:
                return None
            if failing is not None and _check(result, failing).verdict is not Verdict.FAIL:
                return None
            return result
        return probe

    def last() -> str:
        return f"last result: {seen[-1].to_json() if seen else None}\nserver log:\n{model_server.log_tail()}"

    with Traffic(model_server):
        healthy = wait_for(status_is(HealthStatus.HEALTHY), 40, interval=0.5,
                           what=f"{preset} healthy", context=last)
        errors = _check(healthy, "error_rate")
        assert (errors.verdict, errors.value) == (Verdict.PASS, 0.0), errors.reason
        # No accuracy from a model server: skipped because [sla] require_accuracy = false, and says why.
        accuracy = _check(healthy, "accuracy")
        assert accuracy.verdict is Verdict.SKIPPED
        assert f"not provided by preset {preset}" in accuracy.reason

        model_server.inject(fail=True)
        degraded = wait_for(status_is(HealthStatus.DEGRADED, failing="error_rate"), 30, interval=0.5,
                            what=f"{preset} degraded by errors", context=last)
        assert model_server.answers.get(500, 0) > 0
        assert degraded.reason.startswith("error_rate:")
        # failing fast is not slow: the latency failure below comes from the injected sleep alone
        assert _check(degraded, "latency_p95").verdict is Verdict.PASS

        model_server.inject(sleep=0.6)
        slow = wait_for(status_is(HealthStatus.DEGRADED, failing="latency_p95"), 30, interval=0.5,
                        what=f"{preset} degraded by latency", context=last)
        assert _check(slow, "latency_p95").value > 250

        model_server.stop()
        gone = wait_for(status_is(HealthStatus.UNKNOWN), 20, interval=0.5,
                        what=f"{preset} unknown once stopped", context=last)
        assert "stale" in gone.reason
