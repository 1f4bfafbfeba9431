"""SLA evaluation: metric samples + thresholds -> ``healthy | degraded | unknown`` per model version.

Pure: no I/O, no clock reads. The Prometheus adapter builds a :class:`FleetSample`; this module
judges it. The rule that matters most: missing, NaN or stale data is ``unknown``, never ``healthy``.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> sample = VersionSample("fraud", "v3", request_rate=12.0, error_rate=0.002, latency_p95=0.21,
...                        latency_p99=0.4, availability=1.0, accuracy=0.93, fresh=True)
>>> evaluate_sla(sample, SlaThresholds(), baseline_accuracy=0.95, now=now).status
<HealthStatus.HEALTHY: 'healthy'>
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from opsctl.clock import utc_iso
from opsctl.errors import MetricsSourceError

SLA_METRICS = ("request_rate", "error_rate", "latency_p95", "latency_p99", "availability", "accuracy")


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # only when the operator opted out (require_accuracy = false)


# --------------------------------------------------------------------------- settings


def _check_positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _check_percent(name: str, value: float | None) -> None:
    if value is not None and not 0 < value <= 100:
        raise ValueError(f"{name} must be a percentage in (0, 100], got {value}")


@dataclass(frozen=True)
class SlaOverride:
    """Per-model thresholds in ``[sla.models.NAME]``; unset keys inherit from ``[sla]``."""

    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    error_rate_percent: float | None = None
    availability_percent: float | None = None
    accuracy_min_ratio: float | None = None
    min_request_rate: float | None = None

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class SlaThresholds:
    """The ``[sla]`` section: the chapter's SLA table, in the units the key names say.

    ``accuracy_min_ratio`` is a fraction of the version's baseline accuracy (0.95 = "at least 95 % of
    baseline"). Below ``min_request_rate`` (requests per second) there is too little traffic to judge
    latency and error rate, so those checks are ``unknown``. With ``require_accuracy = false`` a missing
    accuracy gauge or baseline skips the accuracy check instead of making the version ``unknown``.
    """

    latency_p95_ms: float = 500.0
    latency_p99_ms: float = 1000.0
    error_rate_percent: float = 1.0
    availability_percent: float = 99.9
    accuracy_min_ratio: float = 0.95
    min_request_rate: float = 0.1
    require_accuracy: bool = True
    models: dict[str, SlaOverride] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    def for_model(self, model: str) -> SlaThresholds:
        """Thresholds for one model, with its ``[sla.models.NAME]`` overrides applied."""
        override = self.models.get(model)
        if override is None:
            return self if not self.models else _replace(self, {"models": {}})
        changes: dict[str, Any] = {"models": {}}
        for f in fields(SlaOverride):
            value = getattr(override, f.name)
            if value is not None:
                changes[f.name] = value
        return _replace(self, changes)


def _replace(thresholds: SlaThresholds, changes: Mapping[str, Any]) -> SlaThresholds:
    values = {f.name: getattr(thresholds, f.name) for f in fields(SlaThresholds)}
    values.update(changes)
    return SlaThresholds(**values)


def _validate(obj: SlaThresholds | SlaOverride) -> None:
    _check_positive("latency_p95_ms", obj.latency_p95_ms)
    _check_positive("latency_p99_ms", obj.latency_p99_ms)
    _check_percent("error_rate_percent", obj.error_rate_percent)
    _check_percent("availability_percent", obj.availability_percent)
    if obj.accuracy_min_ratio is not None and not 0 < obj.accuracy_min_ratio <= 1:
        raise ValueError(f"accuracy_min_ratio must be in (0, 1], got {obj.accuracy_min_ratio}")
    _check_positive("min_request_rate", obj.min_request_rate, allow_zero=True)
    if (
        obj.latency_p95_ms is not None
        and obj.latency_p99_ms is not None
        and obj.latency_p99_ms < obj.latency_p95_ms
    ):
        raise ValueError(
            f"latency_p99_ms ({obj.latency_p99_ms}) must not be below latency_p95_ms ({obj.latency_p95_ms})"
        )


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class VersionSample:
    """What Prometheus said about one model version, in base units (seconds, ratios 0-1, req/s).

    ``None`` means absent or NaN. ``fresh`` is False when the version's series stopped updating
    within the source's staleness window (see ``opsctl.adapters.prometheus``), even though
    ``rate(...[5m])`` may still answer with old samples. ``not_provided`` names the metrics the
    metrics source has no query for (its server does not export them), with the reason to show.
    """

    model: str
    version: str
    request_rate: float | None = None
    error_rate: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    availability: float | None = None
    accuracy: float | None = None
    fresh: bool = False
    not_provided: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetSample:
    """One health cycle's answer for the whole fleet, keyed by (model, version)."""

    taken_at: datetime
    versions: Mapping[tuple[str, str], VersionSample]
    staleness_seconds: float
    queries: int = 0

    def get(self, model: str, version: str) -> VersionSample | None:
        return self.versions.get((model, version))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Check:
    """One SLA line: value and threshold in ``unit`` (ms, %, ratio, req/s)."""

    name: str
    value: float | None
    threshold: float | None
    unit: str
    verdict: Verdict
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _json_number(self.value),
            "threshold": _json_number(self.threshold),
            "unit": self.unit,
            "verdict": self.verdict.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class HealthResult:
    model: str
    version: str
    status: HealthStatus
    checks: tuple[Check, ...]
    sample_age_seconds: float | None
    evaluated_at: datetime

    @property
    def reason(self) -> str:
        """The first failing (else unknown) check's reason; '' when healthy."""
        for wanted in (Verdict.FAIL, Verdict.UNKNOWN):
            for check in self.checks:
                if check.verdict is wanted:
                    return f"{check.name}: {check.reason}"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status.value,
            "reason": self.reason,
            "checks": [c.to_json() for c in self.checks],
            "sample_age_seconds": _json_number(self.sample_age_seconds),
            "evaluated_at": utc_iso(self.evaluated_at),
        }


def _json_number(value: float | None) -> float | None:
    # JSON has no NaN/Inf; an infinite latency (above the highest bucket) is explained in the reason.
    if value is None or not math.isfinite(value):
        return None
    return value


def _present(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return value


# --------------------------------------------------------------------------- evaluation


def evaluate_sla(
    sample: VersionSample | None,
    thresholds: SlaThresholds,
    baseline_accuracy: float | None,
    now: datetime,
    *,
    model: str | None = None,
    version: str | None = None,
    sample_taken_at: datetime | None = None,
) -> HealthResult:
    """Judge one model version. ``sample=None`` means Prometheus has never seen it (``unknown: no data``)."""
    if sample is None:
        if model is None or version is None:
            raise ValueError("evaluate_sla(None, ...) needs model= and version=")
        return unknown_result(model, version, "no data: Prometheus has no series for this version", now)
    limits = thresholds.for_model(sample.model)
    age = None if sample_taken_at is None else max(0.0, (now - sample_taken_at).total_seconds())
    if not sample.fresh:
        return unknown_result(
            sample.model,
            sample.version,
            "stale: no new samples within the staleness window (exporter down or not scraped)",
            now,
            sample_age_seconds=age,
        )
    checks = _checks(sample, limits, baseline_accuracy)
    return HealthResult(sample.model, sample.version, _overall(checks), checks, age, now)


def unknown_result(
    model: str, version: str, reason: str, now: datetime, *, sample_age_seconds: float | None = None
) -> HealthResult:
    """A result whose every check is ``unknown`` for one shared reason (no data, stale, source down)."""
    checks = tuple(
        Check(name, None, None, _UNITS[name], Verdict.UNKNOWN, reason) for name in _CHECK_ORDER
    )
    return HealthResult(model, version, HealthStatus.UNKNOWN, checks, sample_age_seconds, now)


def evaluate_fleet(
    fleet: FleetSample | MetricsSourceError,
    deployed: Iterable[tuple[str, str]],
    thresholds: SlaThresholds,
    baselines: Mapping[tuple[str, str], float],
    now: datetime,
) -> tuple[HealthResult, ...]:
    """Judge every deployed (model, version). The deployed set comes from the registry, not from Prometheus:
    a deployed version Prometheus never saw is ``unknown: no data``; when the source failed (pass the
    error), every version is ``unknown`` with that error as the reason."""
    results = []
    for model, version in deployed:
        if isinstance(fleet, MetricsSourceError):
            reason = f"{type(fleet).__name__}: {fleet}"
            results.append(unknown_result(model, version, reason, now))
            continue
        results.append(
            evaluate_sla(
                fleet.get(model, version),
                thresholds,
                baselines.get((model, version)),
                now,
                model=model,
                version=version,
                sample_taken_at=fleet.taken_at,
            )
        )
    return tuple(results)


_CHECK_ORDER = ("request_rate", "latency_p95", "latency_p99", "error_rate", "availability", "accuracy")
_UNITS = {
    "request_rate": "req/s",
    "latency_p95": "ms",
    "latency_p99": "ms",
    "error_rate": "%",
    "availability": "%",
    "accuracy": "ratio",
}


def _overall(checks: Iterable[Check]) -> HealthStatus:
    verdicts = {c.verdict for c in checks}
    if Verdict.FAIL in verdicts:
        return HealthStatus.DEGRADED
    if Verdict.UNKNOWN in verdicts:
        return HealthStatus.UNKNOWN
    return HealthStatus.HEALTHY


def _checks(sample: VersionSample, limits: SlaThresholds, baseline: float | None) -> tuple[Check, ...]:
    def no_data(name: str) -> str:
        return sample.not_provided.get(name, "no data")

    rate = _present(sample.request_rate)
    checks: list[Check] = []
    enough_traffic = False
    if rate is None:
        checks.append(_unknown("request_rate", limits.min_request_rate, no_data("request_rate")))
        traffic_reason = "no request-rate data"
    elif rate < limits.min_request_rate:
        checks.append(
            Check(
                "request_rate",
                rate,
                limits.min_request_rate,
                "req/s",
                Verdict.UNKNOWN,
                f"{rate:.3g} req/s is below min_request_rate {limits.min_request_rate:g}: "
                "not enough traffic to judge",
            )
        )
        traffic_reason = f"not enough traffic ({rate:.3g} req/s < {limits.min_request_rate:g})"
    else:
        enough_traffic = True
        traffic_reason = ""
        checks.append(
            Check("request_rate", rate, limits.min_request_rate, "req/s", Verdict.PASS, f"{rate:.3g} req/s")
        )

    for name, value_s, limit_ms in (
        ("latency_p95", sample.latency_p95, limits.latency_p95_ms),
        ("latency_p99", sample.latency_p99, limits.latency_p99_ms),
    ):
        value = _present(value_s)
        if name in sample.not_provided:
            checks.append(_unknown(name, limit_ms, no_data(name)))
        elif not enough_traffic:
            checks.append(_unknown(name, limit_ms, traffic_reason))
        elif value is None:
            checks.append(_unknown(name, limit_ms, "no data"))
        else:
            checks.append(_upper_bound(name, value * 1000.0, limit_ms, "ms"))

    error = _present(sample.error_rate)
    if "error_rate" in sample.not_provided:
        checks.append(_unknown("error_rate", limits.error_rate_percent, no_data("error_rate")))
    elif not enough_traffic:
        checks.append(_unknown("error_rate", limits.error_rate_percent, traffic_reason))
    elif error is None:
        checks.append(_unknown("error_rate", limits.error_rate_percent, "no data"))
    else:
        checks.append(_upper_bound("error_rate", error * 100.0, limits.error_rate_percent, "%"))

    availability = _present(sample.availability)
    if availability is None:
        checks.append(_unknown("availability", limits.availability_percent, no_data("availability")))
    else:
        checks.append(_lower_bound("availability", availability * 100.0, limits.availability_percent, "%"))

    checks.append(_accuracy_check(_present(sample.accuracy), baseline, limits, sample.not_provided.get("accuracy")))
    return tuple(checks)


def _accuracy_check(accuracy: float | None, baseline: float | None, limits: SlaThresholds,
                    not_provided: str | None = None) -> Check:
    baseline = _present(baseline)
    if not_provided is not None or baseline is None or accuracy is None:
        if not_provided is not None:
            missing = not_provided
        else:
            missing = "no baseline accuracy recorded" if baseline is None else "no accuracy data"
        if not limits.require_accuracy:
            return Check("accuracy", accuracy, None, "ratio", Verdict.SKIPPED, f"{missing} (not required)")
        return _unknown("accuracy", None, missing)
    floor = baseline * limits.accuracy_min_ratio
    check = _lower_bound("accuracy", accuracy, floor, "ratio")
    return Check(
        check.name,
        check.value,
        check.threshold,
        check.unit,
        check.verdict,
        f"{check.reason} ({limits.accuracy_min_ratio:g} x baseline {baseline:.4g})",
    )


def _unknown(name: str, threshold: float | None, reason: str) -> Check:
    return Check(name, None, threshold, _UNITS[name], Verdict.UNKNOWN, reason)


def _upper_bound(name: str, value: float, limit: float, unit: str) -> Check:
    if value > limit:
        shown = "above the highest histogram bucket" if math.isinf(value) else f"{value:.4g} {unit}"
        return Check(name, value, limit, unit, Verdict.FAIL, f"{shown} > {limit:g} {unit}")
    return Check(name, value, limit, unit, Verdict.PASS, f"{value:.4g} {unit} <= {limit:g} {unit}")


def _lower_bound(name: str, value: float, limit: float, unit: str) -> Check:
    if value < limit:
        return Check(name, value, limit, unit, Verdict.FAIL, f"{value:.4g} {unit} < {limit:.4g} {unit}")
    return Check(name, value, limit, unit, Verdict.PASS, f"{value:.4g} {unit} >= {limit:.4g} {unit}")
