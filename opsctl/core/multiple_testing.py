"""Multiple-testing corrections across the features of one drift check.

Testing 50 features at alpha 0.05 each flags at least one of them in about 92 % of checks on
data that has not moved at all. Both corrections here return adjusted p-values, so a feature is
rejected when its adjusted p-value is at most alpha (statsmodels' convention):

- ``bh``: Benjamini-Hochberg, controls the false discovery rate (and, when every feature is
  stable, the chance of any false alarm) at alpha; the default.
- ``bonferroni``: controls the family-wise error rate at alpha under any dependence.

Both agree with ``statsmodels.stats.multitest.multipletests`` (methods ``fdr_bh`` and
``bonferroni``) to floating-point rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# numpy is imported inside the functions: ``opsctl.core.drift_policy`` validates ``correction``
# against CORRECTIONS on the numpy-free path of ``opsctl config check``.
CORRECTIONS = ("bh", "bonferroni")


def adjust_pvalues(p_values: np.ndarray, method: str = "bh") -> np.ndarray:
    """Adjusted p-values (same order as given) for ``bh`` or ``bonferroni``."""
    import numpy as np

    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p_values must be one-dimensional")
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {method!r}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values must lie in [0, 1]")
    m = p.size
    if m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    # Step-up: each adjusted value is the smallest scaled p-value at its rank or above.
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    return adjusted


def reject(p_values: np.ndarray, alpha: float, method: str = "bh") -> np.ndarray:
    """Boolean mask of the hypotheses rejected at ``alpha`` after the correction."""
    return adjust_pvalues(p_values, method) <= alpha
