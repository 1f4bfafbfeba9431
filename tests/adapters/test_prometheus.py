"""PrometheusSource: escaping, settings, error mapping (MockTransport) and a real Prometheus scraping
exporters the tests control."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from opsctl.adapters.prometheus import (
    PrometheusSettings,
    PrometheusSource,
    QueryTemplates,
    promql_selector,
    promql_string,
)
from opsctl.adapters.prometheus_launcher import LocalPrometheus
from opsctl.core.sla import HealthStatus, SlaThresholds, Verdict, evaluate_fleet, evaluate_sla
from opsctl.errors import (
    ConfigError,
    MetricsSourceError,
    NoDataError,
    PrometheusUnreachable,
    StaleDataError,
)
from opsctl.settings_loader import load_dataclass
from tests.fixtures.prometheus import CUSTOM_NAMING
from tests.fixtures.wait import wait_for


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("fraud", '"fraud"'),
        ('a"b', r'"a\"b"'),
        ("a\\b", r'"a\\b"'),
        ("a\nb", r'"a\nb"'),
        ('"} or vector(1) #', r'"\"} or vector(1) #"'),
        ("tab\tcr\r", r'"tab\tcr\r"'),
    ],
)
def test_promql_string_escapes_quotes_backslashes_and_newlines(value: str, literal: str) -> None:
    assert promql_string(value) == literal


def test_selector_rejects_bad_label_names() -> None:
    assert promql_selector({"b": "2", "a": 'x"'}) == r'a="x\"",b="2"'
    with pytest.raises(ValueError):
        promql_selector({"bad-name": "x"})


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"model_label": "bad-label"}, "model_label"),
        ({"model_label": "m", "version_label": "m"}, "must differ"),
        ({"window": "5 minutes"}, "window"),
        ({"url": "localhost:9090"}, "url"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"queries": {"accuracy": "x{{label}}"}}, "unknown placeholder {label}"),
        ({"queries": {"request_rate": "sum(rate(x[1m]))"}}, "{window}"),
        ({"queries": {"latency": "x"}}, "unknown key 'latency'"),
    ],
)
def test_settings_validation_names_the_key(table: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataclass(PrometheusSettings, table, key="prometheus", path="opsctl.toml")
    assert fragment in str(caught.value)
    assert "opsctl.toml" in str(caught.value)


def test_default_templates_use_the_chapter_names_and_configured_labels() -> None:
    settings = PrometheusSettings(model_label="svc", version_label="rev", matchers={"env": "prod"})
    queries = PrometheusSource(settings, client=httpx.Client()).rendered_queries(model='x"y')
    assert set(queries) == {"request_rate", "error_rate", "latency_p95", "latency_p99", "availability",
                            "accuracy"}
    assert "model_prediction_latency_seconds_bucket" in queries["latency_p95"]
    assert 'status="error"' in queries["error_rate"]
    assert "model_accuracy" in queries["accuracy"]
    for promql in queries.values():
        assert "by (svc, rev" in promql
        assert r'svc="x\"y"' in promql and 'env="prod"' in promql
        assert "{window}" not in promql and "{selector}" not in promql
    assert "[60s]" in queries["request_rate"]  # the freshness branch


def mock_source(handler, **settings) -> PrometheusSource:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return PrometheusSource(PrometheusSettings(url="http://prom.test", **settings), client=client)


def vector(*series: tuple[dict, str]) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1.0, value]} for labels, value in series
    ]}}


def test_unreachable_timeout_and_5xx_are_prometheus_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler in (refuse, slow, lambda r: httpx.Response(503, text="not ready"),
                    lambda r: httpx.Response(500, json={"status": "error", "error": "boom"})):
        with pytest.raises(PrometheusUnreachable):
            mock_source(handler).fetch_fleet(now())


def test_rejected_query_is_a_metrics_error_but_not_unreachable() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"})

    with pytest.raises(MetricsSourceError) as caught:
        mock_source(bad).fetch_fleet(now())
    assert not isinstance(caught.value, PrometheusUnreachable)
    assert "parse error" in str(caught.value)


def test_nan_is_none_and_freshness_comes_from_the_short_window_branch() -> None:
    key = {"model": "m", "model_version": "v"}
    stale_key = {"model": "m", "model_version": "old"}

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(httpx.QueryParams(request.content.decode()))["query"]
        if "opsctl_window" in query:
            return httpx.Response(200, json=vector(
                ({**key, "opsctl_window": "window"}, "5"), ({**key, "opsctl_window": "fresh"}, "4"),
                ({**stale_key, "opsctl_window": "window"}, "3"),
            ))
        if "histogram_quantile(0.95" in query:
            return httpx.Response(200, json=vector((key, "NaN"), (stale_key, "0.1")))
        return httpx.Response(200, json=vector((key, "0.5"), ({"other": "x"}, "1")))

    source = mock_source(handler)
    fleet = source.fetch_fleet(now())
    assert fleet.queries == 6 and source.queries_sent == 6
    sample = fleet.get("m", "v")
    assert sample is not None and sample.fresh and sample.request_rate == 5.0
    assert sample.latency_p95 is None and sample.accuracy == 0.5
    old = fleet.get("m", "old")
    assert old is not None and not old.fresh and old.request_rate == 3.0
    with pytest.raises(StaleDataError):
        source.fetch_version("m", "old", now())
    with pytest.raises(NoDataError):
        source.fetch_version("m", "never", now())


# --------------------------------------------------------------------------- real Prometheus

# Short windows so the tests run in seconds; the mechanism is the same as with 5m / 60 s.
FAST = {"window": "4s", "staleness_seconds": 3.0}


def test_latency_quantiles_and_error_rate_match_the_exporter(prometheus_stack, exporter) -> None:
    # Latency ~ Uniform(0.05, 0.45): half the requests are <= 0.25 s (bucket bounds 0.25 and 0.5).
    exporter.set("quant", "v1", request_rate=40, error_ratio=0.03, latency_lo=0.05, latency_hi=0.45)
    source = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, **FAST))

    def sample():
        s = source.fetch_fleet(now()).get("quant", "v1")
        return s if s is not None and s.fresh and s.latency_p99 is not None else None

    s = wait_for(sample, timeout=20, what="quantiles for quant v1")
    true_p95, true_p99 = 0.05 + 0.95 * 0.4, 0.05 + 0.99 * 0.4
    # histogram_quantile interpolates linearly inside the (0.25, 0.5] bucket holding the upper half
    assert s.latency_p95 == pytest.approx(0.25 + (0.95 - 0.5) / 0.5 * 0.25, rel=1e-6)
    assert s.latency_p99 == pytest.approx(0.25 + (0.99 - 0.5) / 0.5 * 0.25, rel=1e-6)
    assert abs(s.latency_p95 - true_p95) <= 0.25 and abs(s.latency_p99 - true_p99) <= 0.25
    assert s.error_rate == pytest.approx(0.03, rel=1e-6)
    assert s.availability == 1.0 and s.accuracy == pytest.approx(0.95)
    assert s.request_rate > 0
    fleet = source.fetch_fleet(now())
    assert fleet.queries == 6  # one per SLA metric, whatever the fleet size


def test_version_without_errors_has_zero_error_rate_not_unknown(prometheus_stack, exporter) -> None:
    exporter.set("clean", "v1", error_ratio=0.0)
    source = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, **FAST))
    s = wait_for(lambda: (x := source.fetch_fleet(now()).get("clean", "v1")) and x.fresh and x, 20)
    assert s.error_rate == 0.0


def test_escaped_label_values_reach_prometheus_intact(prometheus_stack, exporter) -> None:
    weird = 'we"ird\\model\nname'
    exporter.set(weird, "v1")
    exporter.set("bystander", "v1")
    source = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, **FAST))
    sample = wait_for(lambda: source.fetch_fleet(now(), model=weird).get(weird, "v1"), 20)
    assert sample.model == weird
    assert set(source.fetch_fleet(now(), model=weird).versions) == {(weird, "v1")}


def test_failing_exporter_degrades_within_two_health_intervals_then_recovers(
    prometheus_stack, exporter
) -> None:
    exporter.set("flip", "v1", error_ratio=0.0)
    source = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, **FAST))
    thresholds = SlaThresholds()

    def status():
        return evaluate_fleet(source.fetch_fleet(now()), [("flip", "v1")], thresholds,
                              {("flip", "v1"): 0.95}, now())[0]

    wait_for(lambda: status().status is HealthStatus.HEALTHY, 20, what="healthy before the failure")
    exporter.set("flip", "v1", error_ratio=0.25)
    health_interval = 2.0
    result = wait_for(lambda: (r := status()).status is HealthStatus.DEGRADED and r,
                      timeout=2 * health_interval, interval=0.25, what="degraded")
    failing = [c for c in result.checks if c.verdict is Verdict.FAIL]
    assert [c.name for c in failing] == ["error_rate"]
    exporter.set("flip", "v1", error_ratio=0.0)
    wait_for(lambda: status().status is HealthStatus.HEALTHY, 15, what="recovery to healthy")


def test_stopped_exporter_reads_unknown_from_the_freshness_branch(prometheus_stack, flaky_exporter) -> None:
    flaky_exporter.set("dies", "v1")
    # A one-minute window keeps rate() answering long after the exporter is gone; only the
    # freshness branch (3 s) can notice.
    source = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, window="1m", staleness_seconds=3))
    thresholds = SlaThresholds(min_request_rate=0.1)
    wait_for(lambda: (s := source.fetch_fleet(now()).get("dies", "v1")) and s.fresh, 20, what="fresh")
    flaky_exporter.stop()
    stopped = now()
    sample = wait_for(lambda: (s := source.fetch_fleet(now()).get("dies", "v1")) and not s.fresh and s,
                      timeout=15, what="stale")
    assert sample.request_rate is not None and sample.request_rate > 0  # the 1m rate still answers
    result = evaluate_sla(sample, thresholds, 0.95, now())
    assert result.status is HealthStatus.UNKNOWN and "stale" in result.reason
    assert (now() - stopped).total_seconds() < 15
    flaky_exporter.start()
    # back and fresh; the failed scrapes now show as lost availability inside the 1m window
    back = wait_for(lambda: (s := source.fetch_fleet(now()).get("dies", "v1")) and s.fresh and s, 20)
    assert back.availability is not None and back.availability < 1.0
    degraded = evaluate_sla(back, thresholds, 0.95, now())
    assert degraded.status is HealthStatus.DEGRADED
    assert "availability" in [c.name for c in degraded.checks if c.verdict is Verdict.FAIL]


def test_killed_prometheus_makes_every_version_unknown() -> None:
    config = "global:\n  scrape_interval: 1s\nscrape_configs: []\n"
    with LocalPrometheus(config) as prom:
        source = PrometheusSource(PrometheusSettings(url=prom.url, timeout_seconds=2))
        assert source.fetch_fleet(now()).versions == {}
        prom.kill()
        with pytest.raises(PrometheusUnreachable) as caught:
            source.fetch_fleet(now())
    results = evaluate_fleet(caught.value, [("a", "v1"), ("b", "v2")], SlaThresholds(), {}, now())
    assert {r.status for r in results} == {HealthStatus.UNKNOWN}
    assert all("unreachable" in r.reason for r in results)


def test_reconfiguring_only_prometheus_settings_handles_another_naming_scheme(
    prometheus_stack, custom_exporter
) -> None:
    assert CUSTOM_NAMING.requests == "svc_requests_total"
    custom_exporter.set("search", "r42", error_ratio=0.5, latency_lo=0.05, latency_hi=0.45, accuracy=0.9)
    custom_exporter.set("ranker", "r7", error_ratio=0.0, latency_lo=0.01, latency_hi=0.02, accuracy=0.97)
    by = "by ({model_label}, {version_label})"
    requests = "svc_requests_total{{selector}}[{window}]"
    settings = PrometheusSettings(
        url=prometheus_stack.url,
        model_label="svc",
        version_label="rev",
        **FAST,
        queries=QueryTemplates(
            request_rate=f"sum {by} (rate({requests}))",
            error_rate=(f'(sum {by} (rate(svc_requests_total{{code=~"5..",{{selector}}}}[{{window}}]))'
                        f" or sum {by} (rate({requests})) * 0) / sum {by} (rate({requests}))"),
            latency_p95=("histogram_quantile(0.95, sum by ({model_label}, {version_label}, le) "
                         "(rate(svc_latency_seconds_bucket{{selector}}[{window}])))"),
            latency_p99=("histogram_quantile(0.99, sum by ({model_label}, {version_label}, le) "
                         "(rate(svc_latency_seconds_bucket{{selector}}[{window}])))"),
            availability=(f"avg {by} (avg_over_time(up[{{window}}]) * on (instance, job) group_right "
                          "group by (instance, job, {model_label}, {version_label}) "
                          f"(last_over_time({requests})))"),
            accuracy=f"avg {by} (svc_quality{{{{selector}}}})",
        ),
    )
    source = PrometheusSource(settings)

    def both():
        fleet = source.fetch_fleet(now())
        samples = [fleet.get("search", "r42"), fleet.get("ranker", "r7")]
        return samples if all(s and s.fresh and s.latency_p95 is not None for s in samples) else None

    search, ranker = wait_for(both, 20, what="custom-named series")
    assert ranker.error_rate == 0.0 and ranker.latency_p95 is not None and ranker.latency_p95 <= 0.025
    assert search.error_rate == pytest.approx(0.5, rel=1e-6)
    assert search.latency_p95 == pytest.approx(0.475, rel=1e-6)
    assert search.accuracy == pytest.approx(0.9)
    thresholds = SlaThresholds()
    results = evaluate_fleet(source.fetch_fleet(now()), [("search", "r42"), ("ranker", "r7")], thresholds,
                             {("search", "r42"): 0.9, ("ranker", "r7"): 0.97}, now())
    assert [r.status for r in results] == [HealthStatus.DEGRADED, HealthStatus.HEALTHY]
    # the chapter's default templates find nothing in this naming scheme: unknown, never healthy
    default = PrometheusSource(PrometheusSettings(url=prometheus_stack.url, **FAST))
    assert default.fetch_fleet(now()).get("search", "r42") is None
