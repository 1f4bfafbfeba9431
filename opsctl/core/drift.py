"""Data and prediction drift: reference summary, per-feature tests, effect sizes, verdicts.

Usage::

    summary = summarize_reference(reference_frame, categorical=["country", "predicted_class"])
    summary.save("fraud-detector-v7.drift.npz")            # once per model version
    ...
    summary = ReferenceSummary.load("fraud-detector-v7.drift.npz")
    report = detect_drift(summary, live_window, DriftPolicy())
    report.dataset_drift, [f.name for f in report.features if f.drifted]

What a feature's verdict means
------------------------------
- Numerical: two-sample Kolmogorov-Smirnov test (statistic and p-value as
  ``scipy.stats.ks_2samp``, default method), effect size = Wasserstein-1 distance divided by the
  reference's standard deviation, and the PSI on fixed reference-quantile bins (reported).
- Categorical: chi-squared on the 2 x K table of counts (as ``scipy.stats.chi2_contingency``)
  with an ``__unseen__`` bucket for categories the reference never had and a ``__missing__``
  bucket; effect size = Jensen-Shannon distance, base 2, in [0, 1].
- The p-values of all features of one check are corrected together (Benjamini-Hochberg by
  default, Bonferroni available; ``opsctl.core.multiple_testing``). A feature's distribution
  drifts only when its corrected test rejects (adjusted p <= alpha) **and** its effect size
  reaches the floor (``wasserstein_threshold`` / ``js_threshold``): a million-row window makes
  every p-value tiny, the effect size says whether the shift matters.
- Two signals of their own, which the common libraries lose by dropping NaNs: the missing-value
  rate (drift when it rises by more than ``missing_rate_threshold``, absolute) and, for
  categorical features, the share of unseen categories among the current non-missing values
  (drift above ``unseen_share_threshold``). Non-finite numbers (NaN, +-inf) count as missing.
- Fewer than ``min_rows`` non-missing values on either side: ``drifted`` is ``None`` with reason
  ``insufficient_data`` (never "no drift"), unless one of the two signals above fired.
- Dataset: ``dataset_rule = "share"`` drifts when the share of drifted features among those
  with a verdict reaches ``drift_share``; ``"any_critical"`` when any of ``critical_features``
  drifts. ``None`` when no feature could be judged.

Prediction drift
----------------
Pass the model's outputs as ordinary columns of both frames: a score or probability column is
numerical (``prediction_score``), a predicted class goes in ``categorical``
(``predicted_class``). They get the same tests and appear in ``features``; put them in
``critical_features`` with ``dataset_rule = "any_critical"`` to make prediction drift decide the
dataset verdict.

Evidently's definitions (evidently 0.7.23, ``evidently.legacy.calculations.stattests``)
---------------------------------------------------------------------------------------
- Normalized Wasserstein: the same, ``wasserstein_distance(ref, cur) / max(std(ref), 0.001)``
  with the population standard deviation; threshold 0.1 as Evidently's default.
- Jensen-Shannon: Evidently calls ``scipy.spatial.distance.jensenshannon`` with the natural
  logarithm, so its distance lies in [0, sqrt(ln 2)] = [0, 0.833]. We use base 2 so it lies in
  [0, 1]; ours = Evidently's / sqrt(ln 2) = 1.201 x Evidently's on the same shares, so the same
  0.1 threshold fires a little sooner for us. Deliberate: a bounded [0, 1] scale reads better.
  Our shares include the ``__unseen__`` and ``__missing__`` buckets (Evidently drops NaNs).
- PSI: the same formula, sum((ref - cur) * ln(ref / cur)) over bin shares, with an empty bin
  counted as share 0.0001 (Evidently uses 0.0001 too, or the smallest non-zero share / 1e6 when
  that is smaller). Deliberate difference in the bins: Evidently 0.7 bins numerical values with
  ``np.histogram_bin_edges(pooled, bins="sturges")`` over the pooled reference + current values
  (equal width, so the bins move with every window); we use ``psi_bins`` (10) reference-quantile
  bins, (-inf, q1], (q1, q2], ..., (qk, inf), fixed once per model version, so the PSI of two
  windows is comparable and the check needs nothing of the reference beyond the summary. For
  categoricals we report no PSI (the JS distance is the effect size).
- Evidently picks the test by sample size (KS/chi-squared up to 1,000 rows, Wasserstein/JS
  above) and does not correct for multiple testing; we always run the test *and* the effect
  size and require both.

Reference size: the tests' error rates hold over both samples. With one fixed reference per
model version, a feature whose reference sample happens to sit off its true distribution
alarms more often than alpha in every later check (in a simulation with 1,000-row references
one of 50 stable features alarmed in 10 % of checks); a reference several times the window's
size keeps that small.

Performance and memory: the reference is summarized once (sorted finite values per numerical
column, quantile edges, category counts); a check sorts each numerical column of the live
window exactly once (``drift_numeric.sort_into``, into a reused buffer of ``block_columns``
rows) and derives every statistic from that sorted array and the summary: the missing rate
from where the finite part ends, KS and Wasserstein against the reference's sorted values, the
PSI counts from the fixed edges. It never sorts or concatenates the reference, reads float64
columns without a copy and builds no NaN mask, so its working memory is one block of the
window plus a few arrays of one column's length per thread. The sort is ~85 % of a check's
time (see ``drift_numeric``). ``threads`` (default 1) measures the columns of a block in
parallel: numpy releases the GIL while it sorts and searches. It gives the same numbers; with a
second core free it makes a million-row check 1.5x faster, on a loaded machine it can lose, and
below ~100k rows it does not pay.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opsctl.core import drift_categorical as cat
from opsctl.core import drift_numeric as num
from opsctl.core.drift_policy import (
    DATASET_RULES,
    Distribution,
    DriftPolicy,
    DriftReport,
    FeatureDrift,
    render_markdown,
)
from opsctl.core.multiple_testing import adjust_pvalues
from opsctl.errors import IntegrityError, NotFoundError, UsageError

__all__ = [
    "DATASET_RULES",
    "CategoricalReference",
    "Distribution",
    "DriftPolicy",
    "DriftReport",
    "FeatureDrift",
    "NumericalReference",
    "ReferenceSummary",
    "detect_drift",
    "render_markdown",
    "summarize_reference",
]

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
SUMMARY_FORMAT = "opsctl-drift-reference/1"


# --------------------------------------------------------------------------------------------
# Reference summary


@dataclass(frozen=True, eq=False)
class NumericalReference:
    """One numerical column of the reference: its sorted finite values and fixed PSI bins."""

    name: str
    sorted_values: np.ndarray
    missing: int
    std: float
    psi_edges: np.ndarray
    psi_counts: np.ndarray


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """One categorical column of the reference: category counts and missing count."""

    name: str
    categories: tuple[Any, ...]
    counts: np.ndarray
    missing: int


@dataclass(frozen=True, eq=False)
class ReferenceSummary:
    """What a drift check needs of the reference sample, computed once per model version."""

    rows: int
    numerical: tuple[NumericalReference, ...]
    categorical: tuple[CategoricalReference, ...]
    psi_bins: int

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.numerical] + [c.name for c in self.categorical]

    def to_bytes(self) -> bytes:
        """Serialize as an ``.npz`` archive of plain arrays plus JSON metadata (no pickle)."""
        meta = {
            "format": SUMMARY_FORMAT,
            "rows": self.rows,
            "psi_bins": self.psi_bins,
            "numerical": [{"name": c.name, "missing": c.missing, "std": c.std} for c in self.numerical],
            "categorical": [
                {"name": c.name, "missing": c.missing, "categories": list(c.categories)}
                for c in self.categorical
            ],
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        }
        for i, c in enumerate(self.numerical):
            arrays[f"num{i}_values"] = c.sorted_values
            arrays[f"num{i}_psi_edges"] = c.psi_edges
            arrays[f"num{i}_psi_counts"] = c.psi_counts
        for i, c in enumerate(self.categorical):
            arrays[f"cat{i}_counts"] = c.counts
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceSummary:
        """Inverse of ``to_bytes``; raises ``IntegrityError`` on anything else."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != SUMMARY_FORMAT:
                    raise IntegrityError(f"unknown reference summary format {meta.get('format')!r}")
                numerical = tuple(
                    NumericalReference(
                        name=str(m["name"]),
                        sorted_values=archive[f"num{i}_values"].astype(np.float64),
                        missing=int(m["missing"]),
                        std=float(m["std"]),
                        psi_edges=archive[f"num{i}_psi_edges"].astype(np.float64),
                        psi_counts=archive[f"num{i}_psi_counts"].astype(np.int64),
                    )
                    for i, m in enumerate(meta["numerical"])
                )
                categorical = tuple(
                    CategoricalReference(
                        name=str(m["name"]),
                        categories=tuple(m["categories"]),
                        counts=archive[f"cat{i}_counts"].astype(np.int64),
                        missing=int(m["missing"]),
                    )
                    for i, m in enumerate(meta["categorical"])
                )
                return cls(rows=int(meta["rows"]), numerical=numerical, categorical=categorical,
                           psi_bins=int(meta["psi_bins"]))
        except IntegrityError:
            raise
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise IntegrityError(f"not a valid opsctl reference summary: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the summary to ``path`` (an ``.npz`` file; no pickle)."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> ReferenceSummary:
        """Read a summary written by ``save``."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError("reference summary", str(path)) from exc
        except OSError as exc:
            raise UsageError(f"cannot read reference summary {path}: {exc.strerror or exc}") from exc
        try:
            return cls.from_bytes(data)
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: {exc.message}") from exc


def _numeric_values(frame: pd.DataFrame, name: str, side: str) -> np.ndarray:
    """A column as float64 with NaN for missing; UsageError when it is not numerical."""
    column = frame[name]
    if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        raise UsageError(
            f"column {name!r} is numerical in the reference but {column.dtype} in the {side} data; "
            "list it as categorical or fix its type"
            if side == "current"
            else f"column {name!r} is not numerical ({column.dtype}); list it as categorical"
        )
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def summarize_reference(
    frame: pd.DataFrame, categorical: Sequence[str] = (), *, psi_bins: int = 10
) -> ReferenceSummary:
    """Summarize a reference sample: every column not in ``categorical`` must be numerical."""
    if psi_bins < 2:
        raise UsageError(f"psi_bins must be at least 2, not {psi_bins}")
    categorical_set = set(categorical)
    absent = [name for name in categorical if name not in frame.columns]
    if absent:
        raise UsageError(f"categorical column(s) not in the reference: {', '.join(map(str, absent))}")
    numerical_refs = []
    categorical_refs = []
    for name in frame.columns:
        if not isinstance(name, str):
            raise UsageError(f"column names must be strings, not {name!r}")
        if name in categorical_set:
            categories, counts, missing = cat.reference_counts(frame[name])
            bad = [c for c in categories if not isinstance(c, str | int | float | bool)]
            if bad:
                raise UsageError(
                    f"categorical column {name!r} holds {type(bad[0]).__name__} values; cast it to str"
                )
            categorical_refs.append(CategoricalReference(name, tuple(categories), counts, missing))
        else:
            values = num.sort_into(_numeric_values(frame, name, "reference"), np.empty(len(frame)))
            finite = np.ascontiguousarray(num.finite_part(values))
            edges = num.psi_edges(finite, psi_bins) if finite.size else np.zeros(0)
            numerical_refs.append(
                NumericalReference(
                    name=name,
                    sorted_values=finite,
                    missing=int(values.size - finite.size),
                    std=float(np.std(finite)) if finite.size else math.nan,
                    psi_edges=edges,
                    psi_counts=num.bin_counts(finite, edges),
                )
            )
    return ReferenceSummary(len(frame), tuple(numerical_refs), tuple(categorical_refs), psi_bins)


# --------------------------------------------------------------------------------------------
# Check (the report's values live in drift_policy, numpy-free)


@dataclass
class _Measured:
    """Per-feature numbers before the multiple-testing correction (internal)."""

    name: str
    kind: str
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    psi: float | None = None
    missing_rate_reference: float | None = None
    missing_rate_current: float | None = None
    unseen_share: float | None = None
    enough: bool = False
    distribution: Distribution | None = None


PLOT_BINS = 20
PLOT_CATEGORIES = 12


def _share_quantile(sorted_values: np.ndarray, q: float) -> float:
    return float(sorted_values[int(q * (sorted_values.size - 1))])


def numerical_distribution(reference: np.ndarray, current: np.ndarray, bins: int = PLOT_BINS) -> Distribution | None:
    """Both sorted finite samples counted in ``bins`` equal-width bins over their 1st-99th percentile."""
    if reference.size == 0 or current.size == 0:
        return None
    lo = min(_share_quantile(reference, 0.01), _share_quantile(current, 0.01))
    hi = max(_share_quantile(reference, 0.99), _share_quantile(current, 0.99))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    return Distribution("numerical", tuple(float(e) for e in edges), (),
                        tuple(int(c) for c in num.bin_counts(reference, edges[1:-1])),
                        tuple(int(c) for c in num.bin_counts(current, edges[1:-1])))


def categorical_distribution(categories: Sequence[Any], reference: np.ndarray, current: np.ndarray, unseen: int,
                             top: int = PLOT_CATEGORIES) -> Distribution:
    """The ``top`` reference categories (reference order: most frequent first), the rest and the unseen."""
    labels = [str(c) for c in categories[:top]]
    ref_counts = [int(c) for c in reference[:top]]
    cur_counts = [int(c) for c in current[:top]]
    if len(categories) > top:
        labels.append("(other)")
        ref_counts.append(int(reference[top:].sum()))
        cur_counts.append(int(current[top:].sum()))
    if unseen:
        labels.append("(unseen)")
        ref_counts.append(0)
        cur_counts.append(int(unseen))
    return Distribution("categorical", (), tuple(labels), tuple(ref_counts), tuple(cur_counts))


def _rate(part: int, total: int) -> float | None:
    return part / total if total else None


def _measure_numerical(
    summary: ReferenceSummary, current: pd.DataFrame, policy: DriftPolicy
) -> list[_Measured]:
    rows = len(current)
    out: list[_Measured] = []
    refs = summary.numerical
    width = min(policy.block_columns, len(refs))
    # One (columns x rows) block of the window, reused for every block and sorted in place.
    buffer = np.empty((width, rows), dtype=np.float64) if refs else np.empty((0, rows))

    def measure(ref: NumericalReference, source: np.ndarray | None, row: np.ndarray) -> _Measured:
        # The window's one sort; numpy releases the GIL in it and in the searches, so the
        # columns of a block run in parallel with ``threads``.
        if source is None:
            row.fill(np.nan)
        else:
            num.sort_into(source, row)
        c = num.finite_part(row)
        r = ref.sorted_values
        m = _Measured(
            name=ref.name,
            kind=NUMERICAL,
            missing_rate_reference=_rate(ref.missing, summary.rows),
            missing_rate_current=_rate(rows - c.size, rows),
        )
        m.enough = r.size >= policy.min_rows and c.size >= policy.min_rows
        m.distribution = numerical_distribution(r, c)
        if m.enough:
            m.statistic, m.p_value = num.ks_2samp_sorted(r, c)
            m.effect_size = num.wasserstein_sorted(r, c) / max(ref.std, num.SPREAD_FLOOR)
            if policy.psi_bins == summary.psi_bins:
                edges, ref_counts = ref.psi_edges, ref.psi_counts
            else:
                edges = num.psi_edges(r, policy.psi_bins)
                ref_counts = num.bin_counts(r, edges)
            m.psi = num.psi(ref_counts, num.bin_counts(c, edges))
        return m

    with ThreadPoolExecutor(max_workers=policy.threads) if policy.threads > 1 else nullcontext() as pool:
        for start in range(0, len(refs), policy.block_columns):
            block = refs[start : start + policy.block_columns]
            # Float64 views of the window's columns where pandas has them (no copy); the sort
            # writes each into its row of the reused block buffer.
            sources = [
                _numeric_values(current, ref.name, "current") if ref.name in current.columns else None
                for ref in block
            ]
            rows_of_block = list(buffer[: len(block)])
            if pool is None:
                out.extend(map(measure, block, sources, rows_of_block))
            else:
                out.extend(pool.map(measure, block, sources, rows_of_block))
    return out


def _measure_categorical(
    summary: ReferenceSummary, current: pd.DataFrame, policy: DriftPolicy
) -> list[_Measured]:
    rows = len(current)
    out: list[_Measured] = []
    for ref in summary.categorical:
        if ref.name in current.columns:
            counts, unseen, missing = cat.current_counts(current[ref.name], ref.categories)
        else:
            counts, unseen, missing = np.zeros(len(ref.categories), np.int64), 0, rows
        present = rows - missing
        m = _Measured(
            name=ref.name,
            kind=CATEGORICAL,
            missing_rate_reference=_rate(ref.missing, summary.rows),
            missing_rate_current=_rate(missing, rows),
            unseen_share=_rate(unseen, present),
        )
        m.enough = summary.rows - ref.missing >= policy.min_rows and present >= policy.min_rows
        m.distribution = categorical_distribution(ref.categories, ref.counts, counts, unseen)
        if m.enough:
            observed = cat.table(ref.counts, ref.missing, counts, unseen, missing)
            m.statistic, m.p_value = cat.chi2_test(observed)
            m.effect_size = cat.jensen_shannon(observed)
        out.append(m)
    return out


def detect_drift(summary: ReferenceSummary, current: pd.DataFrame, policy: DriftPolicy) -> DriftReport:
    """Compare a live window with the reference summary under ``policy``."""
    unknown = [name for name in policy.critical_features if name not in summary.columns]
    if unknown:
        raise UsageError(f"critical feature(s) not in the reference: {', '.join(unknown)}")
    measured = _measure_numerical(summary, current, policy) + _measure_categorical(summary, current, policy)

    tested = [m for m in measured if m.enough]
    adjusted = adjust_pvalues(np.array([m.p_value for m in tested], dtype=np.float64), policy.correction)
    adjusted_by_name = {m.name: float(a) for m, a in zip(tested, adjusted, strict=True)}

    features = tuple(_verdict(m, adjusted_by_name.get(m.name), policy) for m in measured)
    judged = [f for f in features if f.drifted is not None]
    drifted_count = sum(1 for f in judged if f.drifted)
    share = drifted_count / len(judged) if judged else None
    if policy.dataset_rule == "share":
        dataset = None if share is None else share >= policy.drift_share
    else:
        critical = [f for f in features if f.name in policy.critical_features]
        if any(f.drifted for f in critical):
            dataset = True
        elif any(f.drifted is None for f in critical):
            dataset = None
        else:
            dataset = False
    return DriftReport(
        features=features,
        dataset_drift=dataset,
        drifted_count=drifted_count,
        share_drifted=share,
        rows_reference=summary.rows,
        rows_current=len(current),
        policy=policy,
    )


def _verdict(m: _Measured, p_adjusted: float | None, policy: DriftPolicy) -> FeatureDrift:
    numerical = m.kind == NUMERICAL
    floor = policy.wasserstein_threshold if numerical else policy.js_threshold
    reasons = []
    if (
        m.enough
        and p_adjusted is not None
        and m.effect_size is not None
        and p_adjusted <= policy.alpha
        and m.effect_size >= floor
    ):
        reasons.append("distribution")
    if (
        m.missing_rate_current is not None
        and m.missing_rate_reference is not None
        and m.missing_rate_current - m.missing_rate_reference > policy.missing_rate_threshold
    ):
        reasons.append("missing_rate")
    if m.unseen_share is not None and m.unseen_share > policy.unseen_share_threshold:
        reasons.append("unseen_categories")
    if reasons:
        drifted: bool | None = True
        reason = "+".join(reasons)
    elif not m.enough:
        drifted, reason = None, "insufficient_data"
    elif p_adjusted is not None and p_adjusted > policy.alpha:
        drifted, reason = False, "not_significant"
    else:
        drifted, reason = False, "effect_below_threshold"
    return FeatureDrift(
        name=m.name,
        kind=m.kind,
        test="ks" if numerical else "chi2",
        statistic=m.statistic,
        p_value=m.p_value,
        p_value_adjusted=p_adjusted,
        effect_size=m.effect_size,
        effect_metric="wasserstein_norm" if numerical else "jensen_shannon",
        psi=m.psi,
        missing_rate_reference=m.missing_rate_reference,
        missing_rate_current=m.missing_rate_current,
        unseen_share=m.unseen_share,
        drifted=drifted,
        reason=reason,
        distribution=m.distribution,
    )
