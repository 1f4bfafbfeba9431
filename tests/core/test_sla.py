"""SLA evaluation: thresholds, units, unknown-never-healthy, fleet helper, settings validation."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsctl.core.sla import (
    FleetSample,
    HealthStatus,
    SlaOverride,
    SlaThresholds,
    Verdict,
    VersionSample,
    evaluate_fleet,
    evaluate_sla,
)
from opsctl.errors import ConfigError, PrometheusUnreachable
from opsctl.settings_loader import load_dataclass

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def good(**changes: object) -> VersionSample:
    values: dict[str, object] = dict(
        model="fraud",
        version="v3",
        request_rate=20.0,
        error_rate=0.001,
        latency_p95=0.2,
        latency_p99=0.6,
        availability=1.0,
        accuracy=0.94,
        fresh=True,
    )
    values.update(changes)
    return VersionSample(**values)  # type: ignore[arg-type]


def verdicts(result) -> dict[str, Verdict]:
    return {c.name: c.verdict for c in result.checks}


def test_all_within_sla_is_healthy_with_values_in_threshold_units() -> None:
    result = evaluate_sla(good(), SlaThresholds(), baseline_accuracy=0.95, now=NOW)
    assert result.status is HealthStatus.HEALTHY
    checks = {c.name: c for c in result.checks}
    assert checks["latency_p95"].value == pytest.approx(200.0)
    assert checks["latency_p95"].unit == "ms"
    assert checks["latency_p95"].threshold == 500.0
    assert checks["error_rate"].value == pytest.approx(0.1)
    assert checks["error_rate"].unit == "%"
    assert checks["availability"].value == pytest.approx(100.0)
    assert checks["accuracy"].threshold == pytest.approx(0.95 * 0.95)
    assert result.reason == ""


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"latency_p95": 0.501}, "latency_p95"),
        ({"latency_p99": 1.2}, "latency_p99"),
        ({"error_rate": 0.011}, "error_rate"),
        ({"availability": 0.998}, "availability"),
        ({"accuracy": 0.90}, "accuracy"),  # 0.90 < 0.95 * 0.95 = 0.9025
        ({"latency_p99": math.inf}, "latency_p99"),  # above the +Inf bucket
    ],
)
def test_each_violation_degrades_and_names_the_check(change: dict, failing: str) -> None:
    result = evaluate_sla(good(**change), SlaThresholds(), baseline_accuracy=0.95, now=NOW)
    assert result.status is HealthStatus.DEGRADED
    assert [c.name for c in result.checks if c.verdict is Verdict.FAIL] == [failing]
    assert result.reason.startswith(failing)
    json.dumps(result.to_json(), allow_nan=False)  # inf is never emitted as JSON


def test_boundary_values_pass() -> None:
    sample = good(latency_p95=0.5, latency_p99=1.0, error_rate=0.01, availability=0.999, accuracy=0.9025)
    result = evaluate_sla(sample, SlaThresholds(), baseline_accuracy=0.95, now=NOW)
    assert result.status is HealthStatus.HEALTHY, result.reason


@pytest.mark.parametrize("metric", ["request_rate", "error_rate", "latency_p95", "latency_p99", "availability",
                                    "accuracy"])
@pytest.mark.parametrize("missing", [None, math.nan])
def test_missing_or_nan_metric_is_unknown(metric: str, missing: float | None) -> None:
    result = evaluate_sla(good(**{metric: missing}), SlaThresholds(), baseline_accuracy=0.95, now=NOW)
    assert result.status is HealthStatus.UNKNOWN
    assert verdicts(result)[metric] is Verdict.UNKNOWN


def test_violation_wins_over_unknown() -> None:
    result = evaluate_sla(good(accuracy=None, latency_p95=2.0), SlaThresholds(), 0.95, NOW)
    assert result.status is HealthStatus.DEGRADED


def test_stale_sample_is_unknown_even_with_good_values() -> None:
    result = evaluate_sla(good(fresh=False), SlaThresholds(), 0.95, NOW)
    assert result.status is HealthStatus.UNKNOWN
    assert all(c.verdict is Verdict.UNKNOWN for c in result.checks)
    assert "stale" in result.reason


def test_low_traffic_makes_latency_and_errors_unknown_but_still_judges_accuracy() -> None:
    quiet = good(request_rate=0.01, latency_p95=5.0, error_rate=0.5)
    result = evaluate_sla(quiet, SlaThresholds(min_request_rate=0.1), 0.95, NOW)
    v = verdicts(result)
    assert v["latency_p95"] is v["latency_p99"] is v["error_rate"] is Verdict.UNKNOWN
    assert result.status is HealthStatus.UNKNOWN
    assert "not enough traffic" in result.reason
    dropped = evaluate_sla(good(request_rate=0.01, accuracy=0.5), SlaThresholds(), 0.95, NOW)
    assert dropped.status is HealthStatus.DEGRADED


def test_accuracy_without_baseline_is_unknown_unless_operator_opts_out() -> None:
    assert evaluate_sla(good(), SlaThresholds(), None, NOW).status is HealthStatus.UNKNOWN
    relaxed = SlaThresholds(require_accuracy=False)
    result = evaluate_sla(good(accuracy=None), relaxed, None, NOW)
    assert result.status is HealthStatus.HEALTHY
    assert verdicts(result)["accuracy"] is Verdict.SKIPPED


def test_per_model_override_applies_only_to_that_model() -> None:
    thresholds = SlaThresholds(models={"fraud": SlaOverride(latency_p95_ms=100)})
    assert evaluate_sla(good(), thresholds, 0.95, NOW).status is HealthStatus.DEGRADED
    assert evaluate_sla(good(model="churn"), thresholds, 0.95, NOW).status is HealthStatus.HEALTHY


def test_fleet_helper_uses_the_deployed_set_and_marks_never_seen_versions() -> None:
    fleet = FleetSample(
        taken_at=NOW - timedelta(seconds=3),
        versions={("fraud", "v3"): good(), ("fraud", "v2"): good(version="v2", latency_p95=3.0)},
        staleness_seconds=60,
    )
    results = evaluate_fleet(fleet, [("fraud", "v3"), ("churn", "v1")], SlaThresholds(),
                             {("fraud", "v3"): 0.95}, NOW)
    by_key = {(r.model, r.version): r for r in results}
    assert set(by_key) == {("fraud", "v3"), ("churn", "v1")}  # v2 is not deployed: not reported
    assert by_key["fraud", "v3"].status is HealthStatus.HEALTHY
    assert by_key["fraud", "v3"].sample_age_seconds == pytest.approx(3.0)
    assert by_key["churn", "v1"].status is HealthStatus.UNKNOWN
    assert "no data" in by_key["churn", "v1"].reason


def test_prometheus_down_makes_every_version_unknown_with_that_reason() -> None:
    error = PrometheusUnreachable("cannot connect to http://127.0.0.1:9")
    results = evaluate_fleet(error, [("a", "1"), ("b", "2")], SlaThresholds(), {}, NOW)
    assert [r.status for r in results] == [HealthStatus.UNKNOWN] * 2
    assert all("PrometheusUnreachable" in r.reason and "127.0.0.1:9" in r.reason for r in results)


def test_to_json_shape() -> None:
    doc = evaluate_sla(good(), SlaThresholds(), 0.95, NOW).to_json()
    assert doc["model"] == "fraud" and doc["version"] == "v3" and doc["status"] == "healthy"
    assert {"name", "value", "threshold", "verdict", "reason"} <= set(doc["checks"][0])
    json.dumps(doc, allow_nan=False)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"latency_p95_ms": -1}, "sla"),
        ({"error_rate_percent": 150}, "sla"),
        ({"accuracy_min_ratio": 1.5}, "sla"),
        ({"latency_p95_ms": 800, "latency_p99_ms": 600}, "sla"),
        ({"models": {"fraud": {"latency_p95_ms": 0}}}, "sla.models.fraud"),
    ],
)
def test_impossible_thresholds_are_rejected_naming_the_key(table: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataclass(SlaThresholds, table, key="sla", path="opsctl.toml")
    assert f"[{key}]" in str(caught.value)


def test_thresholds_load_from_toml_tables() -> None:
    loaded = load_dataclass(
        SlaThresholds, {"latency_p95_ms": 300, "models": {"fraud": {"error_rate_percent": 0.5}}},
        key="sla", path=None,
    )
    assert loaded.latency_p95_ms == 300.0
    assert loaded.for_model("fraud").error_rate_percent == 0.5
    assert loaded.for_model("fraud").latency_p95_ms == 300.0


# --------------------------------------------------------------------------- properties

maybe_value = st.one_of(st.none(), st.just(math.nan), st.floats(min_value=0, max_value=1e4))


@st.composite
def samples(draw: st.DrawFn) -> VersionSample:
    return VersionSample(
        model="m",
        version="v",
        request_rate=draw(maybe_value),
        error_rate=draw(st.one_of(st.none(), st.just(math.nan), st.floats(0, 1))),
        latency_p95=draw(maybe_value),
        latency_p99=draw(maybe_value),
        availability=draw(st.one_of(st.none(), st.just(math.nan), st.floats(0, 1))),
        accuracy=draw(st.one_of(st.none(), st.just(math.nan), st.floats(0, 1))),
        fresh=draw(st.booleans()),
    )


@settings(derandomize=True)  # the same examples on every run, in CI too
@given(samples(), st.one_of(st.none(), st.just(math.nan), st.floats(0.01, 1)))
def test_property_no_path_from_missing_data_to_healthy(sample: VersionSample, baseline: float | None) -> None:
    result = evaluate_sla(sample, SlaThresholds(), baseline, NOW)
    values = [getattr(sample, m) for m in ("request_rate", "error_rate", "latency_p95", "latency_p99",
                                            "availability", "accuracy")] + [baseline]
    missing = any(v is None or math.isnan(v) for v in values) or not sample.fresh
    if missing:
        assert result.status is not HealthStatus.HEALTHY
    if result.status is HealthStatus.HEALTHY:
        assert all(c.verdict is Verdict.PASS for c in result.checks)
    # and a violation is never hidden by missing data elsewhere
    if any(c.verdict is Verdict.FAIL for c in result.checks):
        assert result.status is HealthStatus.DEGRADED


# --------------------------------------------------------------------------- exact boundaries and defaults


def test_documented_defaults_are_the_chapter_sla_table() -> None:
    defaults = SlaThresholds()
    assert (defaults.latency_p95_ms, defaults.latency_p99_ms) == (500.0, 1000.0)
    assert (defaults.error_rate_percent, defaults.availability_percent) == (1.0, 99.9)
    assert (defaults.accuracy_min_ratio, defaults.min_request_rate) == (0.95, 0.1)
    assert defaults.require_accuracy is True and defaults.models == {}


def test_request_rate_exactly_at_min_request_rate_is_enough_traffic_to_judge() -> None:
    at_floor = evaluate_sla(good(request_rate=0.1), SlaThresholds(min_request_rate=0.1), 0.95, NOW)
    assert at_floor.status is HealthStatus.HEALTHY, at_floor.reason
    assert verdicts(at_floor)["request_rate"] is Verdict.PASS
    just_below = evaluate_sla(good(request_rate=0.0999), SlaThresholds(min_request_rate=0.1), 0.95, NOW)
    assert verdicts(just_below)["request_rate"] is Verdict.UNKNOWN
    assert just_below.reason == (
        "request_rate: 0.0999 req/s is below min_request_rate 0.1: not enough traffic to judge"
    )
    assert {c.name: c.reason for c in just_below.checks}["latency_p95"] == (
        "not enough traffic (0.0999 req/s < 0.1)"
    )


def test_min_request_rate_zero_judges_any_traffic() -> None:
    # 0 is allowed (the operator wants every version judged); a negative floor is not.
    thresholds = SlaThresholds(min_request_rate=0)
    result = evaluate_sla(good(request_rate=0.0), thresholds, 0.95, NOW)
    assert result.status is HealthStatus.HEALTHY, result.reason
    with pytest.raises(ValueError, match=r"min_request_rate must be >= 0, got -0.5"):
        SlaThresholds(min_request_rate=-0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency_p95_ms": 0}, "latency_p95_ms must be > 0, got 0"),
        ({"latency_p95_ms": math.nan}, "latency_p95_ms must be > 0, got nan"),
        ({"error_rate_percent": 0}, r"error_rate_percent must be a percentage in \(0, 100\], got 0"),
        ({"error_rate_percent": 100.5}, r"error_rate_percent must be a percentage in \(0, 100\], got 100.5"),
        ({"availability_percent": 0}, r"availability_percent must be a percentage in \(0, 100\], got 0"),
        ({"accuracy_min_ratio": 0}, r"accuracy_min_ratio must be in \(0, 1\], got 0"),
        ({"accuracy_min_ratio": 1.01}, r"accuracy_min_ratio must be in \(0, 1\], got 1.01"),
        ({"latency_p95_ms": 600, "latency_p99_ms": 599.9},
         r"latency_p99_ms \(599.9\) must not be below latency_p95_ms \(600\)"),
    ],
)
def test_threshold_validation_rejects_just_outside_the_range(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        SlaThresholds(**kwargs)


def test_threshold_validation_accepts_the_closed_ends_of_each_range() -> None:
    edge = SlaThresholds(
        latency_p95_ms=700, latency_p99_ms=700, error_rate_percent=100, availability_percent=100,
        accuracy_min_ratio=1, min_request_rate=0,
    )
    assert (edge.latency_p99_ms, edge.error_rate_percent, edge.accuracy_min_ratio) == (700, 100, 1)
    assert SlaOverride(latency_p95_ms=700, latency_p99_ms=700).latency_p99_ms == 700


def test_exactly_at_each_threshold_passes_and_the_reason_shows_the_comparison() -> None:
    sample = good(latency_p95=0.25, latency_p99=0.5, error_rate=0.01, availability=0.999, accuracy=0.9)
    thresholds = SlaThresholds(latency_p95_ms=250, latency_p99_ms=500, accuracy_min_ratio=1.0)
    result = evaluate_sla(sample, thresholds, baseline_accuracy=0.9, now=NOW)
    reasons = {c.name: (c.verdict, c.reason) for c in result.checks}
    assert reasons == {
        "request_rate": (Verdict.PASS, "20 req/s"),
        "latency_p95": (Verdict.PASS, "250 ms <= 250 ms"),
        "latency_p99": (Verdict.PASS, "500 ms <= 500 ms"),
        "error_rate": (Verdict.PASS, "1 % <= 1 %"),
        "availability": (Verdict.PASS, "99.9 % >= 99.9 %"),
        "accuracy": (Verdict.PASS, "0.9 ratio >= 0.9 ratio (1 x baseline 0.9)"),
    }


def test_above_the_highest_bucket_is_named_as_such_and_finite_violations_show_the_value() -> None:
    result = evaluate_sla(good(latency_p99=math.inf, latency_p95=0.6), SlaThresholds(), 0.95, NOW)
    reasons = {c.name: c.reason for c in result.checks}
    assert reasons["latency_p99"] == "above the highest histogram bucket > 1000 ms"
    assert reasons["latency_p95"] == "600 ms > 500 ms"


def test_missing_accuracy_names_what_is_missing() -> None:
    no_baseline = evaluate_sla(good(), SlaThresholds(), None, NOW)
    assert no_baseline.reason == "accuracy: no baseline accuracy recorded"
    no_gauge = evaluate_sla(good(accuracy=None), SlaThresholds(), 0.95, NOW)
    assert no_gauge.reason == "accuracy: no accuracy data"
    relaxed = evaluate_sla(good(accuracy=None), SlaThresholds(require_accuracy=False), 0.95, NOW)
    assert {c.name: c.reason for c in relaxed.checks}["accuracy"] == "no accuracy data (not required)"


def test_a_sample_is_stale_unless_the_source_says_it_is_fresh() -> None:
    # VersionSample's default must never let an unchecked sample look healthy.
    unchecked = VersionSample("fraud", "v3", request_rate=20.0, error_rate=0.001, latency_p95=0.2,
                              latency_p99=0.6, availability=1.0, accuracy=0.94)
    assert unchecked.fresh is False
    assert evaluate_sla(unchecked, SlaThresholds(), 0.95, NOW).status is HealthStatus.UNKNOWN


def test_for_model_carries_only_that_models_overrides() -> None:
    thresholds = SlaThresholds(latency_p95_ms=300, models={"fraud": SlaOverride(error_rate_percent=0.5)})
    other = thresholds.for_model("churn")
    assert other == SlaThresholds(latency_p95_ms=300)
    fraud = thresholds.for_model("fraud")
    assert fraud == SlaThresholds(latency_p95_ms=300, error_rate_percent=0.5)
    assert SlaThresholds().for_model("churn") == SlaThresholds()


def test_evaluating_a_never_seen_version_needs_both_its_model_and_version() -> None:
    for kwargs in ({"model": "fraud"}, {"version": "v3"}, {}):
        with pytest.raises(ValueError, match="needs model= and version="):
            evaluate_sla(None, SlaThresholds(), None, NOW, **kwargs)
    result = evaluate_sla(None, SlaThresholds(), None, NOW, model="fraud", version="v3")
    assert (result.model, result.version, result.status) == ("fraud", "v3", HealthStatus.UNKNOWN)


def test_sample_age_is_exact_and_never_negative() -> None:
    same_instant = evaluate_sla(good(), SlaThresholds(), 0.95, NOW, sample_taken_at=NOW)
    assert same_instant.sample_age_seconds == 0.0
    from_the_future = evaluate_sla(good(), SlaThresholds(), 0.95, NOW, sample_taken_at=NOW + timedelta(seconds=2))
    assert from_the_future.sample_age_seconds == 0.0  # clock skew between hosts
    old = evaluate_sla(good(), SlaThresholds(), 0.95, NOW, sample_taken_at=NOW - timedelta(seconds=0.5))
    assert old.sample_age_seconds == 0.5
    assert evaluate_sla(good(), SlaThresholds(), 0.95, NOW).sample_age_seconds is None


def test_fleet_sample_counts_no_queries_unless_told() -> None:
    assert FleetSample(taken_at=NOW, versions={}, staleness_seconds=60).queries == 0


def test_to_json_is_exact() -> None:
    sample = good(latency_p99=math.inf)
    doc = evaluate_sla(sample, SlaThresholds(), 0.95, NOW, sample_taken_at=NOW - timedelta(seconds=3)).to_json()
    assert doc == {
        "model": "fraud",
        "version": "v3",
        "status": "degraded",
        "reason": "latency_p99: above the highest histogram bucket > 1000 ms",
        "checks": [
            {"name": "request_rate", "value": 20.0, "threshold": 0.1, "unit": "req/s", "verdict": "pass",
             "reason": "20 req/s"},
            {"name": "latency_p95", "value": 200.0, "threshold": 500.0, "unit": "ms", "verdict": "pass",
             "reason": "200 ms <= 500 ms"},
            {"name": "latency_p99", "value": None, "threshold": 1000.0, "unit": "ms", "verdict": "fail",
             "reason": "above the highest histogram bucket > 1000 ms"},
            {"name": "error_rate", "value": 0.1, "threshold": 1.0, "unit": "%", "verdict": "pass",
             "reason": "0.1 % <= 1 %"},
            {"name": "availability", "value": 100.0, "threshold": 99.9, "unit": "%", "verdict": "pass",
             "reason": "100 % >= 99.9 %"},
            {"name": "accuracy", "value": 0.94, "threshold": pytest.approx(0.9025), "unit": "ratio",
             "verdict": "pass", "reason": "0.94 ratio >= 0.9025 ratio (0.95 x baseline 0.95)"},
        ],
        "sample_age_seconds": 3.0,
        "evaluated_at": "2026-03-01T12:00:00Z",
    }
