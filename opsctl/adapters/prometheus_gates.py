"""The canary's gate inputs from Prometheus: one analysis window per evaluation.

:class:`PrometheusGateSource` is the daemon's :class:`~opsctl.services.canary.GateSource`: it reads the
canary's and production's series over the stage so far (counts since the stage started, with the
latency histogram's buckets split at the SLA's p95 bound) with the configured ``[prometheus.queries]``,
the custom gates' queries, and (through a :data:`LabelCounter`) the labels that arrived for each
version's predictions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from opsctl.adapters.canary_store import CanaryRecord
from opsctl.adapters.registry import Registry
from opsctl.core.gates import FULL_TRAFFIC_PERCENT, CustomReading, GateInputs, VersionWindow
from opsctl.errors import MetricsSourceError

# (model, version, since) -> (labelled, correct): predictions of that version made since ``since``
# whose delayed label has arrived, and how many of them were right.
LabelCounter = Callable[[str, str, datetime], tuple[int, int]]


class PrometheusGateSource:
    """Canary and production windows from Prometheus, with the configured ``[prometheus.queries]``.

    The window is the stage so far (see the module docstring); requests and errors are the
    templates' rates times the window, quantiles come from the latency templates; the SLA gate
    judges the canary's sample with :func:`~opsctl.core.sla.evaluate_sla`.
    """

    def __init__(self, settings_provider: Callable[[], Any], registry: Registry,
                 source_factory: Callable[[Any], Any] | None = None,
                 labels: LabelCounter | None = None) -> None:
        self._settings = settings_provider
        self.registry = registry
        self._factory = source_factory
        self._labels = labels

    def _with_labels(self, window: VersionWindow, model: str, version: str | None, since: datetime) -> VersionWindow:
        if self._labels is None or version is None:
            return window
        labelled, correct = self._labels(model, version, since)
        return replace(window, labelled=labelled, correct=correct)

    def window_seconds(self, record: CanaryRecord, now: datetime) -> float:
        """The stage's age: its evidence accumulates from its start (at least ``staleness_seconds``).

        Not capped by the SLA's sliding ``[prometheus] window``: a low-traffic service must be able
        to gather the requests a decision needs.
        """
        prom = self._settings().prometheus
        started = record.state.stage_started_at or record.state.started_at or now
        elapsed = (now - started).total_seconds()
        return max(float(prom.staleness_seconds), elapsed)

    def inputs(self, record: CanaryRecord, now: datetime) -> GateInputs:
        from opsctl.adapters.prometheus import PrometheusSource, promql_string
        from opsctl.core.sla import evaluate_sla

        settings = self._settings()
        prom = settings.prometheus
        state = record.state
        seconds = self.window_seconds(record, now)
        window = f"{max(1, math.ceil(seconds))}s"
        windowed = replace(prom, window=window)
        source = self._factory(windowed) if self._factory else PrometheusSource(windowed)
        try:
            fleet = source.fetch_fleet(now, model=state.model)
            canary_sample = fleet.get(state.model, state.canary_version)
            production_sample = fleet.get(state.model, state.production_version) if state.production_version else None
            bound = settings.sla.for_model(state.model).latency_p95_ms / 1000.0
            slow_reader = getattr(source, "slow_counts", None)
            try:
                slow = slow_reader(now, model=state.model, bound_seconds=bound) if slow_reader else {}
            except MetricsSourceError:
                slow = {}  # the latency gate then says it has no bucket counts (inconclusive)
            custom: list[CustomReading] = []
            for gate in record.policy.custom_gates:
                query = gate.query
                for key, value in (("model", state.model), ("canary_version", state.canary_version),
                                   ("production_version", state.production_version or "")):
                    query = query.replace("{" + key + "}", promql_string(value)[1:-1])
                query = query.replace("{window}", window)
                try:
                    series = source.query(query, at=now)
                    value = series[0][1] if series else None
                    custom.append(CustomReading(gate.name, value=value))
                except MetricsSourceError as error:
                    custom.append(CustomReading(gate.name, error=str(error)))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        problems = []
        full = state.weight >= FULL_TRAFFIC_PERCENT
        for sample, who in ((canary_sample, "canary"), (production_sample, "production")):
            if who == "production" and (state.production_version is None or full):
                continue  # at 100 % production serves nothing: no fresh series is expected
            if sample is None and (who == "production" or state.weight > 0):
                # The version serves traffic, so no series at all means its exporter or scrape is gone.
                name = state.canary_version if who == "canary" else state.production_version
                problems.append(f"{who} {name}: Prometheus has no series for it in the last {window}")
            elif sample is not None and not sample.fresh:
                problems.append(f"{who} {sample.version} stale: no samples in the last "
                                f"{prom.staleness_seconds:g}s (exporter down or not scraped)")
        thresholds = settings.sla
        version = self.registry.get_version(state.model, state.canary_version)
        baseline = version.metrics.get("accuracy") if version is not None else None
        health = evaluate_sla(canary_sample, thresholds, baseline, now, model=state.model,
                              version=state.canary_version)
        from opsctl.core.gates import SlaInput

        since = state.stage_started_at or state.started_at or now
        return GateInputs(
            canary=self._with_labels(_window(canary_sample, seconds, slow.get(state.canary_version)), state.model,
                                     state.canary_version, since),
            production=self._with_labels(
                _window(production_sample, seconds, slow.get(state.production_version or "")), state.model,
                state.production_version, since),
            canary_weight=state.weight,
            stage_seconds=seconds,
            latency_bound_seconds=bound,
            sla=SlaInput(health.status.value, (health.reason,) if health.reason else (),
                         error_rate_percent=thresholds.for_model(state.model).error_rate_percent,
                         latency_bound_seconds=bound),
            custom=tuple(custom),
            sla_error_rate_percent=thresholds.for_model(state.model).error_rate_percent,
            metrics_error="; ".join(problems) or None,
        )


def _window(sample: Any, seconds: float, slow: tuple[float, float] | None = None) -> VersionWindow:
    """Counts since the stage started: rate over the stage's age times its length (= increase())."""
    if sample is None or sample.request_rate is None:
        return VersionWindow()
    requests = round(sample.request_rate * seconds)
    errors = None if sample.error_rate is None else min(requests, round(sample.error_rate * requests))
    slow_requests = None if slow is None else min(requests, round(slow[1]))
    return VersionWindow(requests=requests, errors=errors, p95_seconds=sample.latency_p95,
                         p99_seconds=sample.latency_p99, slow=slow_requests)
