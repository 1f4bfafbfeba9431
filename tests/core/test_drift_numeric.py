"""The numerical kernels agree with scipy on the same samples."""

import numpy as np
import pytest
from scipy import stats

from opsctl.core import drift_numeric as num


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    return [
        ("normal equal n", rng.normal(size=800), rng.normal(0.1, size=800)),
        ("normal unequal n", rng.normal(size=700), rng.normal(0.3, 1.2, size=450)),
        ("integer ties", rng.integers(0, 6, 900).astype(float), rng.integers(0, 7, 600).astype(float)),
        ("rounded ties equal n", np.round(rng.normal(size=3000), 1), np.round(rng.normal(0.05, size=3000), 1)),
        ("shared values", np.repeat(np.arange(10.0), 50), np.repeat(np.arange(3.0, 12.0), 40)),
        ("constant both", np.full(300, 2.5), np.full(200, 2.5)),
        ("constant vs other", np.full(300, 2.5), np.full(300, 3.0)),
        ("one side constant", np.full(250, 0.0), rng.normal(size=250)),
        ("disjoint", rng.uniform(0, 1, 400), rng.uniform(2, 3, 400)),
        ("tiny", np.array([1.0, 2.0, 3.0]), np.array([2.5])),
        ("asymptotic equal n", rng.normal(size=12_000), rng.normal(0.02, size=12_000)),
        ("asymptotic unequal n", rng.lognormal(size=15_000), rng.lognormal(0.01, size=11_000)),
        ("exact unequal, heavy tail", rng.standard_cauchy(2000), rng.standard_cauchy(3001)),
    ]


@pytest.mark.parametrize("case", range(13))
def test_ks_matches_scipy_default_method(case: int) -> None:
    _, x, y = _pairs()[case]
    d, p = num.ks_2samp_sorted(np.sort(x), np.sort(y))
    expected = stats.ks_2samp(x, y)
    assert abs(d - expected.statistic) <= 1e-12
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=0)


@pytest.mark.parametrize("case", range(13))
def test_wasserstein_matches_scipy(case: int) -> None:
    _, x, y = _pairs()[case]
    expected = stats.wasserstein_distance(x, y)
    assert num.wasserstein_sorted(np.sort(x), np.sort(y)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_ks_statistic_symmetric_and_bounded() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = np.sort(np.round(rng.normal(size=int(rng.integers(1, 300))), int(rng.integers(0, 3))))
        y = np.sort(np.round(rng.normal(0.2, size=int(rng.integers(1, 300))), int(rng.integers(0, 3))))
        d = num.ks_statistic(x, y)
        assert 0.0 <= d <= 1.0
        assert d == pytest.approx(num.ks_statistic(y, x), abs=1e-15)
        assert abs(d - stats.ks_2samp(x, y).statistic) <= 1e-12


def test_psi_bins_are_reference_quantiles() -> None:
    rng = np.random.default_rng(5)
    r = np.sort(rng.normal(size=10_000))
    edges = num.psi_edges(r, 10)
    assert edges.size == 9
    counts = num.bin_counts(r, edges)
    assert counts.sum() == r.size
    assert np.all(np.abs(counts - 1000) <= 1)
    assert num.psi(counts, counts) == 0.0


def test_psi_formula_and_empty_bins() -> None:
    ref = np.array([50, 30, 20])
    cur = np.array([30, 40, 30])
    r, c = ref / 100, cur / 100
    assert num.psi(ref, cur) == pytest.approx(np.sum((r - c) * np.log(r / c)), rel=1e-12)
    # An empty current bin counts as share 0.0001 (Evidently's convention), not log(0).
    value = num.psi(np.array([50, 50]), np.array([100, 0]))
    assert np.isfinite(value) and value > 1.0


def test_psi_edges_collapse_on_ties() -> None:
    r = np.sort(np.concatenate([np.zeros(900), np.arange(1.0, 101.0)]))
    edges = num.psi_edges(r, 10)
    assert np.unique(edges).size == edges.size
    assert num.bin_counts(r, edges).sum() == r.size


AWKWARD = {
    "normal": lambda rng: rng.normal(size=50_000),
    "cauchy": lambda rng: rng.standard_cauchy(size=50_000),
    "nan_inf": lambda rng: np.where(rng.random(50_000) < 0.3, np.nan,
                                    np.where(rng.random(50_000) < 0.01, np.inf, rng.normal(size=50_000))),
    "zero_inflated": lambda rng: np.where(rng.random(50_000) < 0.9, 0.0, rng.exponential(size=50_000)),
    "integers": lambda rng: rng.integers(0, 7, size=50_000).astype(float),
    "constant": lambda rng: np.full(50_000, 3.25),
    "all_nan": lambda rng: np.full(50_000, np.nan),
    "huge": lambda rng: rng.choice([-1e307, 1e307, 0.0, 1.0], size=50_000),
    "sorted": lambda rng: np.sort(rng.normal(size=50_000)),
    "reversed": lambda rng: np.sort(rng.normal(size=50_000))[::-1].copy(),
}


@pytest.mark.parametrize("kind", sorted(AWKWARD))
def test_sort_into_equals_numpy_sort_on_awkward_data(kind: str) -> None:
    values = AWKWARD[kind](np.random.default_rng(11))
    out = np.empty_like(values)
    result = num.sort_into(values.copy(), out)
    np.testing.assert_array_equal(result, np.sort(values))


@pytest.mark.parametrize("chunk", [1, 2, 3, 64])
def test_ks_statistic_does_not_depend_on_the_chunk_size(chunk: int) -> None:
    """The chunk bounds only prune work: every chunk size gives scipy's statistic exactly."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        n1, n2 = int(rng.integers(2_000, 12_000)), int(rng.integers(2_000, 12_000))
        reference = np.sort(np.round(rng.normal(size=n1), int(rng.integers(1, 4))))
        current = np.sort(np.round(rng.normal(0.05, 1.1, size=n2), int(rng.integers(1, 4))))
        expected = stats.ks_2samp(reference, current).statistic
        assert num.ks_statistic(reference, current, chunk=chunk) == pytest.approx(expected, abs=1e-12)
