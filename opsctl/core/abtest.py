"""A/B statistics for two proportions: fixed-horizon z-test, sample size and power, and a
sequential test that stays valid when the results are looked at again and again.

Pure and standard-library only (``math``, ``statistics.NormalDist``), so importing it does not
load scipy on the path of a one-shot CLI command. The numbers agree with statsmodels
(``proportions_ztest``, ``NormalIndPower`` + ``proportion_effectsize``); tests check that.

Fixed horizon, decided once at a sample size chosen in advance::

    >>> r = two_proportion_ztest(2000, 10_000, 220, 1000)
    >>> round(r.p_value, 3), r.significant
    (0.133, False)
    >>> sample_size_per_group(0.20, 0.10)
    6508

Continuous monitoring (a dashboard that refreshes every few minutes) must use the sequential
test instead: reading a fixed-horizon p-value at every refresh and stopping at the first
``p < alpha`` rejects a true null far more often than ``alpha``::

    >>> state = SequentialTest.start(alpha=0.05, tau=0.05)
    >>> state = state.update(control_successes=200, control_total=1000,
    ...                      treatment_successes=230, treatment_total=1000)
    >>> state.decision.value, round(state.always_valid_p_value, 2)
    ('continue', 0.9)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import NormalDist
from typing import Any

from opsctl.errors import UsageError

_NORMAL = NormalDist()


class Alternative(StrEnum):
    """The alternative hypothesis; LARGER means the treatment rate is above the control rate."""

    TWO_SIDED = "two-sided"
    LARGER = "larger"
    SMALLER = "smaller"


class Decision(StrEnum):
    CONTINUE = "continue"
    REJECT = "reject"


# ---------------------------------------------------------------------------------------------
# validation helpers


def _alternative(value: Alternative | str) -> Alternative:
    try:
        return Alternative(value)
    except ValueError:
        allowed = ", ".join(a.value for a in Alternative)
        raise UsageError(f"alternative must be one of {allowed}, got {value!r}") from None


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    if not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 1.0):
        raise UsageError(f"{name} must be strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def _check_rate(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 < float(value) < 1.0):
        raise UsageError(f"{name} must be a rate strictly between 0 and 1, got {value!r}")
    return float(value)


def _check_counts(successes: int, total: int, group: str, *, allow_empty: bool = False) -> tuple[int, int]:
    """Validated counts as plain ints (numpy integers from pandas are accepted)."""
    for name, value in ((f"{group}_successes", successes), (f"{group}_total", total)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise UsageError(f"{name} must be an integer count, got {value!r}")
        if value < 0:
            raise UsageError(f"{name} must not be negative, got {value}")
    if total == 0 and not allow_empty:
        raise UsageError(f"{group}_total must be positive, got 0")
    if successes > total:
        raise UsageError(f"{group}_successes ({successes}) exceeds {group}_total ({total})")
    return int(successes), int(total)


def _upper_quantile(prob: float) -> float:
    """z such that P(Z > z) = prob."""
    return _NORMAL.inv_cdf(1.0 - prob)


def _sf(z: float) -> float:
    """P(Z > z), accurate far in the tail (erfc rather than 1 - cdf)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _clip_difference(value: float) -> float:
    return min(1.0, max(-1.0, value))


# ---------------------------------------------------------------------------------------------
# fixed-horizon z-test


@dataclass(frozen=True)
class ZTestResult:
    """Outcome of a two-proportion z-test (difference = treatment rate - control rate)."""

    control_successes: int
    control_total: int
    treatment_successes: int
    treatment_total: int
    control_rate: float
    treatment_rate: float
    difference: float
    relative_lift: float | None  # difference / control_rate; None when control_rate == 0
    z: float
    p_value: float
    ci_low: float  # confidence interval of the difference at level 1 - alpha
    ci_high: float
    alpha: float
    alternative: Alternative
    significant: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "control_successes": self.control_successes,
            "control_total": self.control_total,
            "treatment_successes": self.treatment_successes,
            "treatment_total": self.treatment_total,
            "control_rate": self.control_rate,
            "treatment_rate": self.treatment_rate,
            "difference": self.difference,
            "relative_lift": self.relative_lift,
            "z": self.z,
            "p_value": self.p_value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "alpha": self.alpha,
            "alternative": self.alternative.value,
            "significant": self.significant,
        }


def two_proportion_ztest(
    control_successes: int,
    control_total: int,
    treatment_successes: int,
    treatment_total: int,
    *,
    alpha: float = 0.05,
    alternative: Alternative | str = "two-sided",
) -> ZTestResult:
    """Two-proportion z-test of treatment vs control, with a Wald interval of the difference.

    The z statistic uses the pooled variance (the null hypothesis says both rates are equal), as
    ``statsmodels.stats.proportion.proportions_ztest`` does. The confidence interval uses the
    unpooled variance (no null to assume there); for a one-sided alternative it is the one-sided
    interval, closed by the natural bound of a difference of rates (-1 or 1). When every
    observation is a success, or every one a failure, the difference is exactly 0 and so is z
    (p = 1) instead of 0/0.
    """
    control_successes, control_total = _check_counts(control_successes, control_total, "control")
    treatment_successes, treatment_total = _check_counts(treatment_successes, treatment_total, "treatment")
    alpha = _check_alpha(alpha)
    alt = _alternative(alternative)

    p_c = control_successes / control_total
    p_t = treatment_successes / treatment_total
    diff = p_t - p_c
    pooled = (control_successes + treatment_successes) / (control_total + treatment_total)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / control_total + 1.0 / treatment_total))
    z = 0.0 if se_pooled == 0.0 else diff / se_pooled

    if alt is Alternative.TWO_SIDED:
        p_value = 2.0 * _sf(abs(z))
    elif alt is Alternative.LARGER:
        p_value = _sf(z)
    else:
        p_value = _sf(-z)
    p_value = min(1.0, p_value)

    se = math.sqrt(p_c * (1.0 - p_c) / control_total + p_t * (1.0 - p_t) / treatment_total)
    if alt is Alternative.TWO_SIDED:
        margin = _upper_quantile(alpha / 2.0) * se
        ci_low, ci_high = diff - margin, diff + margin
    elif alt is Alternative.LARGER:
        ci_low, ci_high = diff - _upper_quantile(alpha) * se, 1.0
    else:
        ci_low, ci_high = -1.0, diff + _upper_quantile(alpha) * se

    return ZTestResult(
        control_successes=control_successes,
        control_total=control_total,
        treatment_successes=treatment_successes,
        treatment_total=treatment_total,
        control_rate=p_c,
        treatment_rate=p_t,
        difference=diff,
        relative_lift=None if p_c == 0.0 else diff / p_c,
        z=z,
        p_value=p_value,
        ci_low=_clip_difference(ci_low),
        ci_high=_clip_difference(ci_high),
        alpha=alpha,
        alternative=alt,
        significant=p_value < alpha,
    )


# ---------------------------------------------------------------------------------------------
# power and sample size (Cohen's h, normal approximation, equal groups)


def cohens_h(treatment: float, baseline: float) -> float:
    """Cohen's h = 2·asin(√treatment) − 2·asin(√baseline) (statsmodels' ``proportion_effectsize``)."""
    return 2.0 * math.asin(math.sqrt(treatment)) - 2.0 * math.asin(math.sqrt(baseline))


def _power_for_h(h: float, n_per_group: float, alpha: float, alt: Alternative) -> float:
    # The arcsine transform makes the variance of each rate 1/(4n); the difference of two groups
    # of n has standardised effect h·sqrt(n/2). Same as statsmodels' normal_power with
    # nobs = 1/(1/n + 1/n), including the far tail for two-sided tests.
    shift = h * math.sqrt(n_per_group / 2.0)
    if alt is Alternative.TWO_SIDED:
        crit = _upper_quantile(alpha / 2.0)
        return _sf(crit - shift) + _sf(crit + shift)
    crit = _upper_quantile(alpha)
    return _sf(crit - shift) if alt is Alternative.LARGER else _sf(crit + shift)


def power_two_proportions(
    baseline: float,
    treatment: float,
    n_per_group: int,
    *,
    alpha: float = 0.05,
    alternative: Alternative | str = "two-sided",
) -> float:
    """Power of the two-proportion test with ``n_per_group`` in each arm (Cohen's h approximation)."""
    baseline = _check_rate(baseline, "baseline")
    treatment = _check_rate(treatment, "treatment")
    alpha = _check_alpha(alpha)
    alt = _alternative(alternative)
    if isinstance(n_per_group, bool) or not isinstance(n_per_group, int) or n_per_group <= 0:
        raise UsageError(f"n_per_group must be a positive integer, got {n_per_group!r}")
    return _power_for_h(cohens_h(treatment, baseline), n_per_group, alpha, alt)


# The largest per-group sample size sample_size_per_group answers (more than everyone alive).
MAX_SAMPLE_SIZE = 10**12


def sample_size_per_group(
    baseline: float,
    mde_relative: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative | str = "two-sided",
) -> int:
    """Smallest n per group whose power reaches ``power`` for treatment = baseline·(1 + mde_relative).

    Uses Cohen's h with the normal approximation, the formula of statsmodels'
    ``NormalIndPower().solve_power(proportion_effectsize(treatment, baseline), ratio=1)``,
    rounded up. (The chapter's formula, 2·p̄(1−p̄)(z_α/2 + z_β)²/Δ², differs by a few units.)
    """
    baseline = _check_rate(baseline, "baseline")
    alpha = _check_alpha(alpha)
    power = _check_alpha(power, "power")
    alt = _alternative(alternative)
    if not (isinstance(mde_relative, int | float) and math.isfinite(mde_relative)) or mde_relative == 0:
        raise UsageError(f"mde_relative must be a non-zero relative change, got {mde_relative!r}")
    treatment = baseline * (1.0 + mde_relative)
    if not 0.0 < treatment < 1.0:
        raise UsageError(f"mde_relative {mde_relative!r} puts the treatment rate at {treatment!r}, outside (0, 1)")
    if alt is Alternative.LARGER and mde_relative < 0:
        raise UsageError("mde_relative must be positive for alternative 'larger'")
    if alt is Alternative.SMALLER and mde_relative > 0:
        raise UsageError("mde_relative must be negative for alternative 'smaller'")
    h = abs(cohens_h(treatment, baseline))
    if alt is Alternative.SMALLER:
        alt = Alternative.LARGER  # symmetric once h is taken positive
    one_tail_alpha = alpha / 2.0 if alt is Alternative.TWO_SIDED else alpha
    if power <= one_tail_alpha:
        raise UsageError(f"power must exceed the test's size, got {power!r}")

    # Closed form ignoring the far tail, then settle on the exact smallest integer.
    z_sum = _upper_quantile(one_tail_alpha) + _upper_quantile(1.0 - power)
    # A change too small to tell apart in floating point (h == 0), or needing more users than exist: the
    # stepping loops below would never end (the power stops moving at that scale).
    if h == 0.0 or 2.0 * (z_sum / h) ** 2 > MAX_SAMPLE_SIZE:
        raise UsageError(f"mde_relative {mde_relative!r} is too small to detect with at most {MAX_SAMPLE_SIZE:.0e}"
                         " users per group")
    n = max(1, math.ceil(2.0 * (z_sum / h) ** 2))
    while n > 1 and _power_for_h(h, n - 1, alpha, alt) >= power:
        n -= 1
    while _power_for_h(h, n, alpha, alt) < power:
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# sequential test: mixture SPRT with always-valid p-values


@dataclass(frozen=True)
class SequentialTest:
    """Always-valid test of "treatment rate = control rate", safe to read after every update.

    Mixture sequential probability ratio test (mSPRT) of Johari, Pekelis & Walsh, "Always valid
    inference: continuous monitoring of A/B tests" (2017; Operations Research 2022), in its
    normal approximation for a difference of two proportions. With the estimated difference
    d = p̂_t − p̂_c, its variance V = p̃_c(1−p̃_c)/n_c + p̃_t(1−p̃_t)/n_t and a N(0, τ²) mixture
    over the true difference θ, the likelihood ratio against θ = θ₀ is

        Λ(θ₀) = sqrt(V / (V + τ²)) · exp(τ² (d − θ₀)² / (2 V (V + τ²)))

    The always-valid p-value is the running minimum of min(1, 1/Λ(0)); rejecting when it falls
    below alpha keeps the false-positive rate at most alpha however often it is read (up to the
    normal approximation). The confidence sequence {θ₀ : Λ(θ₀) < 1/alpha} is intersected over
    time, so it only narrows. p̃ = (successes + 0.5)/(total + 1) in V only, so V stays
    positive when an arm has no successes yet; nothing is decided before ``min_samples_per_group``
    in each arm (skipping looks only makes the test more conservative).

    τ is the scale of differences you expect (absolute, in rate units): the test is most
    sensitive to effects near τ. The test is two-sided; the sign of ``difference`` tells the
    direction once it rejects. Counts are cumulative; ``update`` adds new observations,
    ``at_totals`` sets the cumulative counters read from e.g. Prometheus.
    """

    alpha: float = 0.05
    tau: float = 0.05
    min_samples_per_group: int = 100
    control_successes: int = 0
    control_total: int = 0
    treatment_successes: int = 0
    treatment_total: int = 0
    always_valid_p_value: float = 1.0
    ci_low: float = -1.0
    ci_high: float = 1.0
    looks: int = 0

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)
        if not (isinstance(self.tau, int | float) and math.isfinite(self.tau) and self.tau > 0):
            raise UsageError(f"tau must be a positive number, got {self.tau!r}")
        if isinstance(self.min_samples_per_group, bool) or not isinstance(self.min_samples_per_group, int):
            raise UsageError(f"min_samples_per_group must be an integer, got {self.min_samples_per_group!r}")
        if self.min_samples_per_group < 1:
            raise UsageError(f"min_samples_per_group must be at least 1, got {self.min_samples_per_group}")
        cs, ct = _check_counts(self.control_successes, self.control_total, "control", allow_empty=True)
        ts, tt = _check_counts(self.treatment_successes, self.treatment_total, "treatment", allow_empty=True)
        # Normalise numpy integers so equality and to_json() see plain ints.
        object.__setattr__(self, "control_successes", cs)
        object.__setattr__(self, "control_total", ct)
        object.__setattr__(self, "treatment_successes", ts)
        object.__setattr__(self, "treatment_total", tt)

    @classmethod
    def start(cls, *, alpha: float = 0.05, tau: float = 0.05, min_samples_per_group: int = 100) -> SequentialTest:
        """A fresh test with no observations."""
        return cls(alpha=alpha, tau=tau, min_samples_per_group=min_samples_per_group)

    # -- reading ------------------------------------------------------------------------------

    @property
    def control_rate(self) -> float | None:
        return self.control_successes / self.control_total if self.control_total else None

    @property
    def treatment_rate(self) -> float | None:
        return self.treatment_successes / self.treatment_total if self.treatment_total else None

    @property
    def difference(self) -> float | None:
        if not (self.control_total and self.treatment_total):
            return None
        return self.treatment_successes / self.treatment_total - self.control_successes / self.control_total

    @property
    def decision(self) -> Decision:
        return Decision.REJECT if self.always_valid_p_value < self.alpha else Decision.CONTINUE

    def to_json(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "tau": self.tau,
            "min_samples_per_group": self.min_samples_per_group,
            "control_successes": self.control_successes,
            "control_total": self.control_total,
            "treatment_successes": self.treatment_successes,
            "treatment_total": self.treatment_total,
            "control_rate": self.control_rate,
            "treatment_rate": self.treatment_rate,
            "difference": self.difference,
            "always_valid_p_value": self.always_valid_p_value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "looks": self.looks,
            "decision": self.decision.value,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SequentialTest:
        """Rebuild a state saved with ``to_json`` (derived fields are ignored)."""
        try:
            return cls(
                alpha=float(data["alpha"]),
                tau=float(data["tau"]),
                min_samples_per_group=int(data["min_samples_per_group"]),
                control_successes=int(data["control_successes"]),
                control_total=int(data["control_total"]),
                treatment_successes=int(data["treatment_successes"]),
                treatment_total=int(data["treatment_total"]),
                always_valid_p_value=float(data["always_valid_p_value"]),
                ci_low=float(data["ci_low"]),
                ci_high=float(data["ci_high"]),
                looks=int(data["looks"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a saved sequential test state: {exc}") from exc

    # -- updating -----------------------------------------------------------------------------

    def update(
        self,
        *,
        control_successes: int,
        control_total: int,
        treatment_successes: int,
        treatment_total: int,
    ) -> SequentialTest:
        """The state after adding new observations (counts since the previous update) and looking."""
        control_successes, control_total = _check_counts(control_successes, control_total, "control", allow_empty=True)
        treatment_successes, treatment_total = _check_counts(
            treatment_successes, treatment_total, "treatment", allow_empty=True
        )
        return self._look(
            self.control_successes + control_successes,
            self.control_total + control_total,
            self.treatment_successes + treatment_successes,
            self.treatment_total + treatment_total,
        )

    def at_totals(
        self,
        *,
        control_successes: int,
        control_total: int,
        treatment_successes: int,
        treatment_total: int,
    ) -> SequentialTest:
        """The state after reading cumulative counters; counters that went backwards are refused."""
        control_successes, control_total = _check_counts(control_successes, control_total, "control", allow_empty=True)
        treatment_successes, treatment_total = _check_counts(
            treatment_successes, treatment_total, "treatment", allow_empty=True
        )
        for name, new, old in (
            ("control_successes", control_successes, self.control_successes),
            ("control_total", control_total, self.control_total),
            ("treatment_successes", treatment_successes, self.treatment_successes),
            ("treatment_total", treatment_total, self.treatment_total),
        ):
            if new < old:
                raise UsageError(f"{name} went backwards ({old} -> {new}); start a new sequential test")
        return self._look(control_successes, control_total, treatment_successes, treatment_total)

    def _look(self, cs: int, ct: int, ts: int, tt: int) -> SequentialTest:
        counts = {
            "control_successes": cs,
            "control_total": ct,
            "treatment_successes": ts,
            "treatment_total": tt,
        }
        if min(ct, tt) < self.min_samples_per_group:
            return replace(self, **counts)
        diff = ts / tt - cs / ct
        pc = (cs + 0.5) / (ct + 1.0)
        pt = (ts + 0.5) / (tt + 1.0)
        v = pc * (1.0 - pc) / ct + pt * (1.0 - pt) / tt
        tau2 = self.tau * self.tau
        # log Λ(0); work in logs so a huge effect does not overflow exp().
        log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * diff * diff / (2.0 * v * (v + tau2))
        p_now = 1.0 if log_lr <= 0.0 else math.exp(-log_lr)
        half_width = math.sqrt(v * (v + tau2) / tau2 * (math.log((v + tau2) / v) - 2.0 * math.log(self.alpha)))
        ci_low = max(self.ci_low, _clip_difference(diff - half_width))
        ci_high = min(self.ci_high, _clip_difference(diff + half_width))
        if ci_low > ci_high:
            # Possible only where the approximation breaks down; keep a point, not an empty set.
            ci_low = ci_high = _clip_difference(diff)
        return replace(
            self,
            **counts,
            always_valid_p_value=min(self.always_valid_p_value, p_now),
            ci_low=ci_low,
            ci_high=ci_high,
            looks=self.looks + 1,
        )
