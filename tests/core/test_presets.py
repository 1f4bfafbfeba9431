"""Presets as data: every template renders with the known placeholders, label names follow each
server's documentation, explicit settings win, and a metric a preset lacks is never healthy.

Triton, TorchServe and Ray Serve are checked here only (and for PromQL syntax against a real
Prometheus in tests/adapters/test_prometheus_presets.py); BentoML and MLServer also run live in
tests/adapters/test_prometheus_presets_live.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsctl.adapters.prometheus import DEFAULT_QUERIES, PrometheusSettings, PrometheusSource, QueryTemplates
from opsctl.config import parse_settings
from opsctl.core.presets import PRESETS, SLA_QUERIES, get_preset
from opsctl.core.sla import HealthStatus, SlaThresholds, Verdict, VersionSample, evaluate_sla
from opsctl.errors import ConfigError

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# (model label, version label, a metric name each preset's request rate reads), from each server's docs
DOCUMENTED = {
    "opsctl": ("model", "model_version", "model_predictions_total"),
    "bentoml": ("service_name", "service_version", "bentoml_service_request_total"),
    "mlserver": ("model", "version", "model_infer_request_success_total"),
    "triton": ("model", "version", "nv_inference_request_success"),
    "torchserve": ("model_name", "model_version", "ts_inference_requests_total"),
    "rayserve": ("application", "deployment", "ray_serve_deployment_request_counter_total"),
}


def test_the_six_presets_are_the_documented_ones() -> None:
    assert sorted(PRESETS) == sorted(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_preset_fills_label_names_and_renders_every_template(name: str) -> None:
    model_label, version_label, requests = DOCUMENTED[name]
    settings = PrometheusSettings(preset=name, matchers={"env": "prod"})
    assert (settings.model_label, settings.version_label) == (model_label, version_label)
    with PrometheusSource(settings) as source:
        queries = source.rendered_queries(model="fraud")
    provided = {m for m in SLA_QUERIES if get_preset(name).template(m) is not None}
    assert set(queries) == provided
    assert requests in queries["request_rate"]
    for metric, promql in queries.items():
        # every placeholder filled: the selector (model and extra matchers) and the grouping labels
        assert "{selector}" not in promql and "{window}" not in promql and "_label}" not in promql, metric
        assert f'{model_label}="fraud"' in promql and 'env="prod"' in promql, metric
        if metric != "latency_p95" or name != "triton":  # Triton's summary quantiles are per instance
            assert f"by ({model_label}, {version_label}" in promql, metric


def test_opsctl_preset_is_the_default_and_keeps_the_sdk_templates() -> None:
    default = PrometheusSettings()
    assert default.preset == "opsctl"
    assert dict(default.queries.items()) == DEFAULT_QUERIES
    assert (default.model_label, default.version_label) == ("model", "model_version")
    assert default.not_provided() == {}


def test_explicit_templates_and_labels_override_the_preset() -> None:
    settings = parse_settings("""
[prometheus]
preset = "bentoml"
version_label = "bento_version"

[prometheus.queries]
accuracy = "avg by ({model_label}, {version_label}) (iris_accuracy{{selector}})"
""").prometheus
    bentoml = get_preset("bentoml")
    assert settings.model_label == "service_name"
    assert settings.version_label == "bento_version"
    assert settings.queries.accuracy == "avg by ({model_label}, {version_label}) (iris_accuracy{{selector}})"
    assert settings.queries.request_rate == bentoml.request_rate
    assert "accuracy" not in settings.not_provided()


def test_unknown_preset_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings('[prometheus]\npreset = "seldon"\n').validate()
    message = str(raised.value)
    assert "prometheus" in message and "'seldon'" in message
    for name in DOCUMENTED:
        assert name in message


def test_a_request_rate_override_without_window_is_still_refused_under_a_preset() -> None:
    with pytest.raises(ValueError, match="must use \\{window\\}"):
        PrometheusSettings(preset="triton", queries=QueryTemplates(request_rate="sum(up)"))


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_error_template_counts_a_missing_error_series_as_zero(name: str) -> None:
    template = get_preset(name).error_rate
    if template is None:
        assert name == "torchserve"
        return
    # `or <total> * 0`: a version whose error counter has no series yet reads 0, not "no data"
    assert " or " in template and " * 0)" in template


def _good_sample(not_provided: dict[str, str]) -> VersionSample:
    return VersionSample("m", "v1", request_rate=10.0, error_rate=0.0, latency_p95=0.05, latency_p99=0.08,
                         availability=1.0, accuracy=None, fresh=True, not_provided=not_provided)


def test_a_metric_the_preset_lacks_is_never_healthy() -> None:
    settings = PrometheusSettings(preset="torchserve")
    missing = settings.not_provided()
    assert set(missing) == {"error_rate", "latency_p95", "latency_p99", "accuracy"}
    # even with values present (they never are: the source does not query them) the checks are unknown
    result = evaluate_sla(_good_sample(missing), SlaThresholds(require_accuracy=False), 0.9, NOW)
    assert result.status is HealthStatus.UNKNOWN
    by_name = {c.name: c for c in result.checks}
    for metric in ("error_rate", "latency_p95", "latency_p99"):
        assert by_name[metric].verdict is Verdict.UNKNOWN
        assert by_name[metric].reason.startswith("not provided by preset torchserve")
    assert "per host" in by_name["error_rate"].reason
    assert by_name["accuracy"].verdict is Verdict.SKIPPED
    assert result.reason.startswith("latency_p95: not provided by preset torchserve")


def test_missing_accuracy_is_unknown_unless_the_operator_opted_out() -> None:
    missing = PrometheusSettings(preset="bentoml").not_provided()
    assert set(missing) == {"accuracy"}
    required = evaluate_sla(_good_sample(missing), SlaThresholds(), 0.9, NOW)
    assert required.status is HealthStatus.UNKNOWN
    assert required.reason.startswith("accuracy: not provided by preset bentoml")
    opted_out = evaluate_sla(_good_sample(missing), SlaThresholds(require_accuracy=False), 0.9, NOW)
    assert opted_out.status is HealthStatus.HEALTHY
    accuracy = next(c for c in opted_out.checks if c.name == "accuracy")
    assert accuracy.verdict is Verdict.SKIPPED
    assert "not provided by preset bentoml" in accuracy.reason and "(not required)" in accuracy.reason


def test_triton_latency_uses_the_summary_quantiles_in_seconds() -> None:
    triton = get_preset("triton")
    assert triton.latency_p95 is not None and triton.latency_p99 is not None
    assert 'nv_inference_request_summary_us{quantile="0.95",' in triton.latency_p95
    assert 'quantile="0.99",' in triton.latency_p99
    assert triton.latency_p95.endswith("/ 1e6")
    assert "summary_latencies=true" in triton.requires


def test_ray_serve_latency_buckets_are_converted_from_milliseconds() -> None:
    ray = get_preset("rayserve")
    assert ray.latency_p95 is not None
    assert "ray_serve_deployment_processing_latency_ms_bucket" in ray.latency_p95
    assert ray.latency_p95.endswith(" / 1000")
    assert ray.latency_buckets is None  # the canary's bucket reader works in seconds
