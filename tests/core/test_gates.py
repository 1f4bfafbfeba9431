"""Canary gates: each verdict and the numbers behind it, checked against scipy/statsmodels."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

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
    latency_gate,
    sla_gate,
)

ERROR_ARGS = {"alpha": 0.01, "power": 0.8, "margin_relative": 1.0, "margin_floor": 0.001}


def window(requests=10_000, errors=100, p95=0.2, p99=0.4, labelled=500, correct=450, slow=None) -> VersionWindow:
    return VersionWindow(requests, errors, p95, p99, labelled, correct, slow)


# --------------------------------------------------------------------------- error rate


def test_four_errors_in_seven_requests_fail_at_the_first_look_on_both_error_gates():
    canary, production = window(7, 4), window(10_000, 10)
    result = error_rate_gate(canary, production, **ERROR_ARGS, stages=4)
    assert result.verdict is Verdict.FAIL
    # The exact conditional p-value: the canary's share of the 14 pooled errors.
    assert result.exact_p_value == pytest.approx(
        binomtest(4, 14, 7 / 10_007, alternative="greater").pvalue, rel=1e-9)
    assert result.p_value < 0.01 / 4 and result.sample_size == 7
    ceiling = error_ceiling_gate(canary, ceiling_percent=1.0, alpha=0.01, stages=4)
    assert ceiling.verdict is Verdict.FAIL
    assert ceiling.exact_p_value == pytest.approx(binomtest(4, 7, 0.01, alternative="greater").pvalue, rel=1e-9)


def test_two_of_two_hundred_against_four_of_3800_fails_on_neither_gate():
    canary, production = window(200, 2), window(3800, 4)
    result = error_rate_gate(canary, production, **ERROR_ARGS, stages=4)
    assert result.verdict is Verdict.INCONCLUSIVE and result.collecting
    assert result.exact_p_value == pytest.approx(binomtest(2, 6, 200 / 4000, alternative="greater").pvalue, rel=1e-9)
    ceiling = error_ceiling_gate(canary, ceiling_percent=1.0, alpha=0.01, stages=4)
    assert ceiling.verdict is Verdict.INCONCLUSIVE


def test_error_rate_passes_on_evidence_of_non_inferiority_and_says_when_before():
    production = window(100_000, 100)  # 0.1 %
    early = error_rate_gate(window(1000, 1), production, **ERROR_ARGS, stage_seconds=100.0)
    assert early.verdict is Verdict.INCONCLUSIVE and early.collecting
    assert early.sample_needed is not None and early.sample_needed > 1000
    assert early.expected_seconds == pytest.approx((early.sample_needed - 1000) / 10.0)
    assert "pass expected in" in early.reason and "at 10 req/s" in early.reason
    late = error_rate_gate(window(8000, 4), production, **ERROR_ARGS)
    assert late.verdict is Verdict.PASS and late.expected_seconds == 0.0


def test_a_canary_at_twice_productions_rate_does_not_pass():
    result = error_rate_gate(window(20_000, 40), window(200_000, 200), **ERROR_ARGS)
    assert result.verdict is not Verdict.PASS


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
    result = error_rate_gate(canary, production, **ERROR_ARGS)
    assert result.verdict is Verdict.INCONCLUSIVE and not result.collecting


def test_error_ceiling_fails_on_a_significant_excess_and_passes_well_below():
    bad = error_ceiling_gate(window(1000, 200), ceiling_percent=5.0, alpha=0.05)
    assert bad.verdict is Verdict.FAIL
    assert bad.exact_p_value == pytest.approx(binomtest(200, 1000, 0.05, alternative="greater").pvalue)
    noisy = error_ceiling_gate(window(200, 12), ceiling_percent=5.0, alpha=0.05)  # 6 %
    assert noisy.verdict is Verdict.INCONCLUSIVE
    fine = error_ceiling_gate(window(1000, 5), ceiling_percent=5.0, alpha=0.05)
    assert fine.verdict is Verdict.PASS and fine.threshold == pytest.approx(0.05)
    assert error_ceiling_gate(window(), ceiling_percent=None, alpha=0.05).verdict is Verdict.INCONCLUSIVE


# --------------------------------------------------------------------------- latency

LATENCY_ARGS = {"bound_seconds": 0.5, "alpha": 0.01, "power": 0.8, "margin_relative": 1.0, "margin_floor": 0.01}


def test_latency_fails_when_many_more_canary_requests_are_slow():
    result = latency_gate(window(300, 0, slow=60), window(10_000, 0, slow=200), **LATENCY_ARGS)
    assert result.verdict is Verdict.FAIL
    assert result.exact_p_value == pytest.approx(
        binomtest(60, 260, 300 / 10_300, alternative="greater").pvalue, rel=1e-9)


def test_latency_passes_a_canary_as_fast_as_production_and_ignores_a_few_slow_requests():
    production = window(50_000, 0, slow=1000)  # 2 % over the bound
    assert latency_gate(window(3000, 0, slow=55), production, **LATENCY_ARGS).verdict is Verdict.PASS
    few = latency_gate(window(30, 0, slow=2), production, **LATENCY_ARGS)
    assert few.verdict is Verdict.INCONCLUSIVE and few.collecting


@pytest.mark.parametrize(
    ("canary", "production", "bound"),
    [
        (window(slow=None), window(slow=10), 0.5),
        (window(slow=10), window(slow=None), 0.5),
        (window(slow=10), window(slow=10), None),
        (window(100, 0, slow=200), window(slow=10), 0.5),
        (window(slow=10), window(0, 0, slow=0), 0.5),
    ],
)
def test_latency_without_bucket_counts_or_bound_is_inconclusive(canary, production, bound):
    args = {**LATENCY_ARGS, "bound_seconds": bound}
    assert latency_gate(canary, production, **args).verdict is Verdict.INCONCLUSIVE


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


def test_accuracy_fails_on_a_significant_drop_beyond_the_tolerance():
    from scipy.stats import beta

    canary, reference = window(labelled=1000, correct=820), window(labelled=5000, correct=4500)
    result = accuracy_gate(canary, reference, tolerance=0.02, alpha=0.05)
    assert result.verdict is Verdict.FAIL
    # Against the reference's exact (Clopper-Pearson) upper bound of wrong answers at alpha/2, plus
    # the tolerance: canary accuracy significantly below the reference's minus the tolerance.
    ceiling = beta.ppf(1 - 0.025, 501, 4500) + 0.02
    assert result.exact_p_value == pytest.approx(binomtest(180, 1000, ceiling, alternative="greater").pvalue,
                                                 abs=1e-9)
    assert result.p_value is not None and result.p_value <= 0.025
    assert result.value == pytest.approx(0.82) and result.threshold == pytest.approx(0.88)


def test_accuracy_a_significant_drop_within_the_tolerance_does_not_fail():
    # 88.5 % against 90 % on many labels: a significant drop of 1.5 points, inside the 2-point tolerance.
    canary, reference = window(labelled=10_000, correct=8850), window(labelled=50_000, correct=45_000)
    assert binomtest(1150, 1150 + 5000, 10_000 / 60_000, alternative="greater").pvalue < 1e-4
    result = accuracy_gate(canary, reference, tolerance=0.02, alpha=0.05)
    assert result.verdict is not Verdict.FAIL
    assert result.p_value == 1.0 and result.exact_p_value is not None and result.exact_p_value > 0.5


def test_accuracy_passes_when_significantly_above_the_reference_minus_the_tolerance():
    canary, reference = window(labelled=3000, correct=2710), window(labelled=50_000, correct=45_000)
    assert accuracy_gate(canary, reference, tolerance=0.02, alpha=0.05).verdict is Verdict.PASS


def test_accuracy_within_tolerance_passes_and_a_few_labels_are_collecting():
    reference = window(labelled=5000, correct=4500)
    ok = accuracy_gate(window(labelled=1200, correct=1085), reference, tolerance=0.02, alpha=0.05)
    assert ok.verdict is Verdict.PASS
    few = accuracy_gate(window(labelled=39, correct=30), reference, tolerance=0.02, alpha=0.05)
    assert few.verdict is Verdict.INCONCLUSIVE and few.collecting and few.sample_size == 39
    none = accuracy_gate(window(labelled=None, correct=None), reference, tolerance=0.02, alpha=0.05)
    assert none.verdict is Verdict.INCONCLUSIVE and not none.collecting


def test_perfect_accuracy_on_both_sides_passes_without_dividing_by_zero():
    result = accuracy_gate(window(labelled=800, correct=800), window(labelled=800, correct=800), tolerance=0.02,
                           alpha=0.05)
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
        "canary": window(5000, 2, 0.2, 0.4, 1500, 1350, slow=20),
        "production": window(100_000, 100, 0.2, 0.4, 5000, 4500, slow=500),
        "sla": SlaInput("healthy"),
        "sla_error_rate_percent": 5.0,
        "latency_bound_seconds": 0.5,
    }
    base.update(changes)
    return GateInputs(**base)


def test_evaluate_gates_healthy_window_passes_every_enabled_gate():
    policy = CanaryPolicy(error_rate_mde_relative=2.0, error_rate_min_baseline=0.005)
    evaluation = evaluate_gates(policy.gate_policy, healthy_inputs())
    assert evaluation.verdict is Verdict.PASS, evaluation.reason
    names = [r.name for r in evaluation.results]
    assert names == ["error_rate", "error_rate_ceiling", "latency", "sla", "accuracy"]
    assert not evaluation.metrics_error


def test_evaluate_gates_includes_drift_and_custom_gates_when_configured():
    policy = CanaryPolicy(
        error_rate_mde_relative=2.0,
        error_rate_min_baseline=0.005,
        drift_gate=True,
        custom_gates=[{"name": "gpu", "query": "avg(gpu_util)", "comparator": "<", "threshold": 0.9}],
    )
    inputs = healthy_inputs(custom=(CustomReading("gpu", 0.95),), drift=DriftInput(False))
    evaluation = evaluate_gates(policy.gate_policy, inputs)
    assert evaluation.verdict is Verdict.FAIL
    assert [r.name for r in evaluation.results][-2:] == ["drift", "custom:gpu"]
    broken = healthy_inputs(custom=(CustomReading("gpu", error="timeout"),), drift=DriftInput(False))
    errored = evaluate_gates(policy.gate_policy, broken)
    assert errored.metrics_error and errored.verdict is Verdict.INCONCLUSIVE


def test_evaluate_gates_with_the_source_down_is_a_metrics_error_that_never_passes():
    policy = CanaryPolicy(sla_gate=False, accuracy_gate=False)
    evaluation = evaluate_gates(
        policy.gate_policy,
        GateInputs(canary=VersionWindow(), production=VersionWindow(), metrics_error="Prometheus unreachable"),
    )
    assert evaluation.metrics_error
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "Prometheus unreachable" in evaluation.reason


def test_evaluate_gates_policy_ceiling_overrides_the_sla_one():
    policy = CanaryPolicy(max_error_rate_percent=0.1, accuracy_gate=False)
    # 1 % > 0.1 %
    evaluation = evaluate_gates(policy.gate_policy, healthy_inputs(canary=window(5000, 50, 0.2, 0.4, slow=20)))
    ceiling = next(r for r in evaluation.results if r.name == "error_rate_ceiling")
    assert ceiling.verdict is Verdict.FAIL and ceiling.threshold == pytest.approx(0.001)


def test_evaluation_round_trips_through_json():
    import json

    evaluation = evaluate_gates(CanaryPolicy().gate_policy, healthy_inputs())
    assert Evaluation.from_json(json.loads(json.dumps(evaluation.to_json()))) == evaluation


# --------------------------------------------------------------------------- the 100 % stage

FULL_POLICY = CanaryPolicy(error_rate_mde_relative=2.0, error_rate_min_baseline=0.005)
NO_PRODUCTION = VersionWindow(requests=0, errors=0)


def test_at_100_percent_comparisons_are_not_applicable_and_the_absolute_gates_judge():
    inputs = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0,
                            quality_reference=window(labelled=5000, correct=4500))
    evaluation = evaluate_gates(FULL_POLICY.gate_policy, inputs)
    verdicts = {r.name: r.verdict for r in evaluation.results}
    assert evaluation.verdict is Verdict.PASS, evaluation.reason
    assert verdicts == {"error_rate": Verdict.NOT_APPLICABLE, "error_rate_ceiling": Verdict.PASS,
                        "latency": Verdict.NOT_APPLICABLE,
                        "sla": Verdict.PASS, "accuracy": Verdict.PASS}
    skipped = next(r for r in evaluation.results if r.name == "error_rate")
    assert "no production traffic at 100 %" in skipped.reason and skipped.sample_size == 5000
    assert skipped.value == pytest.approx(2 / 5000)
    assert "not applicable: error_rate, latency" in evaluation.reason
    # Below 100 % the same empty production is inconclusive, as before.
    partial = evaluate_gates(FULL_POLICY.gate_policy, healthy_inputs(production=NO_PRODUCTION, canary_weight=50.0))
    assert partial.verdict is Verdict.INCONCLUSIVE


def test_at_100_percent_a_failing_absolute_gate_still_fails():
    bad = healthy_inputs(canary=window(10_000, 900), production=NO_PRODUCTION, canary_weight=100.0)  # 9 % > 5 %
    evaluation = evaluate_gates(FULL_POLICY.gate_policy, bad)
    assert evaluation.verdict is Verdict.FAIL
    degraded = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0, sla=SlaInput("degraded", ("p95",)))
    assert evaluate_gates(FULL_POLICY.gate_policy, degraded).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("policy", "changes", "unjudged"),
    [
        # No ceiling anywhere: nothing judges the error rate, so it stays inconclusive.
        (CanaryPolicy(accuracy_gate=False), {"sla_error_rate_percent": None}, "error_rate"),
        # SLA gate off: nothing judges latency.
        (CanaryPolicy(accuracy_gate=False, sla_gate=False), {}, "latency"),
        # No quality reference and no SLA: nothing judges accuracy.
        (CanaryPolicy(sla_gate=False, max_error_rate_percent=5.0), {}, "accuracy"),
    ],
)
def test_at_100_percent_missing_data_never_becomes_a_pass(policy, changes, unjudged):
    inputs = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0, **changes)
    evaluation = evaluate_gates(policy.gate_policy, inputs)
    result = next(r for r in evaluation.results if r.name == unjudged)
    assert result.verdict is Verdict.INCONCLUSIVE and "100 %" in result.reason
    assert evaluation.verdict is Verdict.INCONCLUSIVE


def test_an_evaluation_of_only_not_applicable_results_is_inconclusive():
    only = [GateResult("error_rate", Verdict.NOT_APPLICABLE, reason="n/a")]
    assert combine([Verdict.NOT_APPLICABLE]) is Verdict.INCONCLUSIVE
    assert Evaluation.of(only).verdict is Verdict.INCONCLUSIVE
    assert combine([Verdict.NOT_APPLICABLE, Verdict.PASS]) is Verdict.PASS


# --------------------------------------------------------------------------- sequential details


def test_the_failing_test_runs_at_alpha_over_the_number_of_stages():
    # 3 errors in 200 canary requests against 5 in 10,000: always-valid p between alpha/4 and alpha.
    canary, production = window(200, 3), window(10_000, 5)
    one = error_rate_gate(canary, production, **ERROR_ARGS, stages=1)
    assert 0.01 / 4 < one.p_value < 0.01
    assert one.verdict is Verdict.FAIL
    assert error_rate_gate(canary, production, **ERROR_ARGS, stages=4).verdict is Verdict.INCONCLUSIVE


def test_expected_seconds_need_a_positive_stage_age():
    production = window(100_000, 100)
    for seconds in (None, 0.0, -5.0):
        result = error_rate_gate(window(1000, 1), production, **ERROR_ARGS, stage_seconds=seconds)
        assert result.expected_seconds is None and result.collecting
        assert f"pass expected at {result.sample_needed} req" in result.reason
    hopeless = error_rate_gate(window(1000, 4), production, **ERROR_ARGS, stage_seconds=100.0)
    assert hopeless.verdict is Verdict.INCONCLUSIVE and hopeless.sample_needed is None
    assert hopeless.expected_seconds is None and "no pass expected" in hopeless.reason


def test_a_ceiling_of_100_percent_cannot_be_exceeded():
    result = error_ceiling_gate(window(10, 10), ceiling_percent=100.0, alpha=0.01)
    assert result.verdict is Verdict.PASS and result.threshold == 1.0
    broken = error_ceiling_gate(window(10, 20), ceiling_percent=1.0, alpha=0.01)
    assert broken.verdict is Verdict.INCONCLUSIVE and broken.threshold == 0.01


def test_the_evaluation_is_collecting_only_when_every_undecided_gate_is():
    collecting = GateResult("error_rate", Verdict.INCONCLUSIVE, expected_seconds=60.0, collecting=True)
    later = GateResult("latency", Verdict.INCONCLUSIVE, expected_seconds=300.0, collecting=True)
    missing = GateResult("sla", Verdict.INCONCLUSIVE, reason="no SLA status")
    passed = GateResult("accuracy", Verdict.PASS, expected_seconds=0.0)
    both = Evaluation.of([collecting, later, passed])
    assert both.collecting and both.expected_seconds == 300.0
    assert not Evaluation.of([collecting, missing]).collecting
    assert Evaluation.of([collecting, missing]).expected_seconds is None
    assert not Evaluation.of([passed]).collecting and Evaluation.of([passed]).expected_seconds == 0.0
    assert not Evaluation.of([collecting], metrics_error=True).collecting
    assert not Evaluation.of([GateResult("x", Verdict.FAIL), collecting]).collecting


def test_gate_results_round_trip_with_the_sequential_numbers():
    result = GateResult("error_rate", Verdict.INCONCLUSIVE, value=0.001, threshold=0.002, p_value=0.5,
                        sample_size=10, sample_needed=5000, reason="r", exact_p_value=0.25, expected_seconds=12.5,
                        collecting=True)
    data = result.to_json()
    assert data["exact_p_value"] == 0.25 and data["expected_seconds"] == 12.5 and data["collecting"] is True
    assert GateResult.from_json(data) == result
    assert GateResult.from_json({"name": "x", "verdict": "pass"}).collecting is False


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"stages": 0}, "stages"), ({"error_rate_alpha": 1.0}, "error_rate_alpha"),
     ({"error_rate_power": 0.0}, "error_rate_power"), ({"accuracy_alpha": 1.5}, "accuracy_alpha"),
     ({"error_rate_mde_relative": 0.0}, "error_rate_mde_relative"),
     ({"latency_margin_relative": -1.0}, "latency_margin_relative"),
     ({"error_rate_min_baseline": 0.0}, "error_rate_min_baseline"), ({"latency_min_share": 1.0}, "latency_min_share"),
     ({"accuracy_tolerance": 0.0}, "accuracy_tolerance"), ({"accuracy_tolerance": 1.0}, "accuracy_tolerance")],
)
def test_impossible_gate_policies_are_refused(changes, match):
    from opsctl.core.gates import GatePolicy

    with pytest.raises(ValueError, match=match):
        GatePolicy(**changes)


def test_the_latency_gate_can_be_turned_off():
    names = [r.name for r in evaluate_gates(CanaryPolicy(latency_gate=False).gate_policy, healthy_inputs()).results]
    assert "latency" not in names and "error_rate" in names


def test_just_below_100_percent_production_is_still_compared():
    inputs = healthy_inputs(canary_weight=99.9)
    verdicts = {r.name: r.verdict for r in evaluate_gates(FULL_POLICY.gate_policy, inputs).results}
    assert verdicts["error_rate"] is not Verdict.NOT_APPLICABLE and verdicts["latency"] is not Verdict.NOT_APPLICABLE


# --------------------------------------------------------------------------- what each result says


def test_windows_and_custom_gates_serialise_every_field():
    assert window(7, 4, 0.1, 0.2, 30, 20, slow=3).to_json() == {
        "requests": 7, "errors": 4, "p95_seconds": 0.1, "p99_seconds": 0.2, "labelled": 30, "correct": 20, "slow": 3}
    spec = CustomGate("queue", "sum(q)")
    assert spec.threshold == 0.0 and spec.comparator == "<"
    assert spec.to_json() == {"name": "queue", "query": "sum(q)", "comparator": "<", "threshold": 0.0}
    with pytest.raises(ValueError, match="threshold"):
        CustomGate("queue", "sum(q)", "<", True)


def test_the_evaluation_summary_names_what_decided():
    na = GateResult("error_rate", Verdict.NOT_APPLICABLE, reason="n/a")
    assert Evaluation.of([na]).reason == "inconclusive: no gate applies to this window"
    failed = Evaluation.of([GateResult("a", Verdict.FAIL, reason="bad"), GateResult("b", Verdict.PASS)])
    assert failed.reason == "failed: a: bad"
    unsure = Evaluation.of([GateResult("a", Verdict.INCONCLUSIVE, reason="wait"), GateResult("b", Verdict.PASS)])
    assert unsure.reason == "inconclusive: a: wait"
    passed = Evaluation.of([GateResult("a", Verdict.PASS), GateResult("b", Verdict.PASS), na])
    assert passed.reason == "all gates passed: a, b (not applicable: error_rate)"


def test_a_canary_without_requests_yet_is_collecting_not_broken():
    result = error_rate_gate(window(0, 0), window(10_000, 10), **ERROR_ARGS, stage_seconds=0.5)
    assert result.verdict is Verdict.INCONCLUSIVE and result.collecting and result.value is None
    assert "- (0/0)" in result.reason and result.sample_size == 0
    clean = error_rate_gate(window(100, 0), window(10_000, 0), **ERROR_ARGS, stage_seconds=0.5)
    assert clean.collecting and clean.expected_seconds is not None  # 200 req/s over half a second


def test_the_error_gate_reports_its_numbers():
    result = error_rate_gate(window(7, 4), window(10_000, 10), **ERROR_ARGS)
    assert result.value == pytest.approx(4 / 7) and result.threshold == pytest.approx(0.001)
    assert "production 0.10% (10/10000)" in result.reason and "(4/7)" in result.reason


@pytest.mark.parametrize("gate", ["ceiling", "latency", "accuracy"])
def test_every_rate_gate_splits_alpha_over_the_stages(gate):
    def run(stages):
        if gate == "ceiling":
            return error_ceiling_gate(window(30, 7), ceiling_percent=5.0, alpha=0.05, stages=stages)
        if gate == "latency":
            return latency_gate(window(200, 0, slow=3), window(10_000, 0, slow=5), **LATENCY_ARGS, stages=stages)
        return accuracy_gate(window(labelled=200, correct=185), window(labelled=10_000, correct=9995),
                             tolerance=0.02, alpha=0.01, stages=stages)

    one, four = run(1), run(4)
    assert one.verdict is Verdict.FAIL, one.p_value
    assert four.verdict is not Verdict.FAIL, four.p_value


def test_default_power_keeps_a_few_clean_requests_from_passing():
    assert error_ceiling_gate(window(10, 0), ceiling_percent=5.0, alpha=0.01).verdict is Verdict.INCONCLUSIVE
    assert latency_gate(window(30, 0, slow=0), window(10_000, 0, slow=200), **LATENCY_ARGS).verdict \
        is Verdict.INCONCLUSIVE
    reference = window(labelled=5000, correct=4500)
    assert accuracy_gate(window(labelled=20, correct=18), reference, tolerance=0.02, alpha=0.05).verdict \
        is Verdict.INCONCLUSIVE


def test_the_latency_gate_reports_the_bound_and_productions_share():
    result = latency_gate(window(300, 0, slow=60), window(10_000, 0, slow=200), **LATENCY_ARGS)
    assert "over 500 ms" in result.reason and result.threshold == pytest.approx(0.02)
    assert "production 2.00% (200/10000)" in result.reason


@pytest.mark.parametrize(
    ("canary", "reference", "says"),
    [
        (window(labelled=None, correct=5), window(labelled=100, correct=90), "no labels for canary"),
        (window(labelled=10, correct=None), window(labelled=100, correct=90), "no labels for canary"),
        (window(labelled=10, correct=11), window(labelled=100, correct=90), "inconsistent"),
        (window(labelled=-1, correct=0), window(labelled=100, correct=90), "inconsistent"),
        (window(labelled=10, correct=-1), window(labelled=100, correct=90), "inconsistent"),
        (window(labelled=10, correct=9), window(labelled=0, correct=0), "no labels for reference"),
    ],
)
def test_accuracy_with_missing_or_broken_labels_is_inconclusive_and_says_why(canary, reference, says):
    result = accuracy_gate(canary, reference, tolerance=0.02, alpha=0.05)
    assert result.verdict is Verdict.INCONCLUSIVE and says in result.reason and not result.collecting


def test_accuracy_edge_counts():
    reference = window(labelled=5000, correct=4500)
    none_yet = accuracy_gate(window(labelled=0, correct=0), reference, tolerance=0.02, alpha=0.05)
    assert none_yet.collecting and none_yet.value is None and "canary accuracy - (0/0)" in none_yet.reason
    one_reference_label = accuracy_gate(window(labelled=10, correct=9), window(labelled=1, correct=1),
                                        tolerance=0.02, alpha=0.05)
    assert "no labels for reference" not in one_reference_label.reason
    # 1.5 points worse on 2,000 labels is no evidence of being within a 2-point tolerance yet.
    close = accuracy_gate(window(labelled=2000, correct=1770), reference, tolerance=0.02, alpha=0.05)
    assert close.verdict is Verdict.INCONCLUSIVE
    ok = accuracy_gate(window(labelled=1200, correct=1085), reference, tolerance=0.02, alpha=0.05)
    assert ok.verdict is Verdict.PASS and ok.expected_seconds == 0.0


def test_drift_and_custom_reasons_say_which_way():
    assert drift_gate(DriftInput(True)).reason == "inputs drifted"
    assert drift_gate(DriftInput(False)).reason == "no drift"
    spec = CustomGate("queue", "sum(q)", "<", 1)
    assert "meets" in custom_gate(spec, CustomReading("queue", 0.5)).reason
    assert "fails" in custom_gate(spec, CustomReading("queue", 2.0)).reason


def test_gate_policy_defaults_are_the_canary_policys():
    from opsctl.core.gates import GatePolicy

    assert GatePolicy() == CanaryPolicy(stages=[100.0]).gate_policy
    defaults = GatePolicy()
    assert (defaults.latency_gate, defaults.sla_gate, defaults.accuracy_gate, defaults.drift_gate) == (
        True, True, True, False)
    assert defaults.accuracy_tolerance == 0.02


def test_at_100_percent_not_applicable_results_are_not_collecting_and_missing_counts_do_not_crash():
    inputs = healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0,
                            quality_reference=window(labelled=5000, correct=4500))
    results = {r.name: r for r in evaluate_gates(FULL_POLICY.gate_policy, inputs).results}
    assert not results["error_rate"].collecting and not results["latency"].collecting
    empty = healthy_inputs(canary=VersionWindow(), production=NO_PRODUCTION, canary_weight=100.0)
    results = {r.name: r for r in evaluate_gates(FULL_POLICY.gate_policy, empty).results}
    assert results["error_rate"].verdict is Verdict.NOT_APPLICABLE and results["error_rate"].value is None
    unjudged = evaluate_gates(CanaryPolicy(accuracy_gate=False).gate_policy,
                              healthy_inputs(production=NO_PRODUCTION, canary_weight=100.0,
                                             sla_error_rate_percent=None))
    assert not next(r for r in unjudged.results if r.name == "error_rate").collecting


def test_a_custom_gate_without_a_reading_is_no_metrics_error():
    policy = CanaryPolicy(custom_gates=[{"name": "gpu", "query": "avg(gpu)", "comparator": "<", "threshold": 1}])
    evaluation = evaluate_gates(policy.gate_policy, healthy_inputs())
    assert not evaluation.metrics_error
    assert next(r for r in evaluation.results if r.name == "custom:gpu").verdict is Verdict.INCONCLUSIVE


def test_an_evaluation_defaults_to_no_metrics_error_and_says_when_nothing_ran():
    assert Evaluation(Verdict.INCONCLUSIVE).metrics_error is False
    assert Evaluation.from_json({"verdict": "inconclusive"}).metrics_error is False
    assert Evaluation.of([]).reason == "no gate produced a result"


# ---- the sla gate judges counts since the stage started, like the other gates


def _sla(**kw: object) -> SlaInput:
    return SlaInput("degraded", ("p99 latency 1.8 s > 1 s",), error_rate_percent=1.0, latency_bound_seconds=0.5,
                    **kw)  # type: ignore[arg-type]


def test_sla_gate_does_not_fail_a_healthy_canary_on_a_noisy_p99_at_30_requests() -> None:
    # 30 requests, one of them slow (3.3 %, within the 5 % a p95 bound allows): its interpolated
    # p99 is far above the bound and the status says degraded, but the counts are no evidence.
    canary = VersionWindow(requests=30, errors=0, slow=1, p95_seconds=0.45, p99_seconds=1.8)
    result = sla_gate(_sla(), canary, stage_seconds=30.0)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.collecting and result.sample_size == 30
    # A few hundred requests later it has what it needs and says when it expects to pass.
    later = sla_gate(_sla(), VersionWindow(requests=200, errors=0, slow=5), stage_seconds=100.0)
    assert later.verdict is Verdict.INCONCLUSIVE and later.collecting
    assert later.sample_needed is not None and later.sample_needed > 200
    assert later.expected_seconds == pytest.approx((later.sample_needed - 200) / 2.0)


def test_sla_gate_fails_4_of_7_errors_against_a_1_percent_sla_at_the_first_look() -> None:
    result = sla_gate(_sla(), VersionWindow(requests=7, errors=4, slow=0), stages=3)
    assert result.verdict is Verdict.FAIL
    assert "error rate" in result.reason
    assert result.p_value is not None and result.p_value < 0.01 / 3


def test_sla_gate_p_values_match_scipy_binomtest() -> None:
    canary = VersionWindow(requests=7, errors=4, slow=0)
    result = sla_gate(_sla(), canary)
    expected = binomtest(4, 7, 0.01, alternative="greater").pvalue
    assert result.exact_p_value == pytest.approx(expected, abs=1e-9)
    slow = VersionWindow(requests=60, errors=0, slow=15)
    result = sla_gate(_sla(), slow)
    assert result.verdict is Verdict.FAIL and "over 500 ms" in result.reason
    expected = binomtest(15, 60, 0.05, alternative="greater").pvalue
    assert result.exact_p_value == pytest.approx(expected, abs=1e-9)


def test_sla_gate_passes_on_evidence_and_missing_buckets_are_inconclusive() -> None:
    healthy = VersionWindow(requests=3000, errors=2, slow=60)  # 0.07 % errors, 2 % slow
    assert sla_gate(_sla(), healthy).verdict is Verdict.PASS
    no_buckets = VersionWindow(requests=3000, errors=2)
    result = sla_gate(_sla(), no_buckets)
    assert result.verdict is Verdict.INCONCLUSIVE and "latency-bucket" in result.reason


def test_sla_gate_splits_alpha_over_its_two_checks() -> None:
    # 4 errors in 31 requests against a 1 % ceiling: always-valid p = 0.0064, between alpha/2 and alpha.
    canary = VersionWindow(requests=31, errors=4, slow=0)
    errors_only = sla_gate(SlaInput(error_rate_percent=1.0), canary, alpha=0.01)
    both = sla_gate(SlaInput(error_rate_percent=1.0, latency_bound_seconds=0.5), canary, alpha=0.01)
    assert errors_only.verdict is Verdict.FAIL
    assert 0.005 < errors_only.p_value < 0.01
    # With latency checked too, each check runs at alpha / 2, so the gate's own error stays within alpha.
    assert both.verdict is not Verdict.FAIL, both.reason

