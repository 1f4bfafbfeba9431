"""Categorical drift kernels: bucket counts with explicit unseen and missing buckets,
chi-squared on the 2 x K table and the Jensen-Shannon distance (base 2).

The table has one column per reference category plus ``__unseen__`` (every current value the
reference never had, lumped together) and ``__missing__`` (NaN/None). Columns empty on both
sides are dropped before the test, as ``scipy.stats.chi2_contingency`` rejects zero expected
frequencies; the statistic and p-value are then exactly ``chi2_contingency`` on that table
(Yates' correction included when the table has two columns, scipy's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

UNSEEN = "__unseen__"
MISSING = "__missing__"


def reference_counts(values: pd.Series) -> tuple[list[Any], np.ndarray, int]:
    """(categories in first-seen order by count, their counts, missing count) of a reference column."""
    counts = values.value_counts(dropna=True, sort=True)
    categories = [_plain(v) for v in counts.index]
    missing = int(values.isna().sum())
    return categories, counts.to_numpy(dtype=np.int64), missing


def current_counts(values: pd.Series, categories: Sequence[Any]) -> tuple[np.ndarray, int, int]:
    """(counts per reference category, unseen count, missing count) of a current column."""
    missing = int(values.isna().sum())
    counts = values.value_counts(dropna=True, sort=False)
    index = pd.Index(list(categories), dtype=object) if categories else pd.Index([], dtype=object)
    positions = index.get_indexer(pd.Index(counts.index, dtype=object)) if len(counts) else np.zeros(0, int)
    observed = counts.to_numpy(dtype=np.int64)
    known = positions >= 0
    per_category = np.bincount(positions[known], weights=observed[known], minlength=len(categories))
    unseen = int(observed[~known].sum())
    return per_category.astype(np.int64), unseen, missing


def table(
    ref_counts: np.ndarray, ref_missing: int, cur_counts: np.ndarray, cur_unseen: int, cur_missing: int
) -> np.ndarray:
    """The 2 x K contingency table (reference row, current row) without all-empty columns."""
    ref_row = np.concatenate((ref_counts, [0, ref_missing]))
    cur_row = np.concatenate((cur_counts, [cur_unseen, cur_missing]))
    full = np.vstack((ref_row, cur_row)).astype(np.int64)
    return full[:, full.sum(axis=0) > 0]


def chi2_test(observed: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of ``scipy.stats.chi2_contingency`` on the table."""
    if observed.shape[1] < 2:
        # One bucket on both sides: no mix can shift; scipy reports 0 and 1 for dof 0 too.
        return 0.0, 1.0
    result = stats.chi2_contingency(observed)
    return float(result.statistic), float(result.pvalue)


def jensen_shannon(observed: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two rows' shares."""
    p = observed[0] / observed[0].sum()
    q = observed[1] / observed[1].sum()
    value = float(distance.jensenshannon(p, q, base=2))
    # sqrt of a rounding-negative divergence is nan; identical rows are distance 0.
    return 0.0 if np.isnan(value) else min(value, 1.0)


def _plain(value: Any) -> Any:
    """A category as a plain JSON scalar (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
