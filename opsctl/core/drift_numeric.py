"""Numerical drift kernels on sorted samples: two-sample KS, Wasserstein-1 and PSI.

Every function takes the reference and the current sample already sorted, finite and
non-empty (``opsctl.core.drift`` sorts each column of the live window once, with
``sort_into``, and keeps the reference sorted in its summary), so no kernel sorts or
concatenates the two samples the way ``scipy.stats.ks_2samp`` and
``scipy.stats.wasserstein_distance`` do on every call. Everything else is derived from that one
sorted array: the finite part and so the missing count by two binary searches (``finite_part``),
KS by binary searches of the current's distinct values in the reference, bounded chunk by chunk
so that only a few percent of them are searched one by one (``ks_statistic``), Wasserstein-1 by
pairing quantiles, the PSI counts by searching the fixed edges in the sorted current values.

Where the time goes at a million rows per column (one core of the benchmark machine): the sort
35-38 ms (``sort_into``: bucket presort and timsort; ``np.sort`` alone takes ~53 ms), KS 5-6 ms
(about 4 of them for the chunk bounds, two binary searches per 64 values), Wasserstein 2-3 ms,
PSI and the KS p-value below 0.5 ms.

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
# ks_statistic evaluates the candidates of this many distinct current values per chunk.
KS_CHUNK = 64
# sort_into presorts windows of at least this many values by bucket (below, np.sort is as fast).
PRESORT_MIN_SIZE = 20_000
PRESORT_BUCKETS = 1 << 16
PRESORT_SAMPLE = 8192


def sort_into(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write ``values`` sorted into ``out`` (same length; NaN last, as ``np.sort``) and return it.

    numpy's float sort costs ~55 ns per value at a million values, most of a drift check. A
    large window is first grouped into ``PRESORT_BUCKETS`` equal-width buckets between the
    0.5 % and 99.5 % quantiles of a strided sample (a 16-bit radix argsort), and the grouped
    copy, almost in order, is finished by numpy's stable sort (timsort, adaptive to runs): about
    half the time on smooth data. The buckets only speed the sort up; the final sort alone
    makes ``out`` sorted, so the result is the same sorted array whatever the data.
    """
    if values.size >= PRESORT_MIN_SIZE and _group_by_bucket(values, out):
        out.sort(kind="stable")
    else:
        out[:] = values
        out.sort()
    return out


def _group_by_bucket(values: np.ndarray, out: np.ndarray) -> bool:
    """Write ``values`` grouped by bucket into ``out``; False (nothing written) when buckets
    cannot be placed (a sample with fewer than 100 finite values or with no spread)."""
    sample = finite_part(np.sort(values[:: max(1, values.size // PRESORT_SAMPLE)]))
    if sample.size < 100:
        return False
    tail = sample.size // 200
    lo, hi = float(sample[tail]), float(sample[-1 - tail])
    with np.errstate(over="ignore", divide="ignore"):
        scale = PRESORT_BUCKETS / (hi - lo) if hi > lo else math.inf
    if not math.isfinite(scale):
        return False
    position = out  # scratch until the grouped values overwrite it
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(values, lo, out=position)
        position *= scale
    np.fmin(position, PRESORT_BUCKETS - 1, out=position)  # NaN and +inf to the last bucket
    np.maximum(position, 0, out=position)  # -inf to the first
    order = np.argsort(position.astype(np.uint16), kind="stable")
    np.take(values, order, out=out)
    return True


def finite_part(sorted_values: np.ndarray) -> np.ndarray:
    """The finite part of a sorted array (-inf first, +inf and NaN last), a view."""
    lo = int(np.searchsorted(sorted_values, -np.inf, side="right"))
    hi = int(np.searchsorted(sorted_values, np.inf, side="left"))
    return sorted_values[lo:hi]


def ks_statistic(reference: np.ndarray, current: np.ndarray, *, chunk: int = KS_CHUNK) -> float:
    """Two-sided KS statistic sup|F_ref - F_cur| of two sorted samples.

    Both ECDFs are right-continuous step functions, so the supremum is reached at a pooled data
    point, where scipy evaluates it. For each distinct current value u (first index f, last
    index l in ``current``) the candidates are the difference at u, ``#ref<=u/n1 - (l+1)/n2``,
    and just left of u, ``#ref<u/n1 - f/n2`` (the value at the pooled point before u); every
    other pooled point (a reference value between two current values) has one of those
    differences. The counts and the float arithmetic (count/n1 - count/n2) are scipy's.

    Evaluating every candidate costs two binary searches per current value, which at a million
    rows cost as much as sorting. Instead the distinct values are cut into chunks of
    ``KS_CHUNK``; the counts are monotone, so one search at each chunk end bounds every
    candidate inside the chunk (the float operations are monotone too), and only the chunks
    whose bound could exceed the best exact candidate found so far are evaluated: the result is
    exactly the maximum over all candidates.
    """
    n1 = reference.size
    n2 = current.size
    differs = current[1:] != current[:-1]
    if differs.all():
        values, first, after = current, None, None  # no ties: first == last == index
        runs = n2
    else:
        last = np.flatnonzero(np.append(differs, True))
        after = last + 1  # (index of the last occurrence) + 1 = #cur <= value
        first = np.empty_like(last)
        first[0] = 0
        first[1:] = after[:-1]
        values = current[last]
        runs = values.size
    del differs

    def candidates(index: np.ndarray) -> float:
        """max(|difference|) over the candidates of the distinct values at ``index``."""
        u = values[index]
        f = index if first is None else first[index]
        a = index + 1 if after is None else after[index]
        at = np.searchsorted(reference, u, side="right") / n1 - a / n2
        left = np.searchsorted(reference, u, side="left") / n1 - f / n2
        return max(float(at.max()), float(left.max()), -float(at.min()), -float(left.min()), 0.0)

    if runs <= chunk * 16:
        return candidates(np.arange(runs))
    starts = np.arange(0, runs, chunk)
    ends = np.minimum(starts + chunk, runs)  # exclusive
    first_start = starts if first is None else first[starts]
    after_end = ends if after is None else after[ends - 1]
    # Every candidate in chunk J lies in [lower[J], upper[J]].
    upper = np.searchsorted(reference, values[ends - 1], side="right") / n1 - first_start / n2
    lower = np.searchsorted(reference, values[starts], side="left") / n1 - after_end / n2

    def evaluate(chunks: np.ndarray) -> float:
        index = (chunks[:, None] * chunk + np.arange(chunk)).ravel()
        return candidates(index[index < runs])

    best = evaluate(np.unique([int(np.argmax(upper)), int(np.argmin(lower))]))
    open_chunks = np.flatnonzero((upper > best) | (-lower > best))
    if open_chunks.size:
        best = max(best, evaluate(open_chunks))
    return best


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
    keys = np.concatenate((np.arange(1, n1 + 1, dtype=np.int64) * a, np.arange(1, n2 + 1, dtype=np.int64) * b))
    keys.sort(kind="stable")  # two sorted runs: timsort merges them (np.union1d sorts from scratch)
    distinct = np.empty(keys.size, dtype=bool)
    distinct[0] = True
    np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
    keys = keys[distinct]
    widths = np.diff(keys, prepend=0) / lcm
    i = (keys + a - 1) // a - 1
    j = (keys + b - 1) // b - 1
    return i, j, widths


def wasserstein_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance of two sorted samples: the area between their quantile functions."""
    n1 = reference.size
    n2 = current.size
    if n1 == n2:
        difference = reference - current
        return float(np.abs(difference, out=difference).mean())
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
