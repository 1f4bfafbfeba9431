"""Canary gates: each verdict and the numbers behind it, checked against scipy/statsmodels."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest, norm
from statsmodels.stats.proportion import proportions_ztest

from opsctl.core.abtest import sample_size_per_group
from opsctl.core.canary import CanaryPolicy
from opsctl.core.gates import (
    CustomGate,
    CustomReading,
    DriftInput,
    Evaluation,
    GateInputs,
    GateResult,
    SlaInput,
    Verdict,
    VersionWindow,
    accuracy_gate,
    combine,
    custom_gate,
    drift_gate,
    error_ceiling_gate,
    error_rate_gate,
    evaluate_gates,
    latency_gates,
    sla_gate,
)

ERROR_ARGS = {"alpha": 0.05, "power": 0.8, "mde_relative": 1.0, "min_baseline": 0.001, "min_requests": 200}


def window(requests=10_000, errors=100, p95=0.2, p99=0.4, labelled=500, correct=450) -> VersionWindow:
    return VersionWindow(requests, errors, p95, p99, labelled, correct)


# --------------------------------------------------------------------------- error rate


def test_error_rate_fails_on_a_significant_excess_with_statsmodels_p_value():
    canary, production = window(2000, 60), window(40_000, 400)  # 3 % vs 1 %
    result = error_rate_gate(canary, production, **ERROR_ARGS)
    _, expected_p = proportions_ztest([60, 400], [2000, 40_000], alternative="larger")
    assert result.verdict is Verdict.FAIL
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)
    assert result.value == pytest.approx(0.03) and result.threshold == pytest.approx(0.01)
    assert result.sample_size == 2000


def test_error_rate_passes_with_enough_traffic_and_no_excess():
    needed = sample_size_per_group(0.01, 1.0, alpha=0.05, power=0.8, alternative="larger")
    canary, production = window(needed, needed // 100), window(100_000, 1000)
    result = error_rate_gate(canary, production, **ERROR_ARGS)
    assert result.verdict is Verdict.PASS
    assert result.sample_needed == needed


def test_error_rate_with_too_little_traffic_is_inconclusive_and_reports_the_sample_needed():
    needed = sample_size_per_group(0.01, 1.0, alpha=0.05, power=0.8, alternative="larger")
    canary, production = window(needed - 1, 0), window(100_000, 1000)
    result = error_rate_gate(canary, production, **ERROR_ARGS)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.sample_needed == needed and result.sample_size == needed - 1
    below_minimum = error_rate_gate(window(150, 0), production, **ERROR_ARGS)
    assert below_minimum.verdict is Verdict.INCONCLUSIVE and below_minimum.sample_needed == needed


def test_error_rate_sample_needed_uses_the_floor_when_production_has_no_errors():
    result = error_rate_gate(window(300, 0), window(100_000, 0), **ERROR_ARGS)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.sample_needed == sample_size_per_group(0.001, 1.0, alpha=0.05, power=0.8, alternative="larger")


@pytest.mark.parametrize(
    ("canary", "production"),
    [
        (VersionWindow(), window()),
        (window(), VersionWindow()),
        (VersionWindow(requests=1000), window()),
        (window(100, 200), window()),  # more errors than requests: a counter reset, not data
        (window(), window(0, 0)),
    ],
)
def test_error_rate_missing_or_broken_counts_are_inconclusive(canary, production):
    assert error_rate_gate(canary, production, **ERROR_ARGS).verdict is Verdict.INCONCLUSIVE


def test_error_ceiling_fails_only_on_a_significant_excess():
    bad = error_ceiling_gate(window(1000, 200), ceiling_percent=5.0, alpha=0.05, min_requests=200)
    assert bad.verdict is Verdict.FAIL
    assert bad.p_value == pytest.approx(binomtest(200, 1000, 0.05, alternative="greater").pvalue)
    noisy = error_ceiling_gate(window(200, 12), ceiling_percent=5.0, alpha=0.05, min_requests=200)  # 6 %
    assert noisy.verdict is Verdict.INCONCLUSIVE
    fine = error_ceiling_gate(window(1000, 20), ceiling_percent=5.0, alpha=0.05, min_requests=200)
    assert fine.verdict is Verdict.PASS and fine.threshold == pytest.approx(0.05)
    few = error_ceiling_gate(window(50, 40), ceiling_percent=5.0, alpha=0.05, min_requests=200)
    assert few.verdict is Verdict.INCONCLUSIVE and few.sample_needed == 200


# --------------------------------------------------------------------------- latency


def test_latency_ratio_within_tolerance_passes_and_beyond_fails():
    production = window(p95=0.200, p99=0.400)
    p95, p99 = latency_gates(window(p95=0.230, p99=0.600), production, tolerance=1.2, min_requests=200, slack_seconds=0)
    assert p95.verdict is Verdict.PASS and p95.value == pytest.approx(1.15)
    assert p99.verdict is Verdict.FAIL and p99.value == pytest.approx(1.5) and p99.threshold == 1.2


def test_latency_slack_ignores_tiny_absolute_differences():
    production = window(p95=0.002, p99=0.004)
    canary = window(p95=0.003, p99=0.004)
    p95, _ = latency_gates(canary, production, tolerance=1.2, min_requests=200, slack_seconds=0.01)
    assert p95.verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("canary", "production"),
    [
        (window(requests=100), window()),
        (window(), window(requests=10)),
        (window(p95=None, p99=None), window()),
        (window(p95=math.nan, p99=math.nan), window()),
        (window(), window(p95=0.0, p99=0.0)),
        (VersionWindow(), window()),
    ],
)
def test_latency_without_enough_requests_or_values_is_inconclusive(canary, production):
    for result in latency_gates(canary, production, tolerance=1.2, min_requests=200, slack_seconds=0):
        assert result.verdict is Verdict.INCONCLUSIVE, result


# --------------------------------------------------------------------------- SLA, accuracy, drift, custom


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("healthy", Verdict.PASS),
        ("degraded", Verdict.FAIL),
        ("unknown", Verdict.INCONCLUSIVE),
        ("bogus", Verdict.INCONCLUSIVE),
    ],
)
def test_sla_status_maps_to_a_verdict_and_keeps_the_reasons(status, verdict):
    result = sla_gate(SlaInput(status, ("p95 latency 812 ms > 500 ms",)))
    assert result.verdict is verdict
    assert "812" in result.reason
    assert sla_gate(None).verdict is Verdict.INCONCLUSIVE


def test_accuracy_fails_when_significantly_worse_than_the_tolerance():
    canary, reference = window(labelled=1000, correct=850), window(labelled=5000, correct=4500)
    result = accuracy_gate(canary, reference, min_labels=100, tolerance=0.02, alpha=0.05)
    se = math.sqrt(0.85 * 0.15 / 1000 + 0.9 * 0.1 / 5000)
    assert result.verdict is Verdict.FAIL
    assert result.p_value == pytest.approx(norm.sf((0.05 - 0.02) / se))
    assert result.value == pytest.approx(0.85) and result.threshold == pytest.approx(0.88)


def test_accuracy_within_tolerance_passes_and_a_noisy_drop_is_inconclusive():
    reference = window(labelled=5000, correct=4500)
    ok = accuracy_gate(window(labelled=400, correct=355), reference, min_labels=100, tolerance=0.02, alpha=0.05)
    assert ok.verdict is Verdict.PASS  # 0.8875 vs 0.90
    noisy = accuracy_gate(window(labelled=100, correct=86), reference, min_labels=100, tolerance=0.02, alpha=0.05)
    assert noisy.verdict is Verdict.INCONCLUSIVE  # 0.86: worse than 0.88, but 100 labels cannot tell


def test_accuracy_without_enough_labels_is_inconclusive_with_labels_needed():
    reference = window(labelled=5000, correct=4500)
    few = accuracy_gate(window(labelled=40, correct=10), reference, min_labels=100, tolerance=0.02, alpha=0.05)
    assert few.verdict is Verdict.INCONCLUSIVE and few.sample_needed == 100 and few.sample_size == 40
    none = accuracy_gate(window(labelled=None, correct=None), reference, min_labels=100, tolerance=0.02, alpha=0.05)
    assert none.verdict is Verdict.INCONCLUSIVE


def test_perfect_accuracy_on_both_sides_passes_without_dividing_by_zero():
    result = accuracy_gate(
        window(labelled=200, correct=200), window(labelled=200, correct=200), min_labels=100, tolerance=0.0, alpha=0.05
    )
    assert result.verdict is Verdict.PASS


def test_drift_gate():
    assert drift_gate(DriftInput(True, "PSI 0.4 on amount")).verdict is Verdict.FAIL
    assert drift_gate(DriftInput(False)).verdict is Verdict.PASS
    assert drift_gate(DriftInput(None, "reference set missing")).reason == "reference set missing"
    assert drift_gate(None).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("comparator", "value", "verdict"),
    [("<", 0.2, Verdict.PASS), ("<", 0.3, Verdict.FAIL), (">=", 0.3, Verdict.PASS), ("!=", 0.3, Verdict.FAIL)],
)
def test_custom_gate_comparator_states_the_passing_condition(comparator, value, verdict):
    spec = CustomGate("queue", "sum(queue_depth)", comparator, 0.3)
    assert custom_gate(spec, CustomReading("queue", value)).verdict is verdict


def test_custom_gate_without_a_value_is_inconclusive():
    spec = CustomGate("queue", "sum(queue_depth)", "<", 1)
    readings = (None, CustomReading("queue"), CustomReading("queue", math.nan), CustomReading("queue", error="502"))
    for reading in readings:
        assert custom_gate(spec, reading).verdict is Verdict.INCONCLUSIVE


def test_custom_gate_rejects_an_unknown_comparator():
    with pytest.raises(ValueError, match="comparator"):
        CustomGate("x", "up", "=~", 1)


# --------------------------------------------------------------------------- evaluation


def test_combine_fail_beats_inconclusive_beats_pass_and_nothing_never_passes():
    assert combine([Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.FAIL]) is Verdict.FAIL
    assert combine([Verdict.PASS, Verdict.INCONCLUSIVE]) is Verdict.INCONCLUSIVE
    assert combine([Verdict.PASS, Verdict.PASS]) is Verdict.PASS
    assert combine([]) is Verdict.INCONCLUSIVE


def test_an_evaluation_cannot_claim_a_verdict_its_results_contradict():
    with pytest.raises(ValueError):
        Evaluation(Verdict.PASS, (GateResult("sla", Verdict.INCONCLUSIVE),))
    with pytest.raises(ValueError):
        Evaluation(Verdict.PASS, ())


def healthy_inputs(**changes) -> GateInputs:
    base = {
        "canary": window(5000, 25, 0.2, 0.4, 500, 450),
        "production": window(100_000, 500, 0.2, 0.4, 5000, 4500),
        "sla": SlaInput("healthy"),
        "sla_error_rate_percent": 5.0,
    }
    base.update(changes)
    return GateInputs(**base)


def test_evaluate_gates_healthy_window_passes_every_enabled_gate():
    policy = CanaryPolicy(error_rate_mde_relative=2.0, error_rate_min_baseline=0.005)
    evaluation = evaluate_gates(policy, healthy_inputs())
    assert evaluation.verdict is Verdict.PASS, evaluation.reason
    names = [r.name for r in evaluation.results]
    assert names == ["error_rate", "error_rate_ceiling", "latency_p95", "latency_p99", "sla", "accuracy"]
    assert not evaluation.metrics_error


def test_evaluate_gates_includes_drift_and_custom_gates_when_configured():
    policy = CanaryPolicy(
        error_rate_mde_relative=2.0,
        error_rate_min_baseline=0.005,
        drift_gate=True,
        custom_gates=[{"name": "gpu", "query": "avg(gpu_util)", "comparator": "<", "threshold": 0.9}],
    )
    evaluation = evaluate_gates(policy, healthy_inputs(custom=(CustomReading("gpu", 0.95),), drift=DriftInput(False)))
    assert evaluation.verdict is Verdict.FAIL
    assert [r.name for r in evaluation.results][-2:] == ["drift", "custom:gpu"]
    broken = healthy_inputs(custom=(CustomReading("gpu", error="timeout"),), drift=DriftInput(False))
    errored = evaluate_gates(policy, broken)
    assert errored.metrics_error and errored.verdict is Verdict.INCONCLUSIVE


def test_evaluate_gates_with_the_source_down_is_a_metrics_error_that_never_passes():
    policy = CanaryPolicy(sla_gate=False, accuracy_gate=False)
    evaluation = evaluate_gates(
        policy,
        GateInputs(canary=VersionWindow(), production=VersionWindow(), metrics_error="Prometheus unreachable"),
    )
    assert evaluation.metrics_error
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "Prometheus unreachable" in evaluation.reason


def test_evaluate_gates_policy_ceiling_overrides_the_sla_one():
    policy = CanaryPolicy(max_error_rate_percent=0.1, accuracy_gate=False)
    evaluation = evaluate_gates(policy, healthy_inputs(canary=window(5000, 50, 0.2, 0.4)))  # 1 % > 0.1 %
    ceiling = next(r for r in evaluation.results if r.name == "error_rate_ceiling")
    assert ceiling.verdict is Verdict.FAIL and ceiling.threshold == pytest.approx(0.001)


def test_evaluation_round_trips_through_json():
    import json

    evaluation = evaluate_gates(CanaryPolicy(), healthy_inputs())
    assert Evaluation.from_json(json.loads(json.dumps(evaluation.to_json()))) == evaluation


# --------------------------------------------------------------------------- the 100 % stage

FULL_POLICY = CanaryPolicy(error_rate_mde_relative=2.0, error_rate_min_baseline=0.005)
NO_PRODUCTION = VersionWindow(requests=0, errors=0)


def test_at_100_percent_comparisons_are_not_applicable_and_the_absolute_gates_judge():
    inputs = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0,
                            quality_reference=window(labelled=500, correct=450))
    evaluation = evaluate_gates(FULL_POLICY, inputs)
    verdicts = {r.name: r.verdict for r in evaluation.results}
    assert evaluation.verdict is Verdict.PASS, evaluation.reason
    assert verdicts == {"error_rate": Verdict.NOT_APPLICABLE, "error_rate_ceiling": Verdict.PASS,
                        "latency_p95": Verdict.NOT_APPLICABLE, "latency_p99": Verdict.NOT_APPLICABLE,
                        "sla": Verdict.PASS, "accuracy": Verdict.PASS}
    skipped = next(r for r in evaluation.results if r.name == "error_rate")
    assert "no production traffic at 100 %" in skipped.reason and skipped.sample_size == 5000
    assert skipped.value == pytest.approx(25 / 5000)
    assert "not applicable: error_rate, latency_p95, latency_p99" in evaluation.reason
    # Below 100 % the same empty production is inconclusive, as before.
    partial = evaluate_gates(FULL_POLICY, healthy_inputs(production=NO_PRODUCTION, canary_weight=50.0))
    assert partial.verdict is Verdict.INCONCLUSIVE


def test_at_100_percent_a_failing_absolute_gate_still_fails():
    bad = healthy_inputs(canary=window(10_000, 900), production=NO_PRODUCTION, canary_weight=100.0)  # 9 % > 5 %
    evaluation = evaluate_gates(FULL_POLICY, bad)
    assert evaluation.verdict is Verdict.FAIL
    degraded = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0, sla=SlaInput("degraded", ("p95",)))
    assert evaluate_gates(FULL_POLICY, degraded).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("policy", "changes", "unjudged"),
    [
        # No ceiling anywhere: nothing judges the error rate, so it stays inconclusive.
        (CanaryPolicy(accuracy_gate=False), {"sla_error_rate_percent": None}, "error_rate"),
        # SLA gate off: nothing judges latency.
        (CanaryPolicy(accuracy_gate=False, sla_gate=False), {}, "latency_p95"),
        # No quality reference and no SLA: nothing judges accuracy.
        (CanaryPolicy(sla_gate=False, max_error_rate_percent=5.0), {}, "accuracy"),
    ],
)
def test_at_100_percent_missing_data_never_becomes_a_pass(policy, changes, unjudged):
    inputs = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0, **changes)
    evaluation = evaluate_gates(policy, inputs)
    result = next(r for r in evaluation.results if r.name == unjudged)
    assert result.verdict is Verdict.INCONCLUSIVE and "100 %" in result.reason
    assert evaluation.verdict is Verdict.INCONCLUSIVE


def test_an_evaluation_of_only_not_applicable_results_is_inconclusive():
    only = [GateResult("error_rate", Verdict.NOT_APPLICABLE, reason="n/a")]
    assert combine([Verdict.NOT_APPLICABLE]) is Verdict.INCONCLUSIVE
    assert Evaluation.of(only).verdict is Verdict.INCONCLUSIVE
    assert combine([Verdict.NOT_APPLICABLE, Verdict.PASS]) is Verdict.PASS
