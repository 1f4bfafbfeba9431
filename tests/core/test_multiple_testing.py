import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from opsctl.core.multiple_testing import adjust_pvalues, reject

STATSMODELS_METHOD = {"bh": "fdr_bh", "bonferroni": "bonferroni"}


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        rng.uniform(size=50),
        np.concatenate([rng.uniform(size=45), rng.uniform(0, 1e-4, size=5)]),
        np.array([0.01, 0.01, 0.01, 0.04, 0.04]),  # ties
        np.array([0.0, 1.0, 0.5]),
        np.array([0.03]),
        rng.uniform(0, 0.002, size=200),
    ]


@pytest.mark.parametrize("method", ["bh", "bonferroni"])
@pytest.mark.parametrize("case", range(6))
def test_matches_statsmodels(method: str, case: int) -> None:
    p = _cases()[case]
    expected_reject, expected_adjusted, _, _ = multipletests(p, alpha=0.05, method=STATSMODELS_METHOD[method])
    np.testing.assert_allclose(adjust_pvalues(p, method), expected_adjusted, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(reject(p, 0.05, method), expected_reject)


def test_bh_rejects_more_than_bonferroni_but_not_everything() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert reject(p, 0.05, "bonferroni").sum() == 1
    assert reject(p, 0.05, "bh").sum() == 2


def test_empty_and_invalid() -> None:
    assert adjust_pvalues(np.array([]), "bh").size == 0
    with pytest.raises(ValueError, match="correction"):
        adjust_pvalues(np.array([0.1]), "holm")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues(np.array([0.1, np.nan]), "bh")
