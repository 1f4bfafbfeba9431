"""Metric presets: the six SLA query templates and the label names of common model servers.

``[prometheus] preset = "bentoml"`` fills ``[prometheus.queries]`` and ``model_label`` /
``version_label`` from one of these tables; anything set explicitly in the config still wins.
Templates use the placeholders documented in :mod:`opsctl.adapters.prometheus` (``{window}``,
``{model_label}``, ``{version_label}``, ``{selector}``) and return base units (seconds, ratios 0-1,
requests per second).

A server that does not export what a metric needs has ``None`` for it, with the reason in
``missing``: the health check then says "not provided by preset X" and is never healthy (accuracy
is skipped only where the operator set ``[sla] require_accuracy = false``).

Error counters that prometheus_client (and most exporters) create at the first error have no
series for a version that never failed; every error template here falls back to ``total * 0`` with
``or`` so such a version reads 0 errors, not "no data".

Which presets were checked against the real server: ``opsctl``, ``bentoml`` and ``mlserver`` by the
end-to-end tests in ``tests/e2e/test_presets_frameworks.py``; ``triton``, ``torchserve`` and
``rayserve`` are written from their documentation only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SLA_QUERIES = ("request_rate", "error_rate", "latency_p95", "latency_p99", "availability", "accuracy")

_BY = "by ({model_label}, {version_label})"


def _series(metric: str, matchers: str = "") -> str:
    """``metric{matchers,{selector}}`` as template text (``{selector}`` stays a placeholder)."""
    return metric + "{" + matchers + "{selector}}"


def _rate(metric: str, matchers: str = "") -> str:
    return f"sum {_BY} (rate({_series(metric, matchers)}[{{window}}]))"


def _error_ratio(errors: str, total: str) -> str:
    """errors / total, with 0 errors for a version whose error series does not exist yet."""
    return f"({errors} or {total} * 0) / {total}"


def _two_counter_error_ratio(success: str, failure: str) -> str:
    """failure / (success + failure) for servers counting the two outcomes in separate counters."""
    failed = f"({_rate(failure)} or {_rate(success)} * 0)"
    return f"{failed} / ({_rate(success)} + {failed})"


def _quantile(q: float, bucket: str, scale: str = "", matchers: str = "") -> str:
    return (f"histogram_quantile({q}, sum by ({{model_label}}, {{version_label}}, le) "
            f"(rate({_series(bucket, matchers)}[{{window}}]))){scale}")


def _availability(series: str) -> str:
    """Share of scrapes in the window where the targets exposing the version answered (``up``)."""
    return (f"avg {_BY} (avg_over_time(up[{{window}}]) * on (instance, job) group_right "
            "group by (instance, job, {model_label}, {version_label}) "
            f"(last_over_time({_series(series)}[{{window}}])))")


def _buckets(bucket: str, matchers: str = "") -> str:
    return f"sum by ({{model_label}}, {{version_label}}, le) (increase({_series(bucket, matchers)}[{{window}}]))"


@dataclass(frozen=True)
class Preset:
    """One serving stack's metric names as query templates (``None``: the server does not export it)."""

    name: str
    description: str
    model_label: str
    version_label: str
    request_rate: str
    error_rate: str | None
    latency_p95: str | None
    latency_p99: str | None
    availability: str | None
    accuracy: str | None
    # Cumulative latency-bucket counts in seconds (the canary's latency gate); None when the server
    # has no histogram in seconds.
    latency_buckets: str | None = None
    # Why a metric is None, by metric name (shown after "not provided by preset X").
    missing: Mapping[str, str] = field(default_factory=dict)
    # Server settings the templates rely on.
    requires: str = ""

    def template(self, metric: str) -> str | None:
        """The template for one of :data:`SLA_QUERIES`."""
        if metric not in SLA_QUERIES:
            raise ValueError(f"unknown SLA metric {metric!r}")
        value: str | None = getattr(self, metric)
        return value

    def not_provided(self, metric: str) -> str:
        """The reason a check has no data when this preset has no template for ``metric``."""
        why = self.missing.get(metric, f"{self.description} does not export it")
        return f"not provided by preset {self.name} ({why}); set [prometheus.queries] {metric} to supply it"


_NO_ACCURACY = "model servers do not know the true labels"

OPSCTL = Preset(
    name="opsctl",
    description="opsctl's SDK exporter",
    model_label="model",
    version_label="model_version",
    request_rate=_rate("model_predictions_total"),
    error_rate=_error_ratio(_rate("model_predictions_total", 'status="error",'),
                            _rate("model_predictions_total")),
    latency_p95=_quantile(0.95, "model_prediction_latency_seconds_bucket"),
    latency_p99=_quantile(0.99, "model_prediction_latency_seconds_bucket"),
    availability=_availability("model_predictions_total"),
    accuracy=f"avg {_BY} ({_series('model_accuracy')})",
    latency_buckets=_buckets("model_prediction_latency_seconds_bucket"),
)

# BentoML >= 1.2 services (checked against BentoML 1.4): one series per endpoint and HTTP status
# code; service_name and service_version are the Bento's name and version (a `bentoml build` tag;
# "not available" when serving from source). Errors are 5xx answers (a predict that raises answers
# 500). The health probes are counted as requests too, so they are left out.
_BENTO_ENDPOINTS = 'endpoint!~"/(livez|healthz|readyz)",'
_BENTO_REQUESTS = "bentoml_service_request_total"
_BENTO_BUCKETS = "bentoml_service_request_duration_seconds_bucket"
BENTOML = Preset(
    name="bentoml",
    description="BentoML",
    model_label="service_name",
    version_label="service_version",
    request_rate=_rate(_BENTO_REQUESTS, _BENTO_ENDPOINTS),
    error_rate=_error_ratio(_rate(_BENTO_REQUESTS, _BENTO_ENDPOINTS + 'http_response_code=~"5..",'),
                            _rate(_BENTO_REQUESTS, _BENTO_ENDPOINTS)),
    latency_p95=_quantile(0.95, _BENTO_BUCKETS, matchers=_BENTO_ENDPOINTS),
    latency_p99=_quantile(0.99, _BENTO_BUCKETS, matchers=_BENTO_ENDPOINTS),
    availability=_availability(_BENTO_REQUESTS),
    accuracy=None,
    latency_buckets=_buckets(_BENTO_BUCKETS, _BENTO_ENDPOINTS),
    missing={"accuracy": _NO_ACCURACY},
)

# MLServer (KServe / Seldon V2 inference protocol; checked against MLServer 1.7): success and failure
# counters per (model, version), where version is the one the client named in the URL ("None" for
# /v2/models/<name>/infer). Its per-model duration is a summary without quantiles, so latency comes
# from the REST server's histogram of /infer calls, per server, attributed to every model version
# that server answered for (exact with one model per server, as KServe deploys; otherwise the
# server's worst). gRPC-only traffic has no latency here.
_MLS_OK = "model_infer_request_success_total"
_MLS_FAILED = "model_infer_request_failure_total"


def _mlserver_quantile(q: float) -> str:
    per_server = ("histogram_quantile(" + str(q) + ", sum by (instance, job, le) "
                  '(rate(rest_server_request_duration_seconds_bucket{path=~".*/infer"}[{window}])))')
    return (f"max {_BY} ({per_server} * on (instance, job) group_right "
            "group by (instance, job, {model_label}, {version_label}) "
            f"(last_over_time({_series(_MLS_OK)}[{{window}}])))")


MLSERVER = Preset(
    name="mlserver",
    description="MLServer",
    model_label="model",
    version_label="version",
    request_rate=f"({_rate(_MLS_OK)} + ({_rate(_MLS_FAILED)} or {_rate(_MLS_OK)} * 0))",
    error_rate=_two_counter_error_ratio(_MLS_OK, _MLS_FAILED),
    latency_p95=_mlserver_quantile(0.95),
    latency_p99=_mlserver_quantile(0.99),
    availability=_availability(_MLS_OK),
    accuracy=None,
    missing={"accuracy": _NO_ACCURACY},
    requires="the default metrics_rest_server_prefix (rest_server); clients naming the version in the URL",
)

# Triton: per-request counters by (model, version); latency only as cumulative microseconds unless
# the summary metrics are enabled, whose quantiles are the server's own sliding window (not
# {window}); across instances the worst one is taken.
_TRITON_P95 = _series("nv_inference_request_summary_us", 'quantile="0.95",')
_TRITON_P99 = _series("nv_inference_request_summary_us", 'quantile="0.99",')
TRITON = Preset(
    name="triton",
    description="NVIDIA Triton Inference Server",
    model_label="model",
    version_label="version",
    request_rate=(f"({_rate('nv_inference_request_success')} + "
                  f"({_rate('nv_inference_request_failure')} or {_rate('nv_inference_request_success')} * 0))"),
    error_rate=_two_counter_error_ratio("nv_inference_request_success", "nv_inference_request_failure"),
    latency_p95=f"max {_BY} ({_TRITON_P95}) / 1e6",
    latency_p99=f"max {_BY} ({_TRITON_P99}) / 1e6",
    availability=_availability("nv_inference_request_success"),
    accuracy=None,
    missing={"accuracy": _NO_ACCURACY},
    requires="tritonserver --metrics-config summary_latencies=true (for latency_p95 and latency_p99)",
)

# TorchServe in metrics_mode=prometheus: requests per (model_name, model_version); latency only as
# a cumulative counter (a mean, not a quantile) and HTTP errors only per host, so neither can be
# judged per version.
TORCHSERVE = Preset(
    name="torchserve",
    description="TorchServe",
    model_label="model_name",
    version_label="model_version",
    request_rate=_rate("ts_inference_requests_total"),
    error_rate=None,
    latency_p95=None,
    latency_p99=None,
    availability=_availability("ts_inference_requests_total"),
    accuracy=None,
    missing={
        "error_rate": "TorchServe counts HTTP errors per host (Requests5XX), not per model version",
        "latency_p95": "TorchServe exports cumulative latency (a mean), no histogram",
        "latency_p99": "TorchServe exports cumulative latency (a mean), no histogram",
        "accuracy": _NO_ACCURACY,
    },
    requires="metrics_mode=prometheus in config.properties",
)

# Ray Serve (Ray >= 2.10 exports counters with the _total suffix): per deployment replica, tagged
# with application and deployment. Ray Serve has no version label: each version is one deployment
# of the application. Latency buckets are in milliseconds.
_RAY_BUCKETS = "ray_serve_deployment_processing_latency_ms_bucket"
RAYSERVE = Preset(
    name="rayserve",
    description="Ray Serve",
    model_label="application",
    version_label="deployment",
    request_rate=_rate("ray_serve_deployment_request_counter_total"),
    error_rate=_error_ratio(_rate("ray_serve_deployment_error_counter_total"),
                            _rate("ray_serve_deployment_request_counter_total")),
    latency_p95=_quantile(0.95, _RAY_BUCKETS, " / 1000"),
    latency_p99=_quantile(0.99, _RAY_BUCKETS, " / 1000"),
    availability=_availability("ray_serve_deployment_request_counter_total"),
    accuracy=None,
    missing={"accuracy": _NO_ACCURACY},
)

PRESETS: Mapping[str, Preset] = {p.name: p for p in (OPSCTL, BENTOML, MLSERVER, TRITON, TORCHSERVE, RAYSERVE)}
DEFAULT_PRESET = OPSCTL.name


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset must be one of {', '.join(sorted(PRESETS))}, got {name!r}") from None
