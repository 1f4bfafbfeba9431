"""The metrics source: PromQL templates from ``[prometheus]``, one batched query per SLA metric.

Every query is a template in config so a team whose exporters use other names configures instead of
forking; ``[prometheus] preset`` fills the templates and label names for a known serving stack
(:mod:`opsctl.core.presets`), and a metric the preset has no template for is not queried at all (its
check reads "not provided by preset X"). Placeholders (plain text substitution, so PromQL's own
braces need no escaping):

``{window}``         the rate window, ``[prometheus] window`` (``5m``)
``{model_label}``    the label naming the model (``model``)
``{version_label}``  the label naming the version (``model_version``)
``{selector}``       extra label matchers, already escaped, joined by commas; empty when none.
                     Write it inside a selector's braces: ``x{{selector}}`` or ``x{status="error",{selector}}``
                     (PromQL accepts ``x{}`` and a trailing comma).

Each template aggregates ``by ({model_label}, {version_label})`` and returns base units (seconds,
ratios 0-1, requests per second). One cycle is exactly one query per SLA metric for the whole fleet.

**Staleness.** ``rate(x[5m])`` keeps answering for five minutes after an exporter dies, from the
samples already in the window. To notice a dead exporter within ``staleness_seconds`` the source
evaluates the *same* request-rate template a second time with ``{window}`` set to
``staleness_seconds``, inside the same PromQL query (the two results are told apart by a label added
with ``label_replace`` and joined with ``or``). ``rate`` needs two samples inside its window, so a
version whose short-window request rate is missing has not been scraped successfully for about
``staleness_seconds``: it is marked not fresh and judged ``unknown``. This costs no extra query and no
extra per-team template; it requires ``staleness_seconds`` to be at least twice the scrape interval.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import httpx

from opsctl.adapters.http_config import (
    Authorization,
    BasicAuth,
    HeaderValues,
    HttpConfig,
    TlsConfig,
    build_client,
    check_http_fields,
    describe_http_error,
    describe_status,
)
from opsctl.core.presets import DEFAULT_PRESET, OPSCTL, SLA_QUERIES, Preset, get_preset
from opsctl.core.sla import FleetSample, VersionSample
from opsctl.errors import (
    ConfigError,
    MetricsAuthError,
    MetricsSourceError,
    NoDataError,
    PrometheusUnreachable,
    StaleDataError,
)

# The defaults are the `opsctl` preset (opsctl's SDK exporter); `[prometheus] preset` picks another.
DEFAULT_QUERIES: dict[str, str] = {name: OPSCTL.template(name) or "" for name in SLA_QUERIES}

# Cumulative latency-bucket counts per version over {window} (the canary's latency gate counts
# requests slower than a bound from them); each preset has its own. Same placeholders as
# [prometheus.queries].
LATENCY_BUCKETS_QUERY = OPSCTL.latency_buckets or ""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KNOWN_PLACEHOLDERS = {"window", "model_label", "version_label", "selector"}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
FRESHNESS_LABEL = "opsctl_window"


def _check_template(name: str, template: str) -> None:
    if not template.strip():
        raise ValueError(f"queries.{name} must not be empty")
    for placeholder in _PLACEHOLDER.findall(template):
        if placeholder not in _KNOWN_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in sorted(_KNOWN_PLACEHOLDERS))
            raise ValueError(f"queries.{name}: unknown placeholder {{{placeholder}}} (known: {known})")


@dataclass(frozen=True)
class QueryTemplates:
    """``[prometheus.queries]``: one PromQL template per SLA metric (see the module docstring).

    ``None`` is "the preset's template"; inside :class:`PrometheusSettings` the preset has filled
    them, and a metric still ``None`` is one the preset's server does not export.
    """

    request_rate: str | None = None
    error_rate: str | None = None
    latency_p95: str | None = None
    latency_p99: str | None = None
    availability: str | None = None
    accuracy: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            template = getattr(self, f.name)
            if template is not None:
                _check_template(f.name, template)
        if self.request_rate is not None and "{window}" not in self.request_rate:
            raise ValueError("queries.request_rate must use {window}: staleness detection re-evaluates it "
                             "with a short window")

    def items(self) -> list[tuple[str, str | None]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def filled_from(self, preset: Preset) -> QueryTemplates:
        """These templates, with the preset's wherever none was set."""
        return QueryTemplates(**{name: template if template is not None else preset.template(name)
                                 for name, template in self.items()})


@dataclass(frozen=True)
class PrometheusSettings:
    """The ``[prometheus]`` section."""

    url: str = "http://127.0.0.1:9090"
    timeout_seconds: float = 5.0
    # Fills queries, model_label and version_label for a serving stack's own metrics (opsctl.core.presets);
    # what the section sets explicitly wins.
    preset: str = DEFAULT_PRESET
    model_label: str = ""  # empty: the preset's
    version_label: str = ""  # empty: the preset's
    window: str = "5m"
    staleness_seconds: float = 60.0
    # Extra equality matchers put into every {selector}, e.g. {env = "prod"}; values are escaped.
    matchers: dict[str, str] = field(default_factory=dict)
    queries: QueryTemplates = field(default_factory=QueryTemplates)
    # Prometheus' own http_config names (see opsctl.adapters.http_config): auth, TLS, tenant headers.
    connect_timeout_seconds: float | None = None
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls_config: TlsConfig = field(default_factory=TlsConfig)
    http_headers: dict[str, str | HeaderValues] = field(default_factory=dict)

    def __post_init__(self) -> None:
        preset = get_preset(self.preset)
        # Frozen: the preset's values are filled in once, here, so every reader sees resolved settings.
        object.__setattr__(self, "model_label", self.model_label or preset.model_label)
        object.__setattr__(self, "version_label", self.version_label or preset.version_label)
        object.__setattr__(self, "queries", self.queries.filled_from(preset))
        if not re.match(r"^https?://[^\s/]+", self.url):
            raise ValueError(f"url must be an http:// or https:// URL, got {self.url!r}")
        check_http_fields(self.timeout_seconds, self.connect_timeout_seconds, self.basic_auth, self.authorization,
                          self.http_headers)
        for key in ("model_label", "version_label"):
            value = getattr(self, key)
            if not _LABEL_NAME.fullmatch(value) or value.startswith("__"):
                raise ValueError(f"{key} must be a Prometheus label name, got {value!r}")
        if self.model_label == self.version_label:
            raise ValueError("model_label and version_label must differ")
        if not _DURATION.fullmatch(self.window):
            raise ValueError(f"window must be a PromQL duration like '5m', got {self.window!r}")
        if not self.staleness_seconds >= 1:
            raise ValueError(f"staleness_seconds must be >= 1, got {self.staleness_seconds}")
        for name in self.matchers:
            if not _LABEL_NAME.fullmatch(name):
                raise ValueError(f"matchers: {name!r} is not a Prometheus label name")

    @property
    def http(self) -> HttpConfig:
        """The connection settings as the one value both the Prometheus and Alertmanager clients take."""
        return HttpConfig(timeout_seconds=self.timeout_seconds, connect_timeout_seconds=self.connect_timeout_seconds,
                          basic_auth=self.basic_auth, authorization=self.authorization, tls_config=self.tls_config,
                          http_headers=self.http_headers)

    @property
    def preset_table(self) -> Preset:
        return get_preset(self.preset)

    def not_provided(self) -> dict[str, str]:
        """SLA metrics without a template (the preset's server lacks them), with the reason for each."""
        preset = self.preset_table
        return {name: preset.not_provided(name) for name, template in self.queries.items() if template is None}

    @property
    def latency_buckets_query(self) -> str | None:
        """The preset's latency-bucket template (None when its server has no histogram in seconds)."""
        return self.preset_table.latency_buckets

    @property
    def staleness_window(self) -> str:
        if float(self.staleness_seconds).is_integer():
            return f"{int(self.staleness_seconds)}s"
        return f"{round(self.staleness_seconds * 1000)}ms"


def promql_string(value: str) -> str:
    """Quote ``value`` as a PromQL string literal: backslashes, quotes and control characters escaped."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def promql_selector(matchers: Mapping[str, str]) -> str:
    """``name="value",...`` with every value escaped (the text that replaces ``{selector}``)."""
    for name in matchers:
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a Prometheus label name")
    return ",".join(f"{name}={promql_string(value)}" for name, value in sorted(matchers.items()))


def render(template: str, *, window: str, model_label: str, version_label: str, selector: str) -> str:
    """Fill a query template's placeholders."""
    values = {"window": window, "model_label": model_label, "version_label": version_label,
              "selector": selector}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class PrometheusSource:
    """Fleet-wide SLA metrics from the Prometheus HTTP API (``/api/v1/query``).

    One :meth:`fetch_fleet` sends these six queries, whatever the fleet's size (building the source
    connects to nothing; ``fetch_fleet(now)`` then asks Prometheus):

    >>> source = PrometheusSource(PrometheusSettings(url="http://127.0.0.1:9090"))
    >>> queries = source.rendered_queries(model='fraud"detector')
    >>> sorted(queries)
    ['accuracy', 'availability', 'error_rate', 'latency_p95', 'latency_p99', 'request_rate']
    >>> print(queries["accuracy"])  # label values are escaped
    avg by (model, model_version) (model_accuracy{model="fraud\\"detector"})
    >>> source.close()

    Thread-safe for one caller at a time per cycle; ``queries_sent`` counts HTTP queries (benchmarks).
    """

    def __init__(self, settings: PrometheusSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self._own_client = client is None
        # A missing or unreadable secret, CA or certificate file is reported by every query (health shows
        # the version unknown with this reason) rather than failing the daemon's start.
        self._client_error: ConfigError | None = None
        if client is None:
            try:
                client = build_client(settings.http, "prometheus")
            except ConfigError:
                try:  # an unreadable secret file: every query says so until it is fixed
                    client = build_client(settings.http, "prometheus", check_secrets=False)
                except ConfigError as error:  # an unusable CA or client certificate
                    self._client_error = error
                    client = httpx.Client(timeout=settings.timeout_seconds)
        self._client = client
        self._lock = threading.Lock()
        self.queries_sent = 0

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def rendered_queries(self, *, model: str | None = None) -> dict[str, str]:
        """The PromQL sent for each SLA metric (request_rate includes the freshness branch)."""
        s = self.settings
        matchers = dict(s.matchers)
        if model is not None:
            matchers[s.model_label] = model
        common = {"model_label": s.model_label, "version_label": s.version_label,
                  "selector": promql_selector(matchers)}
        queries = {name: render(t, window=s.window, **common) for name, t in s.queries.items() if t is not None}
        request_rate = s.queries.request_rate or ""  # every preset has one; validated in __post_init__
        short = render(request_rate, window=s.staleness_window, **common)
        queries["request_rate"] = (
            f'label_replace({queries["request_rate"]}, "{FRESHNESS_LABEL}", "window", "", "")'
            f' or label_replace({short}, "{FRESHNESS_LABEL}", "fresh", "", "")'
        )
        return queries

    def query(self, promql: str, at: datetime | None = None) -> list[tuple[dict[str, str], float | None]]:
        """Run one instant query; return (labels, value) per series, value None for NaN."""
        data: dict[str, Any] = {"query": promql, "timeout": f"{round(self.settings.timeout_seconds * 1000)}ms"}
        if at is not None:
            data["time"] = f"{at.timestamp():.3f}"
        url = f"{self.settings.url.rstrip('/')}/api/v1/query"
        if self._client_error is not None:
            raise MetricsAuthError(f"cannot authenticate to Prometheus: {self._client_error}")
        with self._lock:
            self.queries_sent += 1
        try:
            response = self._client.post(url, data=data)
        except ConfigError as error:  # a secret file became unreadable since the client was built
            raise MetricsAuthError(f"cannot authenticate to Prometheus: {error}") from error
        except httpx.TimeoutException as error:
            raise PrometheusUnreachable(
                f"Prometheus at {self.settings.url} timed out after {self.settings.timeout_seconds:g}s"
            ) from error
        except httpx.TransportError as error:
            reason = describe_http_error(error, self.settings.url)
            if reason.startswith("TLS:"):
                raise MetricsAuthError(reason) from error
            raise PrometheusUnreachable(f"Prometheus at {self.settings.url} unreachable: {error}") from error
        refused = describe_status(response.status_code, self.settings.url)
        if refused is not None:
            raise MetricsAuthError(refused)
        if response.status_code >= 500:
            raise PrometheusUnreachable(
                f"Prometheus at {self.settings.url} answered HTTP {response.status_code}: "
                f"{_error_text(response)}"
            )
        try:
            body = response.json()
        except ValueError as error:
            raise MetricsSourceError(
                f"Prometheus at {self.settings.url} sent a non-JSON answer (HTTP {response.status_code})"
            ) from error
        if response.status_code != 200 or body.get("status") != "success":
            raise MetricsSourceError(
                f"Prometheus rejected the query ({body.get('errorType', response.status_code)}: "
                f"{body.get('error', '')}); check [prometheus.queries]: {promql}"
            )
        result = body.get("data", {})
        if result.get("resultType") != "vector":
            raise MetricsSourceError(
                f"query must return an instant vector, got {result.get('resultType')}: {promql}"
            )
        series = []
        for item in result.get("result", []):
            value = _parse_value(item.get("value", [None, "NaN"])[1])
            series.append((dict(item.get("metric", {})), value))
        return series

    def api_get(self, path: str, params: Mapping[str, str | list[str]] | None = None) -> Any:
        """GET one of Prometheus' read APIs (``/api/v1/labels``, ``/api/v1/targets``...); its ``data``.

        Same client, credentials and errors as :meth:`query` (``opsctl doctor`` uses it)."""
        if self._client_error is not None:
            raise MetricsAuthError(f"cannot authenticate to Prometheus: {self._client_error}")
        url = f"{self.settings.url.rstrip('/')}{path}"
        try:
            response = self._client.get(url, params=params)
        except ConfigError as error:
            raise MetricsAuthError(f"cannot authenticate to Prometheus: {error}") from error
        except httpx.TimeoutException as error:
            raise PrometheusUnreachable(f"Prometheus at {self.settings.url} timed out") from error
        except httpx.TransportError as error:
            reason = describe_http_error(error, self.settings.url)
            if reason.startswith("TLS:"):
                raise MetricsAuthError(reason) from error
            raise PrometheusUnreachable(f"Prometheus at {self.settings.url} unreachable: {error}") from error
        refused = describe_status(response.status_code, self.settings.url)
        if refused is not None:
            raise MetricsAuthError(refused)
        try:
            body = response.json()
        except ValueError as error:
            raise MetricsSourceError(f"Prometheus at {self.settings.url} sent a non-JSON answer to {path} "
                                     f"(HTTP {response.status_code})") from error
        if response.status_code != 200 or body.get("status") != "success":
            raise MetricsSourceError(f"Prometheus refused {path}: {body.get('error', response.status_code)}")
        return body.get("data")

    def fetch_fleet(self, now: datetime, *, model: str | None = None) -> FleetSample:
        """One health cycle: one query per SLA metric for the whole fleet (or one model)."""
        s = self.settings
        start = self.queries_sent
        values: dict[tuple[str, str], dict[str, float | None]] = {}
        fresh: set[tuple[str, str]] = set()
        for metric, promql in self.rendered_queries(model=model).items():
            for labels, value in self.query(promql, at=now):
                key_model, key_version = labels.get(s.model_label), labels.get(s.version_label)
                if key_model is None or key_version is None:
                    continue  # a series without the configured labels cannot be attributed
                key = (key_model, key_version)
                if metric == "request_rate" and labels.get(FRESHNESS_LABEL) == "fresh":
                    fresh.add(key)
                    values.setdefault(key, {})
                    continue
                values.setdefault(key, {})[metric] = value
        not_provided = s.not_provided()
        versions = {
            key: VersionSample(key[0], key[1], fresh=key in fresh, not_provided=not_provided, **metrics)
            for key, metrics in values.items()
        }
        return FleetSample(
            taken_at=now, versions=versions, staleness_seconds=s.staleness_seconds,
            queries=self.queries_sent - start,
        )

    def slow_counts(self, now: datetime, *, model: str, bound_seconds: float) -> dict[str, tuple[float, float]]:
        """Per version of ``model``: (requests, requests slower than ``bound_seconds``) over the window.

        Read from the latency histogram's buckets: "slow" is everything above the smallest bucket
        boundary at or above the bound (so a bound between boundaries counts conservatively fast).
        Versions whose histogram has no bucket at or above the bound are left out.
        """
        s = self.settings
        if s.latency_buckets_query is None:
            return {}
        promql = render(s.latency_buckets_query, window=s.window, model_label=s.model_label,
                        version_label=s.version_label,
                        selector=promql_selector({**dict(s.matchers), s.model_label: model}))
        buckets: dict[str, list[tuple[float, float]]] = {}
        for labels, value in self.query(promql, at=now):
            version, le = labels.get(s.version_label), labels.get("le")
            if version is None or le is None or value is None:
                continue
            try:
                upper = float(le)
            except ValueError:
                continue
            buckets.setdefault(version, []).append((upper, value))
        counts: dict[str, tuple[float, float]] = {}
        for version, pairs in buckets.items():
            pairs.sort()
            total = pairs[-1][1] if pairs[-1][0] == float("inf") else None
            fast = next((count for upper, count in pairs if upper >= bound_seconds), None)
            if total is None or fast is None:
                continue
            counts[version] = (total, max(0.0, total - fast))
        return counts

    def fetch_version(self, model: str, version: str, now: datetime) -> VersionSample:
        """One version's sample; raises NoDataError (never seen) or StaleDataError (stopped updating)."""
        sample = self.fetch_fleet(now, model=model).get(model, version)
        if sample is None:
            raise NoDataError(f"Prometheus has no series for {model} {version}")
        if not sample.fresh:
            raise StaleDataError(
                f"{model} {version}: no samples in the last {self.settings.staleness_seconds:g}s"
            )
        return sample


def _parse_value(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:200]
    except ValueError:
        return response.text[:200]
