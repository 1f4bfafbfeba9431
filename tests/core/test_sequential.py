"""Exact and sequential rate tests: p-values against scipy, SPRT numbers against Wald's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from opsctl.core.sequential import (
    MIXTURE_SIZE,
    always_valid_p,
    binomial_sf,
    compare_to_ceiling,
    compare_to_reference,
    conditional_p_value,
    describe_seconds,
    drift_per_trial,
    expected_seconds,
    log_mixture_lr,
    pass_bound,
    sprt_llr,
    wald_asn,
)

ARGS = {"alpha_fail": 0.0025, "alpha": 0.01, "beta": 0.2, "margin_relative": 1.0, "margin_floor": 0.001}
CEILING_ARGS = {"alpha_fail": 0.0025, "alpha": 0.01, "beta": 0.2, "margin_relative": 1.0}


@pytest.mark.parametrize(
    ("x", "n", "p"),
    [(4, 7, 0.01), (0, 10, 0.3), (1, 1, 0.5), (2, 200, 0.01), (12, 200, 0.05), (30, 1000, 0.02), (500, 1000, 0.5),
     (3, 5000, 0.001), (5, 5000, 0.001), (40, 100_000, 0.0005), (7, 20, 0.9), (20, 20, 0.9), (1, 50, 0.001)],
)
def test_binomial_sf_matches_scipy_binomtest(x, n, p):
    expected = binomtest(x, n, p, alternative="greater").pvalue if x else 1.0
    assert binomial_sf(x, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_binomial_sf_over_a_random_grid_matches_scipy_to_1e_9():
    rng = np.random.default_rng(14)
    for _ in range(300):
        n = int(rng.integers(1, 20_000))
        p = float(10 ** rng.uniform(-4, -0.05))
        x = int(rng.integers(0, n + 1)) if rng.random() < 0.3 else int(min(n, rng.poisson(n * p * 1.5) + 1))
        assert abs(binomial_sf(x, n, p) - float(binom.sf(x - 1, n, p))) <= 1e-9, (x, n, p)


def test_conditional_p_value_is_the_exact_binomial_test_on_the_pooled_errors():
    # The cases: 4/7 against 10/10,000 and 2/200 against 4/3,800.
    for xc, nc, xp, np_ in ((4, 7, 10, 10_000), (2, 200, 4, 3800), (0, 100, 5, 1000), (9, 1000, 3, 900)):
        expected = binomtest(xc, xc + xp, nc / (nc + np_), alternative="greater").pvalue if xc else 1.0
        assert conditional_p_value(xc, nc, xp, np_) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_log_mixture_lr_is_the_average_of_its_likelihood_ratios():
    x, n, p0, r = 6, 40, 0.05, 2.0
    ratios = []
    for j in range(MIXTURE_SIZE):
        odds = r * 2**j * p0 / (1 - p0)
        p1 = odds / (1 + odds)
        ratios.append(binom.pmf(x, n, p1) / binom.pmf(x, n, p0))
    assert log_mixture_lr(x, n, p0, r) == pytest.approx(math.log(np.mean(ratios)), rel=1e-9)
    assert always_valid_p(log_mixture_lr(x, n, p0, r)) == pytest.approx(1 / np.mean(ratios), rel=1e-9)
    assert always_valid_p(-1.0) == 1.0 and always_valid_p(0.0) == 1.0


def test_sprt_llr_and_wald_bounds_follow_the_formulas():
    assert sprt_llr(3, 1000, 0.001, 0.002) == pytest.approx(
        math.log(binom.pmf(3, 1000, 0.002) / binom.pmf(3, 1000, 0.001)), rel=1e-9)
    assert pass_bound(0.01, 0.2) == pytest.approx(math.log(0.2 / 0.99))
    # Wald's ASN under H0 for 0.1 % against 0.2 %, alpha 0.01, power 0.8: about 5,000 requests.
    kl = 0.001 * math.log(2) + 0.999 * math.log(0.998 / 0.999)
    expected = (0.01 * math.log(0.8 / 0.01) + 0.99 * math.log(0.2 / 0.99)) / kl
    assert wald_asn(0.001, 0.002, 0.01, 0.2) == pytest.approx(expected, rel=1e-12)
    assert 4900 < wald_asn(0.001, 0.002, 0.01, 0.2) < 5100
    assert drift_per_trial(0.001, 0.001, 0.002) == pytest.approx(kl, rel=1e-12)


def test_a_canary_at_four_of_seven_errors_fails_at_once_against_production_and_the_ceiling():
    against_production = compare_to_reference(4, 7, 10, 10_000, **ARGS)
    against_ceiling = compare_to_ceiling(4, 7, 0.01, **CEILING_ARGS)
    assert against_production.fail and against_ceiling.fail
    assert against_ceiling.p_value == pytest.approx(binomtest(4, 7, 0.01, alternative="greater").pvalue, rel=1e-9)


def test_two_of_two_hundred_against_four_of_3800_is_no_failure_on_either_test():
    against_production = compare_to_reference(2, 200, 4, 3800, **ARGS)
    against_ceiling = compare_to_ceiling(2, 200, 0.01, **CEILING_ARGS)
    assert not against_production.fail and not against_ceiling.fail
    assert not against_production.passed and not against_ceiling.passed  # nor is it evidence of health


def test_a_clean_canary_passes_near_walds_sample_and_says_when():
    # Production at 0.1 %: the SPRT of 0.1 % against 0.2 % passes a canary with no errors after
    # log(beta/(1-alpha)) / log((1-p1)/(1-p0)) requests.
    decision = compare_to_reference(0, 100, 100, 100_000, **ARGS)
    assert not decision.passed and decision.needed is not None
    p0 = 100.5 / 100_001
    p1 = 2 * p0
    assert decision.needed == 100 + math.ceil((decision.llr - pass_bound(0.01, 0.2)) / -drift_per_trial(p0, p0, p1))
    there = compare_to_reference(0, 2000, 100, 100_000, **ARGS)
    assert there.passed and there.needed == 2000
    # A canary at twice production's rate is expected never to pass.
    worse = compare_to_reference(10, 5000, 100, 100_000, **ARGS)
    assert not worse.passed and not worse.fail and worse.llr > 0


def test_a_spotless_production_uses_the_margin_floor():
    decision = compare_to_reference(0, 3000, 0, 50_000, **ARGS)
    assert decision.margin_rate == pytest.approx(decision.reference_rate + 0.001)
    assert decision.passed
    assert not compare_to_reference(0, 100, 0, 50_000, **ARGS).passed


def test_the_ceiling_passes_a_clean_canary_and_holds_one_near_the_ceiling():
    assert compare_to_ceiling(1, 600, 0.01, **CEILING_ARGS).passed
    near = compare_to_ceiling(9, 1000, 0.01, **CEILING_ARGS)
    assert not near.passed and not near.fail and near.needed is None


def test_expected_seconds_and_their_description():
    assert expected_seconds(5000, 1000, 10.0) == 400.0
    assert expected_seconds(1000, 1000, 10.0) == 0.0
    assert expected_seconds(None, 1000, 10.0) is None
    assert expected_seconds(5000, 1000, 0.0) is None
    assert expected_seconds(5000, 1000, None) is None
    assert describe_seconds(40) == "~40 s" and describe_seconds(720) == "~12 min"
    assert describe_seconds(3 * 3600) == "~3.0 h"


@pytest.mark.parametrize("bad", [(-1, 10), (11, 10)])
def test_impossible_counts_are_refused(bad):
    with pytest.raises(ValueError):
        binomial_sf(*bad, 0.1)
    with pytest.raises(ValueError):
        log_mixture_lr(0, 10, 0.0, 2.0)


@pytest.mark.slow  # started first under xdist (tests/conftest.py)
def test_the_failing_mixture_keeps_its_error_under_continuous_looks():
    """Seeded simulation: 20,000 null paths looked at after every event never cross 1/alpha more than alpha."""
    rng = np.random.default_rng(7)
    alpha, p0, steps = 0.01, 0.05, 400
    bad = rng.random((20_000, steps)) < p0
    x = np.cumsum(bad, axis=1)
    n = np.arange(1, steps + 1)
    log_m = np.full(x.shape, -np.inf)
    terms = []
    for j in range(MIXTURE_SIZE):
        odds = 2.0 * 2**j * p0 / (1 - p0)
        p1 = odds / (1 + odds)
        terms.append(x * math.log(p1 / p0) + (n - x) * (math.log1p(-p1) - math.log1p(-p0)))
    log_m = np.logaddexp.reduce(np.stack(terms), axis=0) - math.log(MIXTURE_SIZE)
    crossed = (log_m >= math.log(1 / alpha)).any(axis=1).mean()
    assert crossed <= alpha
    # The scalar function agrees with this vectorised copy.
    assert log_mixture_lr(int(x[0, -1]), steps, p0, 2.0) == pytest.approx(log_m[0, -1], rel=1e-9)


@pytest.mark.parametrize(("bad", "trials", "level"), [(0, 50, 0.025), (5, 10_000, 0.005), (500, 5000, 0.025),
                                                       (39, 40, 0.05)])
def test_upper_confidence_bound_is_clopper_pearson(bad: int, trials: int, level: float) -> None:
    from scipy.stats import beta

    from opsctl.core.sequential import upper_confidence_bound

    assert upper_confidence_bound(bad, trials, level) == pytest.approx(beta.ppf(1 - level, bad + 1, trials - bad),
                                                                       abs=1e-9)
