"""Numerical drift kernels on sorted samples: two-sample KS, Wasserstein-1 and PSI.

Every function takes the reference and the current sample already sorted, finite and
non-empty (``opsctl.core.drift`` sorts the live window once per column block and keeps the
reference sorted in its summary), so no kernel sorts or concatenates the two samples the way
``scipy.stats.ks_2samp`` and ``scipy.stats.wasserstein_distance`` do on every call.

Agreement with scipy (checked in ``tests/core/test_drift_numeric.py``):

- ``ks_2samp_sorted``: statistic of ``scipy.stats.ks_2samp`` (two-sided) and its p-value with
  scipy's default ``method="auto"``: exact below 10,000 rows per side, Smirnov's asymptotic
  ``kstwo.sf(d, round(n1*n2/(n1+n2)))`` above.
- ``wasserstein_sorted``: ``scipy.stats.wasserstein_distance`` (Wasserstein-1).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats

# scipy.stats.ks_2samp with method="auto" is exact when max(n1, n2) <= this.
KS_MAX_EXACT_N = 10_000
# Evidently's floor for the reference standard deviation in the normalized Wasserstein distance.
SPREAD_FLOOR = 0.001
# Evidently's stand-in for an empty bin in PSI (log(0) otherwise).
PSI_EMPTY_BIN_SHARE = 0.0001


@lru_cache(maxsize=2)
def _rank_fractions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(k/n for k = 0..n-1, k/n for k = 1..n): the current ECDF just left of and at each value."""
    ranks = np.arange(n + 1, dtype=np.float64) / n
    return ranks[:-1], ranks[1:]


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided KS statistic sup|F_ref - F_cur| of two sorted samples.

    The supremum of the difference of two right-continuous step functions is reached at a data
    point or just left of a current-sample point, so counting, for every current value, the
    reference values at most it and strictly below it covers every candidate that scipy's
    evaluation on the pooled sample sees, with the same float arithmetic (count/n1 - count/n2).
    """
    n1 = reference.size
    n2 = current.size
    below_or_equal = np.searchsorted(reference, current, side="right")
    tie_next = current[1:] == current[:-1]
    if tie_next.any():
        last_idx = np.flatnonzero(np.append(~tie_next, True))
        first_idx = np.flatnonzero(np.insert(~tie_next, 0, True))
        right_diff = below_or_equal[last_idx] / n1 - (last_idx + 1) / n2
        strictly_below = np.searchsorted(reference, current[first_idx], side="left")
        left_diff = strictly_below / n1 - first_idx / n2
        d_max = max(float(right_diff.max()), float(left_diff.max()))
        d_min = -min(float(right_diff.min()), float(left_diff.min()))
        return max(d_max, d_min, 0.0)
    left_of, at = _rank_fractions(n2)
    right_diff = below_or_equal / n1
    # Without ties in the current sample, "strictly below" differs from "at most" only where a
    # reference value equals the current value; find those with one gather, search only there.
    at_or_below = reference.take(np.maximum(below_or_equal - 1, 0))
    hit = (at_or_below == current) & (below_or_equal > 0)
    del at_or_below
    if hit.any():
        strictly_below = below_or_equal.copy()
        strictly_below[hit] = np.searchsorted(reference, current[hit], side="left")
        left_diff = strictly_below / n1 - left_of
        np.subtract(right_diff, at, out=right_diff)
        d_max = max(float(right_diff.max()), float(left_diff.max()))
        d_min = -min(float(right_diff.min()), float(left_diff.min()))
        return max(d_max, d_min, 0.0)
    # Here left_diff = right_diff + 1/n2 elementwise, so only two reductions are needed.
    left_diff = np.subtract(right_diff, left_of)
    np.subtract(right_diff, at, out=right_diff)
    return max(float(left_diff.max()), -float(right_diff.min()), 0.0)


def _prob_outside_square(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n), scipy's Horner-like series, with the inner products vectorized."""
    k_max = n // h
    ks = np.arange(k_max, -1, -1)[:, None]
    j = np.arange(h)[None, :]
    terms = (n - ks * h - j) / (n + ks * h + j + 1.0)
    factors = np.prod(terms, axis=1)
    total = 0.0
    for factor in factors:
        total = float(factor) * (1.0 - total)
    return 2.0 * total


def ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, bool]:
    """Two-sided p-value of ``ks_2samp`` (method auto) for statistic d; (p, computed).

    ``computed`` is False when the exact method is due but the sizes differ: the exact count
    for unequal sizes is scipy's compiled lattice-path routine, so the caller runs
    ``scipy.stats.ks_2samp`` itself on those (small, <= 10,000-row) samples.
    """
    if max(n1, n2) <= KS_MAX_EXACT_N:
        if n1 != n2:
            return math.nan, False
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = round(d * lcm)
        if h == 0:
            return 1.0, True
        prob = _prob_outside_square(n1, h)
        if 0.0 <= prob <= 1.0:
            return prob, True
        d = h / lcm  # scipy falls back to the asymptotic formula with the rounded statistic
    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = m * n / (m + n)
    prob = float(stats.kstwo.sf(d, np.round(en)))
    return min(max(prob, 0.0), 1.0), True


def ks_2samp_sorted(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample KS test on sorted samples."""
    d = ks_statistic(reference, current)
    p, computed = ks_pvalue(d, reference.size, current.size)
    if not computed:
        result = stats.ks_2samp(reference, current)
        p = float(result.pvalue)
    return d, p


@lru_cache(maxsize=8)
def _quantile_grid(n1: int, n2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into both sorted samples and widths of the merged quantile steps.

    The quantile functions of the two empirical distributions are step functions with steps at
    i/n1 and j/n2; on each interval of the merged grid both are constant. Breakpoints are kept
    as integers over the common denominator lcm(n1, n2) so the merge is exact.
    """
    g = math.gcd(n1, n2)
    a, b = n2 // g, n1 // g  # i/n1 == i*a / lcm, j/n2 == j*b / lcm
    lcm = n1 * a
    keys = np.union1d(np.arange(1, n1 + 1, dtype=np.int64) * a, np.arange(1, n2 + 1, dtype=np.int64) * b)
    widths = np.diff(keys, prepend=0) / lcm
    i = (keys + a - 1) // a - 1
    j = (keys + b - 1) // b - 1
    return i, j, widths


def wasserstein_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance of two sorted samples: the area between their quantile functions."""
    n1 = reference.size
    n2 = current.size
    if n1 == n2:
        return float(np.abs(reference - current).mean())
    i, j, widths = _quantile_grid(n1, n2)
    return float(np.dot(widths, np.abs(reference[i] - current[j])))


def psi_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` reference-quantile bins (fewer when quantiles tie)."""
    edges = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(edges)


def bin_counts(sorted_values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts in the bins (-inf, e1], (e1, e2], ..., (ek, inf) of a sorted sample."""
    cuts = np.searchsorted(sorted_values, inner_edges, side="right")
    return np.diff(np.concatenate(([0], cuts, [sorted_values.size])))


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index sum((r - c) * ln(r / c)) over bin shares, empty bins at 0.0001."""
    r = reference_counts / reference_counts.sum()
    c = current_counts / current_counts.sum()
    r = np.where(r == 0, PSI_EMPTY_BIN_SHARE, r)
    c = np.where(c == 0, PSI_EMPTY_BIN_SHARE, c)
    return float(np.sum((r - c) * np.log(r / c)))
