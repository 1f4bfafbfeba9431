"""A/B statistics: agreement with statsmodels, the chapter's numbers, and the peeking simulation."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from opsctl.core.abtest import (
    Alternative,
    Decision,
    SequentialTest,
    ZTestResult,
    power_two_proportions,
    sample_size_per_group,
    two_proportion_ztest,
)
from opsctl.errors import UsageError

# --------------------------------------------------------------------------- z-test

COUNT_GRID = [
    (2000, 10_000, 220, 1000),  # the chapter's example
    (200, 1000, 200, 1000),
    (50, 1000, 80, 1000),
    (80, 1000, 50, 1000),
    (1, 30, 9, 40),
    (0, 500, 3, 500),
    (999, 1000, 990, 1000),
    (12_345, 100_000, 12_600, 100_500),
    (7, 7, 3, 9),
]


@pytest.mark.parametrize("alternative", list(Alternative))
@pytest.mark.parametrize(("cs", "ct", "ts", "tt"), COUNT_GRID)
def test_ztest_matches_statsmodels_pooled(cs: int, ct: int, ts: int, tt: int, alternative: Alternative) -> None:
    result = two_proportion_ztest(cs, ct, ts, tt, alternative=alternative)
    # statsmodels' "larger" means prop1 > prop2: treatment first.
    z_ref, p_ref = proportions_ztest([ts, cs], [tt, ct], alternative=alternative.value)
    assert result.z == pytest.approx(float(z_ref), rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(float(p_ref), rel=1e-7, abs=1e-15)
    assert result.significant == (float(p_ref) < 0.05)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize(("cs", "ct", "ts", "tt"), COUNT_GRID)
def test_two_sided_interval_is_statsmodels_wald_interval(cs: int, ct: int, ts: int, tt: int, alpha: float) -> None:
    result = two_proportion_ztest(cs, ct, ts, tt, alpha=alpha)
    low, high = confint_proportions_2indep(ts, tt, cs, ct, method="wald", compare="diff", alpha=alpha)
    assert result.ci_low == pytest.approx(max(-1.0, float(low)), abs=1e-12)
    assert result.ci_high == pytest.approx(min(1.0, float(high)), abs=1e-12)


def test_chapter_example_is_not_significant_and_reports_lift() -> None:
    # The chapter's 20 % vs 22 % with 10 000 vs 1 000 users: a 10 % lift that the data cannot confirm.
    result = two_proportion_ztest(2000, 10_000, 220, 1000)
    assert result.control_rate == pytest.approx(0.20)
    assert result.treatment_rate == pytest.approx(0.22)
    assert result.difference == pytest.approx(0.02)
    assert result.relative_lift == pytest.approx(0.10)
    assert result.p_value == pytest.approx(0.13298, abs=1e-5)
    assert not result.significant
    assert result.ci_low < 0 < result.ci_high


def test_one_sided_interval_matches_one_sided_test() -> None:
    larger = two_proportion_ztest(200, 1000, 240, 1000, alternative="larger")
    assert larger.ci_high == 1.0
    assert larger.significant and larger.ci_low > 0
    smaller = two_proportion_ztest(200, 1000, 240, 1000, alternative=Alternative.SMALLER)
    assert smaller.ci_low == -1.0
    assert not smaller.significant and smaller.ci_high > 0
    assert larger.p_value + smaller.p_value == pytest.approx(1.0)


def test_degenerate_counts_give_no_evidence_instead_of_nan() -> None:
    for cs, ct, ts, tt in [(0, 100, 0, 50), (100, 100, 50, 50)]:
        result = two_proportion_ztest(cs, ct, ts, tt)
        assert result.z == 0.0 and result.p_value == 1.0 and not result.significant
    assert two_proportion_ztest(0, 100, 5, 100).relative_lift is None


def test_numpy_integer_counts_are_accepted_as_plain_ints() -> None:
    counts = np.array([200, 1000, 240, 1000], dtype=np.int64)
    result = two_proportion_ztest(*counts)
    assert result == two_proportion_ztest(200, 1000, 240, 1000)
    assert type(result.control_total) is int
    state = SequentialTest.start().update(
        control_successes=counts[0], control_total=counts[1], treatment_successes=counts[2], treatment_total=counts[3]
    )
    assert type(state.treatment_total) is int and json.dumps(state.to_json())


def test_ztest_result_to_json_is_plain_json() -> None:
    result = two_proportion_ztest(0, 100, 5, 100, alternative="larger")
    data = json.loads(json.dumps(result.to_json()))
    assert data["alternative"] == "larger"
    assert data["relative_lift"] is None
    assert set(data) == set(ZTestResult.__dataclass_fields__)


@settings(derandomize=True)  # the same examples on every run, in CI too
@given(
    ct=st.integers(1, 5000),
    tt=st.integers(1, 5000),
    cf=st.floats(0, 1),
    tf=st.floats(0, 1),
)
def test_swapping_arms_negates_z_and_keeps_two_sided_p(ct: int, tt: int, cf: float, tf: float) -> None:
    cs, ts = round(cf * ct), round(tf * tt)
    forward = two_proportion_ztest(cs, ct, ts, tt)
    backward = two_proportion_ztest(ts, tt, cs, ct)
    assert backward.z == pytest.approx(-forward.z, abs=1e-9)
    assert backward.p_value == pytest.approx(forward.p_value, abs=1e-12)
    assert 0.0 <= forward.p_value <= 1.0
    assert -1.0 <= forward.ci_low <= forward.difference <= forward.ci_high <= 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "names"),
    [
        ((11, 10, 1, 10), {}, "control_successes"),
        ((1, 10, 11, 10), {}, "treatment_successes"),
        ((0, 0, 1, 10), {}, "control_total"),
        ((1, 10, 0, 0), {}, "treatment_total"),
        ((-1, 10, 1, 10), {}, "control_successes"),
        ((1.5, 10, 1, 10), {}, "control_successes"),
        ((1, 10, 1, 10), {"alpha": 0.0}, "alpha"),
        ((1, 10, 1, 10), {"alpha": 1.0}, "alpha"),
        ((1, 10, 1, 10), {"alternative": "bigger"}, "alternative"),
    ],
)
def test_ztest_rejects_invalid_input_naming_the_argument(args: tuple, kwargs: dict, names: str) -> None:
    with pytest.raises(UsageError, match=names):
        two_proportion_ztest(*args, **kwargs)


# --------------------------------------------------------------------------- sample size and power


def test_chapter_sample_size_case() -> None:
    # 20 % baseline, 10 % relative lift (22 %), alpha 0.05 two-sided, power 0.8.
    # statsmodels: NormalIndPower().solve_power(proportion_effectsize(0.22, 0.20), alpha=0.05,
    # power=0.8, ratio=1) = 6507.33 -> 6508 per group. (The chapter's pooled-variance formula
    # prints 6511.)
    reference = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(0.22, 0.20), alpha=0.05, power=0.8, ratio=1.0
    )
    assert reference == pytest.approx(6507.33, abs=0.01)
    assert sample_size_per_group(0.20, 0.10, alpha=0.05, power=0.8) == 6508 == math.ceil(reference)


SIZE_GRID = list(
    itertools.product(
        [0.01, 0.05, 0.2, 0.5, 0.8],
        [0.05, 0.1, 0.3, -0.1],
        [0.01, 0.05],
        [0.8, 0.9],
        list(Alternative),
    )
)


@pytest.mark.parametrize(("baseline", "mde", "alpha", "power", "alternative"), SIZE_GRID)
def test_sample_size_matches_statsmodels(
    baseline: float, mde: float, alpha: float, power: float, alternative: Alternative
) -> None:
    if (alternative is Alternative.LARGER and mde < 0) or (alternative is Alternative.SMALLER and mde > 0):
        with pytest.raises(UsageError, match="mde_relative"):
            sample_size_per_group(baseline, mde, alpha=alpha, power=power, alternative=alternative)
        return
    treatment = baseline * (1 + mde)
    if treatment >= 1.0:
        with pytest.raises(UsageError, match="mde_relative"):
            sample_size_per_group(baseline, mde, alpha=alpha, power=power, alternative=alternative)
        return
    h = proportion_effectsize(treatment, baseline)
    reference = NormalIndPower().solve_power(
        effect_size=h, alpha=alpha, power=power, ratio=1.0, alternative=alternative.value
    )
    n = sample_size_per_group(baseline, mde, alpha=alpha, power=power, alternative=alternative)
    assert n == math.ceil(reference)
    # And it is the smallest such n, by statsmodels' own power function.
    solver = NormalIndPower()
    assert solver.power(h, n, alpha, ratio=1.0, alternative=alternative.value) >= power
    if n > 1:
        assert solver.power(h, n - 1, alpha, ratio=1.0, alternative=alternative.value) < power


@pytest.mark.parametrize("alternative", list(Alternative))
@pytest.mark.parametrize(
    ("baseline", "treatment", "n"),
    [(0.2, 0.22, 6508), (0.2, 0.22, 1000), (0.05, 0.04, 20_000), (0.5, 0.7, 50), (0.9, 0.91, 3)],
)
def test_power_matches_statsmodels(baseline: float, treatment: float, n: int, alternative: Alternative) -> None:
    reference = NormalIndPower().power(
        proportion_effectsize(treatment, baseline), n, 0.05, ratio=1.0, alternative=alternative.value
    )
    assert power_two_proportions(baseline, treatment, n, alternative=alternative) == pytest.approx(
        float(reference), rel=1e-9, abs=1e-15
    )


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: sample_size_per_group(0.0, 0.1), "baseline"),
        (lambda: sample_size_per_group(1.0, 0.1), "baseline"),
        (lambda: sample_size_per_group(0.2, 0.0), "mde_relative"),
        (lambda: sample_size_per_group(0.6, 1.0), "mde_relative"),
        (lambda: sample_size_per_group(0.2, 0.1, alpha=1.5), "alpha"),
        (lambda: sample_size_per_group(0.2, 0.1, power=1.0), "power"),
        (lambda: power_two_proportions(0.2, 1.2, 100), "treatment"),
        (lambda: power_two_proportions(0.2, 0.3, 0), "n_per_group"),
        (lambda: power_two_proportions(0.2, 0.3, 10, alpha=-0.1), "alpha"),
    ],
)
def test_size_and_power_reject_invalid_input_naming_the_argument(call, name: str) -> None:
    with pytest.raises(UsageError, match=name):
        call()


# --------------------------------------------------------------------------- sequential test


def _simulate(
    p_control: float, p_treatment: float, *, sims: int, looks: int, batch: int, seed: int
) -> tuple[float, float, float]:
    """Share of experiments where (naive z-test at any look, sequential test, CS misses truth) fires."""
    rng = np.random.default_rng(seed)
    control = rng.binomial(batch, p_control, size=(sims, looks)).cumsum(axis=1)
    treatment = rng.binomial(batch, p_treatment, size=(sims, looks)).cumsum(axis=1)
    truth = p_treatment - p_control
    naive = sequential = miss = 0
    for i in range(sims):
        state = SequentialTest.start(alpha=0.05, tau=0.02)
        naive_fired = cs_missed = False
        for k in range(looks):
            n = batch * (k + 1)
            c, t = int(control[i, k]), int(treatment[i, k])
            naive_fired = naive_fired or two_proportion_ztest(c, n, t, n).significant
            state = state.at_totals(control_successes=c, control_total=n, treatment_successes=t, treatment_total=n)
            cs_missed = cs_missed or not (state.ci_low <= truth <= state.ci_high)
        naive += naive_fired
        sequential += state.decision is Decision.REJECT
        miss += cs_missed
    return naive / sims, sequential / sims, miss / sims


def test_peeking_inflates_naive_z_test_but_not_the_sequential_test() -> None:
    # No effect: both arms convert at 20 %; 20 looks, 500 more users per arm between looks.
    naive, sequential, cs_miss = _simulate(0.20, 0.20, sims=2000, looks=20, batch=500, seed=20260101)
    # Measured with this seed: naive 0.2555, sequential 0.0125, confidence sequence missed 0 in 0.0125.
    assert naive > 0.15  # five times the 5 % the analyst thinks they run at
    assert sequential <= 0.05
    assert cs_miss <= 0.05


def test_sequential_test_detects_a_real_effect() -> None:
    # 20 % -> 22 % (the chapter's 10 % lift), same schedule: 10 000 users per arm at the end.
    _naive, sequential, cs_miss = _simulate(0.20, 0.22, sims=1000, looks=20, batch=500, seed=7)
    # Measured with this seed: power 0.723, CS missed 0.02 in 0.010 (a fixed-horizon test at
    # n = 10 000 per arm has power 0.935).
    assert sequential >= 0.65
    assert cs_miss <= 0.05


def test_sequential_state_is_monotone_and_counts_accumulate() -> None:
    state = SequentialTest.start(alpha=0.05, tau=0.05, min_samples_per_group=50)
    rng = np.random.default_rng(3)
    previous = state
    for _ in range(30):
        state = state.update(
            control_successes=int(rng.binomial(40, 0.2)),
            control_total=40,
            treatment_successes=int(rng.binomial(40, 0.3)),
            treatment_total=40,
        )
        assert state.always_valid_p_value <= previous.always_valid_p_value
        assert previous.ci_low <= state.ci_low <= state.ci_high <= previous.ci_high
        previous = state
    assert state.control_total == state.treatment_total == 1200
    assert state.looks == 29  # the first update (40 per arm) is below min_samples_per_group
    assert state.decision is Decision.REJECT and state.ci_low > 0


def test_update_and_at_totals_agree_and_backwards_counters_are_refused() -> None:
    start = SequentialTest.start(min_samples_per_group=10)
    by_increment = start.update(
        control_successes=20, control_total=100, treatment_successes=30, treatment_total=100
    ).update(control_successes=25, control_total=100, treatment_successes=35, treatment_total=100)
    by_totals = start.at_totals(
        control_successes=20, control_total=100, treatment_successes=30, treatment_total=100
    ).at_totals(control_successes=45, control_total=200, treatment_successes=65, treatment_total=200)
    assert by_increment == by_totals
    with pytest.raises(UsageError, match="control_total went backwards"):
        by_totals.at_totals(control_successes=45, control_total=150, treatment_successes=65, treatment_total=200)


def test_nothing_is_decided_below_the_minimum_sample() -> None:
    state = SequentialTest.start(min_samples_per_group=100).update(
        control_successes=0, control_total=99, treatment_successes=99, treatment_total=99
    )
    assert state.decision is Decision.CONTINUE and state.always_valid_p_value == 1.0 and state.looks == 0
    assert state.difference == pytest.approx(1.0)


def test_huge_effect_does_not_overflow() -> None:
    state = SequentialTest.start().update(
        control_successes=0, control_total=100_000, treatment_successes=100_000, treatment_total=100_000
    )
    assert state.decision is Decision.REJECT and state.always_valid_p_value == 0.0
    assert state.ci_low <= 1.0 <= state.ci_high


def test_sequential_state_round_trips_through_json() -> None:
    state = SequentialTest.start(alpha=0.1, tau=0.03).update(
        control_successes=300, control_total=1000, treatment_successes=360, treatment_total=1000
    )
    data = json.loads(json.dumps(state.to_json()))
    assert data["decision"] == state.decision.value
    assert SequentialTest.from_json(data) == state
    with pytest.raises(UsageError, match="not a saved sequential test state"):
        SequentialTest.from_json({"alpha": 0.05})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"tau": 0.0}, "tau"),
        ({"min_samples_per_group": 0}, "min_samples_per_group"),
    ],
)
def test_sequential_rejects_invalid_settings(kwargs: dict, name: str) -> None:
    with pytest.raises(UsageError, match=name):
        SequentialTest.start(**kwargs)


def test_sequential_update_rejects_invalid_counts() -> None:
    with pytest.raises(UsageError, match="treatment_successes"):
        SequentialTest.start().update(control_successes=1, control_total=10, treatment_successes=11, treatment_total=10)


# --------------------------------------------------------------------------- exact values at chosen points


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize(("cs", "ct", "ts", "tt"), COUNT_GRID)
def test_one_sided_intervals_are_statsmodels_wald_bounds_by_value(
    cs: int, ct: int, ts: int, tt: int, alpha: float
) -> None:
    # A one-sided 1 - alpha bound is the matching end of the two-sided 1 - 2 alpha interval.
    low, high = confint_proportions_2indep(ts, tt, cs, ct, method="wald", compare="diff", alpha=2 * alpha)
    larger = two_proportion_ztest(cs, ct, ts, tt, alpha=alpha, alternative="larger")
    assert larger.ci_low == pytest.approx(max(-1.0, float(low)), abs=1e-12)
    assert larger.ci_high == 1.0
    smaller = two_proportion_ztest(cs, ct, ts, tt, alpha=alpha, alternative="smaller")
    assert smaller.ci_low == -1.0
    assert smaller.ci_high == pytest.approx(min(1.0, float(high)), abs=1e-12)


def test_p_values_far_in_the_tail_match_scipy_relatively() -> None:
    result = two_proportion_ztest(50, 1000, 200, 1000, alternative="larger")
    assert result.z > 9
    assert result.p_value == pytest.approx(float(norm.sf(result.z)), rel=1e-9)
    assert result.p_value > 0.0  # 1 - cdf would have said 0
    two_sided = two_proportion_ztest(50, 1000, 200, 1000)
    assert two_sided.p_value == pytest.approx(2 * float(norm.sf(abs(two_sided.z))), rel=1e-9)
    assert two_proportion_ztest(200, 1000, 200, 1000).p_value == 1.0


def test_rates_difference_and_lift_with_a_non_zero_control_rate() -> None:
    result = two_proportion_ztest(300, 1200, 260, 800)
    assert (result.control_rate, result.treatment_rate) == (0.25, 0.325)
    assert result.difference == pytest.approx(0.075, abs=1e-15)
    assert result.relative_lift == pytest.approx(0.3, abs=1e-12)
    state = SequentialTest.start().update(
        control_successes=300, control_total=1200, treatment_successes=260, treatment_total=800
    )
    assert (state.control_rate, state.treatment_rate) == (0.25, 0.325)
    assert state.difference == pytest.approx(0.075, abs=1e-15)
    assert SequentialTest.start().difference is None
    one_arm = SequentialTest.start().update(control_successes=3, control_total=10, treatment_successes=0,
                                            treatment_total=0)
    assert (one_arm.control_rate, one_arm.treatment_rate, one_arm.difference) == (0.3, None, None)


def _msprt_reference(cs: int, ct: int, ts: int, tt: int, tau: float, alpha: float) -> tuple[float, float, float]:
    """The docstring's mSPRT written out independently: (p now, CS low, CS high) for one look.

    The confidence sequence's ends are found numerically (Λ(θ) = 1/alpha by root finding), not with
    the closed form the module uses."""
    d = ts / tt - cs / ct
    pc, pt = (cs + 0.5) / (ct + 1), (ts + 0.5) / (tt + 1)
    v = pc * (1 - pc) / ct + pt * (1 - pt) / tt

    def log_lambda(theta: float) -> float:
        return 0.5 * math.log(v / (v + tau**2)) + tau**2 * (d - theta) ** 2 / (2 * v * (v + tau**2))

    p_now = min(1.0, math.exp(-log_lambda(0.0)))
    target = math.log(1 / alpha)
    low = brentq(lambda t: log_lambda(t) - target, -10.0, d)
    high = brentq(lambda t: log_lambda(t) - target, d, 10.0)
    return p_now, max(-1.0, low), min(1.0, high)


@pytest.mark.parametrize(
    ("counts", "tau", "alpha"),
    [
        ((200, 1000, 230, 1000), 0.05, 0.05),  # log Λ(0) in (0, 1): p = exp(-log Λ) is about 0.9
        ((200, 1000, 260, 1000), 0.05, 0.05),  # clear effect: p well below alpha
        ((200, 1000, 250, 1000), 0.02, 0.1),
        ((300, 1200, 260, 800), 0.05, 0.05),  # unequal arms, non-zero control rate
        ((0, 150, 12, 150), 0.03, 0.05),  # an arm with no successes yet
    ],
)
def test_always_valid_p_value_and_confidence_sequence_match_the_formula(
    counts: tuple[int, int, int, int], tau: float, alpha: float
) -> None:
    cs, ct, ts, tt = counts
    state = SequentialTest.start(alpha=alpha, tau=tau).at_totals(
        control_successes=cs, control_total=ct, treatment_successes=ts, treatment_total=tt
    )
    p_now, low, high = _msprt_reference(cs, ct, ts, tt, tau, alpha)
    assert state.always_valid_p_value == pytest.approx(p_now, rel=1e-12)
    assert state.ci_low == pytest.approx(low, abs=1e-9)
    assert state.ci_high == pytest.approx(high, abs=1e-9)
    assert state.decision is (Decision.REJECT if p_now < alpha else Decision.CONTINUE)
    assert state.looks == 1


def test_docstring_point_has_a_p_value_strictly_between_exp_minus_one_and_one() -> None:
    # Λ(0) is above 1 but below e here: the p-value is 1/Λ, not rounded up to 1.
    state = SequentialTest.start(alpha=0.05, tau=0.05).update(
        control_successes=200, control_total=1000, treatment_successes=230, treatment_total=1000
    )
    p_now, _, _ = _msprt_reference(200, 1000, 230, 1000, 0.05, 0.05)
    assert math.exp(-1) < p_now < 1.0
    assert state.always_valid_p_value == pytest.approx(p_now, rel=1e-12)
    assert round(state.always_valid_p_value, 2) == 0.9


def test_no_evidence_gives_a_p_value_of_exactly_one() -> None:
    # With no observed difference Λ(0) = sqrt(V / (V + tau^2)) < 1: the p-value is capped at 1.
    state = SequentialTest.start().at_totals(
        control_successes=200, control_total=1000, treatment_successes=200, treatment_total=1000
    )
    assert state.always_valid_p_value == 1.0 and state.looks == 1
    _, low, high = _msprt_reference(200, 1000, 200, 1000, 0.05, 0.05)
    assert (state.ci_low, state.ci_high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def test_the_p_value_is_the_running_minimum_and_the_sequence_the_running_intersection() -> None:
    first = SequentialTest.start(alpha=0.05, tau=0.05).at_totals(
        control_successes=200, control_total=1000, treatment_successes=260, treatment_total=1000
    )
    second = first.at_totals(control_successes=400, control_total=2000, treatment_successes=440,
                             treatment_total=2000)
    p_first, low_first, high_first = _msprt_reference(200, 1000, 260, 1000, 0.05, 0.05)
    p_second, low_second, high_second = _msprt_reference(400, 2000, 440, 2000, 0.05, 0.05)
    assert p_second > p_first  # the second look alone is weaker evidence...
    assert second.always_valid_p_value == pytest.approx(p_first, rel=1e-12)  # ...but the first look stands
    assert second.ci_low == pytest.approx(max(low_first, low_second), abs=1e-9)
    assert second.ci_high == pytest.approx(min(high_first, high_second), abs=1e-9)
    assert second.looks == 2


def test_exactly_min_samples_per_group_is_a_look() -> None:
    state = SequentialTest.start(min_samples_per_group=100)
    at_min = state.at_totals(control_successes=10, control_total=100, treatment_successes=40, treatment_total=100)
    assert at_min.looks == 1 and at_min.always_valid_p_value < 1.0
    one_short = state.at_totals(control_successes=10, control_total=100, treatment_successes=40,
                                treatment_total=99)
    assert one_short.looks == 0 and one_short.always_valid_p_value == 1.0
    assert (one_short.ci_low, one_short.ci_high) == (-1.0, 1.0)


def test_sequential_defaults_and_to_json_are_exact() -> None:
    start = SequentialTest.start()
    assert (start.alpha, start.tau, start.min_samples_per_group) == (0.05, 0.05, 100)
    assert SequentialTest() == start
    state = start.update(control_successes=300, control_total=1200, treatment_successes=260, treatment_total=800)
    assert state.to_json() == {
        "alpha": 0.05,
        "tau": 0.05,
        "min_samples_per_group": 100,
        "control_successes": 300,
        "control_total": 1200,
        "treatment_successes": 260,
        "treatment_total": 800,
        "control_rate": 0.25,
        "treatment_rate": 0.325,
        "difference": state.difference,
        "always_valid_p_value": state.always_valid_p_value,
        "ci_low": state.ci_low,
        "ci_high": state.ci_high,
        "looks": 1,
        "decision": "reject",
    }


def test_significant_and_reject_mean_strictly_below_alpha() -> None:
    first = two_proportion_ztest(200, 1000, 240, 1000)
    at_alpha = two_proportion_ztest(200, 1000, 240, 1000, alpha=first.p_value)
    assert at_alpha.p_value == at_alpha.alpha and not at_alpha.significant
    state = SequentialTest.start().at_totals(control_successes=200, control_total=1000, treatment_successes=260,
                                              treatment_total=1000)
    tied = SequentialTest.start(alpha=state.always_valid_p_value).at_totals(
        control_successes=200, control_total=1000, treatment_successes=260, treatment_total=1000
    )
    assert tied.always_valid_p_value == tied.alpha and tied.decision is Decision.CONTINUE


def test_sample_size_is_at_least_one_when_even_one_user_has_the_power() -> None:
    # Two-sided at alpha 0.05, a single user per arm already has power 0.05 >= 0.04.
    assert sample_size_per_group(0.2, 0.1, alpha=0.05, power=0.04) == 1
    # Power must exceed the size of one tail: 0.025 for a two-sided test at 0.05, 0.05 one-sided.
    for power, alternative in ((0.025, "two-sided"), (0.02, "two-sided"), (0.05, "larger")):
        with pytest.raises(UsageError, match="power must exceed the test's size"):
            sample_size_per_group(0.2, 0.1, alpha=0.05, power=power, alternative=alternative)
    assert sample_size_per_group(0.2, 0.1, alpha=0.05, power=0.026) == 1


@pytest.mark.parametrize(("baseline", "mde"), [(0.5, 1.0), (0.2, -1.0)])
def test_mde_putting_the_treatment_rate_at_zero_or_one_is_refused(baseline: float, mde: float) -> None:
    with pytest.raises(UsageError, match=r"outside \(0, 1\)"):
        sample_size_per_group(baseline, mde)


@pytest.mark.parametrize("mde", [math.inf, -math.inf, math.nan, 0, 0.0])
def test_mde_must_be_a_finite_non_zero_number(mde: float) -> None:
    with pytest.raises(UsageError, match="mde_relative must be a non-zero relative change"):
        sample_size_per_group(0.2, mde)


def test_power_with_one_user_per_arm_matches_statsmodels() -> None:
    reference = NormalIndPower().power(proportion_effectsize(0.7, 0.5), 1, 0.05, ratio=1.0)
    assert power_two_proportions(0.5, 0.7, 1) == pytest.approx(float(reference), rel=1e-9)


def test_min_samples_per_group_must_be_a_positive_integer() -> None:
    assert SequentialTest.start(min_samples_per_group=1).min_samples_per_group == 1
    for bad in (True, 2.5, 0, -3):
        with pytest.raises(UsageError, match="min_samples_per_group"):
            SequentialTest.start(min_samples_per_group=bad)  # type: ignore[arg-type]


def test_an_update_or_reading_may_bring_nothing_new_for_one_arm() -> None:
    state = SequentialTest.start(min_samples_per_group=10)
    state = state.update(control_successes=0, control_total=0, treatment_successes=5, treatment_total=20)
    state = state.update(control_successes=4, control_total=20, treatment_successes=0, treatment_total=0)
    assert (state.control_total, state.treatment_total, state.looks) == (20, 20, 1)
    empty = SequentialTest.start().at_totals(control_successes=0, control_total=0, treatment_successes=0,
                                             treatment_total=0)
    assert empty == SequentialTest.start()
    one_arm = SequentialTest.start().at_totals(control_successes=3, control_total=50, treatment_successes=0,
                                               treatment_total=0)
    assert (one_arm.control_total, one_arm.treatment_total, one_arm.looks) == (50, 0, 0)


def test_a_resumed_interval_that_shrank_to_a_point_stays_there_and_a_disjoint_one_moves_to_the_estimate() -> None:
    # Saved states come back through from_json; their interval is whatever the earlier looks left.
    point = SequentialTest(ci_low=0.04, ci_high=0.04)  # inside this look's interval, not its estimate (0.05)
    kept = point.at_totals(control_successes=200, control_total=1000, treatment_successes=250, treatment_total=1000)
    assert (kept.ci_low, kept.ci_high) == (0.04, 0.04)
    far = SequentialTest(ci_low=0.5, ci_high=0.6)
    moved = far.at_totals(control_successes=200, control_total=1000, treatment_successes=250, treatment_total=1000)
    assert moved.ci_low == moved.ci_high == pytest.approx(0.05, abs=1e-15)
