"""Exact and sequential tests for canary decisions: fail fast on evidence, pass on evidence.

Pure standard library (``math``), so the gates and the CLI never load scipy; validated against
``scipy.stats.binomtest`` and Wald's formulas in ``tests/core/test_sequential.py``.

**Counts.** Every test here judges a count of "bad" events (errors, requests slower than a bound,
wrong predictions) out of a count of trials, accumulated since the stage started.

**Failing: a mixture likelihood ratio, valid under continuous looks.** Against a null rate ``p0``
(a ceiling, or production's share of the pooled bad events) the statistic is

    M = (1/K) * sum_j  (p_j/p0)^x * ((1-p_j)/(1-p0))^(n-x)

over K alternatives ``p_j`` whose odds are ``r * 2^j`` times the null odds (j = 0..K-1, r the
margin ratio). Each term is a likelihood ratio, a non-negative supermartingale under every rate at
or below ``p0``, and so is their average. Ville's inequality then bounds the chance that ``M``
*ever* reaches ``1/alpha`` by ``alpha``, however often it is looked at and however long the stage
runs: ``1/M`` is an always-valid p-value. Unlike one fixed alternative (Wald), the mixture reacts
within a few requests to a grossly broken canary (odds 2^10 times production's) and still
accumulates evidence against a doubling. The price of K = 11 alternatives is a factor 11 in the
threshold (log 11 = 2.4 nats), a little more traffic to fail a subtle regression.

**Canary against production** uses the exact conditional test: given the pooled bad events
``m = x_c + x_p``, the canary's share is Binomial(m, n_c / (n_c + n_p)) when both versions have
the same rate (the Poisson model of rare events; for rare errors it is Fisher's exact test in the
limit). The canary's share of the stage's traffic is fixed by the router, so each bad event's
origin is an independent draw with that probability: the mixture above is then a martingale in
the number of pooled events. The fixed-sample exact p-value (``binomial_sf``) is reported next to
the always-valid one; it is what a reader can check against scipy, the decision uses the latter.

**Passing: Wald's SPRT.** "As good as the reference" (rate ``p0``) against "worse by the margin"
(``p1 = p0 + delta``): the log likelihood ratio

    llr = x log(p1/p0) + (n-x) log((1-p1)/(1-p0))

passes once it reaches ``log(beta / (1 - alpha))``. Under ``p1`` the chance of ever getting there is
at most ``beta / (1 - alpha)`` (Ville's inequality on 1/LR); a canary as good as the reference gets
there after about Wald's average sample number (:func:`wald_asn`), about 5,000 requests for
0.1 % against 0.2 % at alpha 0.01 and power 0.8. The reference rate is production's observed
rate (production serves at least as much traffic as the canary below 100 %), smoothed by half an
event so a spotless production does not make every canary error infinitely damning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Alternatives of the failing mixture: odds ratios r, 2r, 4r, ... 1024r against the null.
MIXTURE_SIZE = 11


def _check_counts(x: int, n: int) -> None:
    if n < 0 or x < 0 or x > n:
        raise ValueError(f"need 0 <= x <= n, got x={x}, n={n}")


def _check_rate(p: float, name: str = "p") -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {p!r}")


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )


def binomial_sf(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), exact (the one-sided binomial test's p-value).

    >>> f"{binomial_sf(4, 7, 0.01):.4g}"
    '3.417e-07'
    """
    _check_counts(x, n)
    if x <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    mean = n * p
    if x > mean:
        # Upper tail: terms fall geometrically from x on.
        term = _log_pmf(x, n, p)
        total, log_term, k = 0.0, term, x
        ratio = p / (1.0 - p)
        while k <= n:
            value = math.exp(log_term - term)
            total += value
            if value < 1e-17 * total:
                break
            log_term += math.log((n - k) * ratio / (k + 1)) if k < n else -math.inf
            k += 1
        return min(1.0, math.exp(term) * total)
    # Lower tail P(X <= x-1), summed downward from x-1; the answer is its complement.
    top = x - 1
    term = _log_pmf(top, n, p)
    total, log_term, k = 0.0, term, top
    inverse = (1.0 - p) / p
    while k >= 0:
        value = math.exp(log_term - term)
        total += value
        if value < 1e-17 * total:
            break
        log_term += math.log(k * inverse / (n - k + 1)) if k > 0 else -math.inf
        k -= 1
    return max(0.0, 1.0 - math.exp(term) * total)


def conditional_share(canary_trials: int, reference_trials: int, ratio: float = 1.0) -> float:
    """The canary's share of pooled bad events when its rate is ``ratio`` times the reference's."""
    weight = ratio * canary_trials
    return weight / (weight + reference_trials)


def conditional_p_value(canary_bad: int, canary_trials: int, reference_bad: int, reference_trials: int) -> float:
    """Exact one-sided conditional p-value: is the canary's rate above the reference's?

    Given the pooled bad events, the canary's count is Binomial(pooled, canary share of trials)
    under equal rates.
    """
    _check_counts(canary_bad, canary_trials)
    _check_counts(reference_bad, reference_trials)
    if canary_trials == 0 or reference_trials == 0:
        return 1.0
    share = conditional_share(canary_trials, reference_trials)
    return binomial_sf(canary_bad, canary_bad + reference_bad, share)


def _shift_odds(p: float, ratio: float) -> float:
    odds = ratio * p / (1.0 - p)
    return odds / (1.0 + odds)


def _log_lr(x: int, n: int, p0: float, p1: float) -> float:
    """log of the likelihood ratio of rate p1 against p0 for x bad events in n trials."""
    return x * math.log(p1 / p0) + (n - x) * (math.log1p(-p1) - math.log1p(-p0))


def log_mixture_lr(x: int, n: int, p0: float, first_ratio: float) -> float:
    """log M: the failing mixture's likelihood ratio against rate ``p0`` (see the module docstring)."""
    _check_counts(x, n)
    _check_rate(p0, "p0")
    if first_ratio <= 1.0:
        raise ValueError(f"first_ratio must be above 1, got {first_ratio!r}")
    terms = [_log_lr(x, n, p0, _shift_odds(p0, first_ratio * 2.0**j)) for j in range(MIXTURE_SIZE)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms)) - math.log(MIXTURE_SIZE)


def always_valid_p(log_lr: float) -> float:
    """min(1, 1/M): below alpha at any look only with probability at most alpha under the null."""
    return 1.0 if log_lr <= 0.0 else math.exp(-log_lr)


def sprt_llr(x: int, n: int, p0: float, p1: float) -> float:
    """Wald's log likelihood ratio of "rate p1" against "rate p0" after x bad events in n trials."""
    _check_counts(x, n)
    _check_rate(p0, "p0")
    _check_rate(p1, "p1")
    return _log_lr(x, n, p0, p1)


def pass_bound(alpha: float, beta: float) -> float:
    """Wald's lower boundary log(beta / (1 - alpha)): at or below it, accept "as good"."""
    return math.log(beta / (1.0 - alpha))


def fail_bound(alpha: float) -> float:
    """Wald's upper boundary log((1 - beta) / alpha) is not used: failing needs log(1/alpha) of the mixture."""
    return math.log(1.0 / alpha)


def drift_per_trial(p: float, p0: float, p1: float) -> float:
    """Expected change of the SPRT's llr per trial when the true rate is ``p``."""
    return p * math.log(p1 / p0) + (1.0 - p) * (math.log1p(-p1) - math.log1p(-p0))


def wald_asn(p0: float, p1: float, alpha: float, beta: float) -> float:
    """Wald's average sample number under H0 (rate p0) of the SPRT of p0 against p1."""
    _check_rate(p0, "p0")
    _check_rate(p1, "p1")
    upper = math.log((1.0 - beta) / alpha)
    lower = math.log(beta / (1.0 - alpha))
    return (alpha * upper + (1.0 - alpha) * lower) / drift_per_trial(p0, p0, p1)


@dataclass(frozen=True)
class RateDecision:
    """What one rate test says about one look, with the numbers behind it."""

    fail: bool
    passed: bool
    p_value: float  # the exact fixed-sample p-value (for the reader; scipy gives the same)
    always_valid_p: float  # the decision's p-value, valid under continuous looks
    llr: float  # the pass SPRT's log likelihood ratio (<= pass bound passes)
    needed: int | None  # trials at which a pass is expected, None when none is expected
    reference_rate: float  # p0 of the pass SPRT
    margin_rate: float  # p1 of the pass SPRT


def smoothed_rate(bad: int, trials: int) -> float:
    """(bad + 1/2) / (trials + 1): never 0 or 1, close to bad/trials once trials are many."""
    return (bad + 0.5) / (trials + 1.0)


def _needed(llr: float, trials: int, drift: float, bound: float) -> int | None:
    if llr <= bound:
        return trials
    if drift >= 0.0:
        return None
    return trials + math.ceil((llr - bound) / -drift)


def _expected_rate(bad: int, trials: int, p0: float, p1: float) -> float:
    """The rate to project the SPRT with: the reference's, unless the canary is already past the margin."""
    observed = bad / trials if trials else 0.0
    return observed if observed > p1 else p0


def compare_to_reference(
    canary_bad: int,
    canary_trials: int,
    reference_bad: int,
    reference_trials: int,
    *,
    alpha_fail: float,
    alpha: float,
    beta: float,
    margin_relative: float = 0.0,
    margin_floor: float = 0.0,
    margin_absolute: float = 0.0,
) -> RateDecision:
    """Canary against a reference measured at the same time (production, or a baseline).

    Fails on the exact conditional mixture test at ``alpha_fail``; passes when Wald's SPRT of
    "reference rate" against "reference rate + margin" reaches its lower boundary, the margin being
    ``margin_relative`` times the reference rate floored at ``margin_floor``, or ``margin_absolute``
    when that is larger. ``needed`` assumes the canary is as good as the reference, unless its
    observed rate is already past the margin (then no pass is expected: ``None``). The failing
    mixture's first alternative is a ratio of ``1 + margin_relative`` (1.25 when that is 0): fixed
    in advance, as Ville's inequality needs.
    """
    _check_counts(canary_bad, canary_trials)
    _check_counts(reference_bad, reference_trials)
    if reference_trials <= 0:
        raise ValueError("the reference needs trials")
    pooled = canary_bad + reference_bad
    share = conditional_share(canary_trials, reference_trials) if canary_trials else 0.0
    if canary_trials and pooled and share < 1.0:
        first = 1.0 + margin_relative if margin_relative > 0 else 1.25
        log_m = log_mixture_lr(canary_bad, pooled, share, first)
    else:
        log_m = 0.0  # no pooled events (or no canary trials): nothing to weigh yet
    p_exact = conditional_p_value(canary_bad, canary_trials, reference_bad, reference_trials)
    p0 = smoothed_rate(reference_bad, reference_trials)
    delta = max(margin_relative * max(p0, margin_floor), margin_absolute)
    if delta <= 0.0:
        raise ValueError("the pass test needs a positive margin")
    p1 = min(p0 + delta, (1.0 + p0) / 2.0)
    llr = sprt_llr(canary_bad, canary_trials, p0, p1)
    bound = pass_bound(alpha, beta)
    fail = log_m >= fail_bound(alpha_fail)
    return RateDecision(
        fail=fail,
        passed=not fail and llr <= bound,
        p_value=p_exact,
        always_valid_p=always_valid_p(log_m),
        llr=llr,
        needed=_needed(llr, canary_trials, drift_per_trial(_expected_rate(canary_bad, canary_trials, p0, p1), p0, p1),
                       bound),
        reference_rate=p0,
        margin_rate=p1,
    )


def compare_to_ceiling(
    bad: int,
    trials: int,
    ceiling: float,
    *,
    alpha_fail: float,
    alpha: float,
    beta: float,
    margin_relative: float,
) -> RateDecision:
    """The canary's rate against an absolute ceiling.

    Fails on the one-sample mixture test of "rate <= ceiling" at ``alpha_fail``; passes when Wald's
    SPRT of "at the ceiling" against "ceiling / (1 + margin_relative)" accepts the latter.
    ``needed`` assumes the canary keeps its observed (smoothed) rate.
    """
    _check_counts(bad, trials)
    _check_rate(ceiling, "ceiling")
    log_m = log_mixture_lr(bad, trials, ceiling, 1.0 + margin_relative)
    low = ceiling / (1.0 + margin_relative)
    # The pass SPRT weighs "at the ceiling" against "well below it": llr of the ceiling over low.
    llr = sprt_llr(bad, trials, low, ceiling)
    bound = pass_bound(alpha, beta)
    fail = log_m >= fail_bound(alpha_fail)
    rate = smoothed_rate(bad, trials)
    return RateDecision(
        fail=fail,
        passed=not fail and llr <= bound,
        p_value=binomial_sf(bad, trials, ceiling),
        always_valid_p=always_valid_p(log_m),
        llr=llr,
        needed=_needed(llr, trials, drift_per_trial(rate, low, ceiling), bound),
        reference_rate=low,
        margin_rate=ceiling,
    )


def compare_to_bound(
    bad: int,
    trials: int,
    bound: float,
    *,
    alpha_fail: float,
    alpha: float,
    beta: float,
    margin: float,
) -> RateDecision:
    """The rate against a bound it may reach (e.g. 5 % of requests over a p95 latency bound).

    Fails on the one-sample mixture test of "rate <= bound" at ``alpha_fail``; passes when Wald's
    SPRT of "at the bound" against "bound + margin" accepts the former (non-inferiority).
    ``needed`` assumes the rate is at the bound, unless the observed rate is already past
    ``bound + margin`` (then None).
    """
    _check_counts(bad, trials)
    _check_rate(bound, "bound")
    if margin <= 0.0:
        raise ValueError("the pass test needs a positive margin")
    high = min(bound + margin, (1.0 + bound) / 2.0)
    log_m = log_mixture_lr(bad, trials, bound, high / bound if high / bound > 1.0 else 1.25)
    llr = sprt_llr(bad, trials, bound, high)
    pass_at = pass_bound(alpha, beta)
    fail = log_m >= fail_bound(alpha_fail)
    return RateDecision(
        fail=fail,
        passed=not fail and llr <= pass_at,
        p_value=binomial_sf(bad, trials, bound),
        always_valid_p=always_valid_p(log_m),
        llr=llr,
        needed=_needed(llr, trials, drift_per_trial(_expected_rate(bad, trials, bound, high), bound, high), pass_at),
        reference_rate=bound,
        margin_rate=high,
    )


def upper_confidence_bound(bad: int, trials: int, level: float) -> float:
    """Clopper-Pearson one-sided upper bound: the rate ``u`` with P(X <= bad | trials, u) = ``level``."""
    _check_counts(bad, trials)
    if bad >= trials:
        return 1.0
    low, high = bad / trials, 1.0
    for _ in range(80):  # bisection: P(X <= bad) falls as the rate grows
        mid = (low + high) / 2.0
        if 1.0 - binomial_sf(bad + 1, trials, mid) > level:
            low = mid
        else:
            high = mid
    return high


@dataclass(frozen=True)
class MarginFail:
    """The failing side of a non-inferiority test: is the rate significantly above reference + margin?"""

    fail: bool
    ceiling: float  # the reference's upper bound plus the margin: the rate judged against
    p_value: float  # exact one-sided binomial p of the count against ``ceiling``
    always_valid_p: float


def fail_beyond_margin(bad: int, trials: int, reference_bad: int, reference_trials: int, margin: float, *,
                       alpha_fail: float) -> MarginFail:
    """Fail when the rate is significantly above the reference's rate plus ``margin`` (absolute).

    The reference is estimated, so it is taken at its exact upper bound (Clopper-Pearson at
    ``alpha_fail / 2``) and the count is tested against that bound plus the margin with the
    always-valid mixture at ``alpha_fail / 2``: a canary within the margin is failed with
    probability at most ``alpha_fail`` (the reference's bound is a fixed-sample bound at each
    look; the reference usually has many more trials than the canary).
    """
    _check_counts(bad, trials)
    _check_counts(reference_bad, reference_trials)
    if reference_trials <= 0:
        raise ValueError("the reference needs trials")
    ceiling = upper_confidence_bound(reference_bad, reference_trials, alpha_fail / 2.0) + margin
    if ceiling >= 1.0 or trials == 0:
        return MarginFail(False, min(ceiling, 1.0), 1.0, 1.0)
    log_m = log_mixture_lr(bad, trials, ceiling, 1.25)
    return MarginFail(log_m >= fail_bound(alpha_fail / 2.0), ceiling, binomial_sf(bad, trials, ceiling),
                      always_valid_p(log_m))


def expected_seconds(needed: int | None, have: int, rate_per_second: float | None) -> float | None:
    """Seconds until ``needed`` trials at ``rate_per_second``; 0 when there, None when unknown."""
    if needed is None or rate_per_second is None or not math.isfinite(rate_per_second):
        return None
    if needed <= have:
        return 0.0
    if rate_per_second <= 0.0:
        return None
    return (needed - have) / rate_per_second


def describe_seconds(seconds: float) -> str:
    """``~40 s``, ``~12 min``, ``~3.5 h``: how long, rounded for a human."""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"
