"""Performance drift: metrics on the labelled part of the window against the version's baseline.

Metrics (on predictions that have a ground-truth label):

- accuracy, precision and recall of the positive class, each with a **Wilson** score interval;
- ROC AUC of the positive class from the model's ``score`` (Mann-Whitney form, ties count one
  half, so it equals ``sklearn.metrics.roc_auc_score``), with a **DeLong** variance and the
  interval computed on the logit scale (so it stays inside [0, 1]).

A metric is *degraded* when it is confidently more than ``max_relative_drop`` (the chapter's
5 %) below its baseline: the upper end of its interval is under ``baseline * (1 -
max_relative_drop)``, never a point estimate from a small sample. The intervals are at
``confidence`` split over the metrics checked (Bonferroni: four metrics at 0.95 use 0.9875 each),
so a version at its baseline raises a false alarm in at most ``1 - confidence`` of the checks,
one-sided. ``require_significant_drop = false`` brings back the chapter's point-estimate rule
(``value < baseline * (1 - max_relative_drop)``), which alarms on noise.
Too few labels is a state of its own (``not_enough_labels``), never "ok"; a version without
baseline metrics gets ``no_baseline``, so missing data is never reported as healthy.

Labels and predictions are compared by value across JSON types: ``1``, ``1.0``, ``true`` and
``"1"`` are the same class (see :func:`canonical_label`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsctl.core.window import WindowSnapshot

METRICS = ("accuracy", "auc", "precision", "recall")

# Verdicts of a whole check, and states of one metric.
OK, DEGRADED, NOT_ENOUGH_LABELS, NO_BASELINE, UNDEFINED = (
    "ok", "degraded", "not_enough_labels", "no_baseline", "undefined",
)


@dataclass(frozen=True)
class PerformancePolicy:
    """The ``[performance]`` settings."""

    min_labels: int = 200  # labelled predictions needed before any verdict
    min_class_labels: int = 30  # per class (AUC) or per denominator (precision, recall)
    max_relative_drop: float = 0.05  # the chapter's threshold: alert on a drop of more than 5 %
    confidence: float = 0.95
    positive_label: str = "1"
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    require_significant_drop: bool = True

    def __post_init__(self) -> None:
        if self.min_labels < 1:
            raise ValueError("min_labels must be at least 1")
        if self.min_class_labels < 2:
            raise ValueError("min_class_labels must be at least 2 (a variance needs two)")
        if not 0 < self.max_relative_drop < 1:
            raise ValueError("max_relative_drop must lie strictly between 0 and 1 (0.05 is 5 %)")
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must lie strictly between 0 and 1, e.g. 0.95")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be a non-empty subset of {list(METRICS)}, got {self.metrics}")

    @property
    def decision_confidence(self) -> float:
        """The level of each metric's interval: ``confidence`` split over the metrics (Bonferroni)."""
        return 1.0 - (1.0 - self.confidence) / len(self.metrics)


@dataclass(frozen=True)
class BaselineMetrics:
    """The version's metrics at training/validation time (None: not recorded)."""

    accuracy: float | None = None
    auc: float | None = None
    precision: float | None = None
    recall: float | None = None

    def __post_init__(self) -> None:
        for name in METRICS:
            value = getattr(self, name)
            if value is not None and not (0 < value <= 1):
                raise ValueError(f"baseline {name} must lie in (0, 1], got {value}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BaselineMetrics:
        """From a registry version's metrics; other keys (loss, f1, ...) are ignored."""
        picked: dict[str, float] = {}
        for name in METRICS:
            value = values.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"baseline {name} must be a number, got {value!r}")
                picked[name] = float(value)
        return cls(**picked)

    def get(self, name: str) -> float | None:
        return getattr(self, name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class MetricResult:
    name: str
    state: str  # ok | degraded | not_enough_labels | no_baseline | undefined
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int  # observations behind the value (labelled rows, predicted or actual positives, scored rows)
    baseline: float | None
    relative_drop: float | None  # (baseline - value) / baseline; negative is an improvement
    floor: float | None  # baseline * (1 - max_relative_drop): below it is degraded

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PerformanceReport:
    verdict: str  # ok | degraded | not_enough_labels | no_baseline
    labelled: int
    min_labels: int
    max_relative_drop: float
    confidence: float
    metrics: tuple[MetricResult, ...]
    ci_methods: tuple[tuple[str, str], ...] = (
        ("accuracy", "wilson"), ("precision", "wilson"), ("recall", "wilson"), ("auc", "delong-logit"),
    )

    def metric(self, name: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "labelled": self.labelled,
            "min_labels": self.min_labels,
            "max_relative_drop": self.max_relative_drop,
            "confidence": self.confidence,
            "ci_methods": dict(self.ci_methods),
            "metrics": [m.to_json() for m in self.metrics],
        }


# --------------------------------------------------------------------------- statistics


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (agrees with statsmodels' ``wilson``)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must lie in [0, n]")
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def auc_delong(scores: Sequence[float], positive: Sequence[bool]) -> tuple[float, float]:
    """ROC AUC (Mann-Whitney, ties count 1/2) and its DeLong variance.

    Uses the midrank formulation of Sun & Xu (2014): O(n log n). Needs at least two
    observations of each class.
    """
    import numpy as np
    from scipy.stats import rankdata

    x = np.asarray(scores, dtype=float)
    pos = np.asarray(positive, dtype=bool)
    m, n = int(pos.sum()), int((~pos).sum())
    if m < 2 or n < 2:
        raise ValueError("AUC needs at least two positives and two negatives")
    ranks = rankdata(x)
    pos_ranks, neg_ranks = ranks[pos], ranks[~pos]
    auc = (pos_ranks.sum() - m * (m + 1) / 2) / (m * n)
    # Placements: for each positive, the share of negatives it beats (ties 1/2); for each
    # negative, the share of positives that beat it.
    v10 = (pos_ranks - rankdata(x[pos])) / n
    v01 = 1 - (neg_ranks - rankdata(x[~pos])) / m
    variance = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    return float(auc), float(variance)


def auc_interval(auc: float, variance: float, confidence: float = 0.95) -> tuple[float, float]:
    """Normal interval on the logit scale (delta method), mapped back into [0, 1]."""
    if auc <= 0 or auc >= 1 or variance <= 0:
        return auc, auc  # a perfect (or perfectly wrong) ranking: the estimate has no spread
    z = _z(confidence)
    logit = math.log(auc / (1 - auc))
    half = z * math.sqrt(variance) / (auc * (1 - auc))
    return 1 / (1 + math.exp(-(logit - half))), 1 / (1 + math.exp(-(logit + half)))


def canonical_label(value: object) -> str:
    """One spelling per class across JSON types: True/1/1.0/"1" -> "1", False/0 -> "0"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- evaluation


def evaluate_performance(
    predictions: Sequence[object],
    labels: Sequence[object],
    scores: Sequence[float | None] | None,
    baseline: BaselineMetrics,
    policy: PerformancePolicy | None = None,
) -> PerformanceReport:
    """Compare the metrics of labelled predictions with the baseline (rows are aligned).

    ``scores`` are the positive-class scores (None where the model gave none); AUC uses the
    rows that have one.
    """
    policy = policy or PerformancePolicy()
    if len(predictions) != len(labels) or (scores is not None and len(scores) != len(labels)):
        raise ValueError("predictions, labels and scores must have the same length")
    positive = canonical_label(policy.positive_label)
    predicted = [canonical_label(p) for p in predictions]
    actual = [canonical_label(label) for label in labels]
    total = len(actual)

    results: list[MetricResult] = []
    for name in policy.metrics:
        value: float | None = None
        interval: tuple[float, float] | None = None
        if name == "accuracy":
            n = total
            enough = n >= policy.min_labels
            if enough:
                hits = sum(p == a for p, a in zip(predicted, actual, strict=True))
                value, interval = hits / n, wilson_interval(hits, n, policy.decision_confidence)
        elif name in ("precision", "recall"):
            # precision: among predicted positives; recall: among actual positives
            on_prediction = name == "precision"
            pairs = [
                (p, a) for p, a in zip(predicted, actual, strict=True) if (p if on_prediction else a) == positive
            ]
            n = len(pairs)
            enough = total >= policy.min_labels and n >= policy.min_class_labels
            if enough:
                hits = sum(p == a for p, a in pairs)
                value, interval = hits / n, wilson_interval(hits, n, policy.decision_confidence)
        else:  # auc
            row_scores = scores if scores is not None else [None] * total
            scored = [(s, a == positive) for s, a in zip(row_scores, actual, strict=True) if s is not None]
            n = len(scored)
            n_pos = sum(1 for _, is_pos in scored if is_pos)
            enough = total >= policy.min_labels and min(n_pos, n - n_pos) >= policy.min_class_labels
            if enough:
                auc, variance = auc_delong([s for s, _ in scored], [p for _, p in scored])
                value, interval = auc, auc_interval(auc, variance, policy.decision_confidence)
        results.append(_judge(name, value, interval, n, enough, baseline.get(name), policy))

    return PerformanceReport(
        verdict=_verdict(total, results, policy),
        labelled=total,
        min_labels=policy.min_labels,
        max_relative_drop=policy.max_relative_drop,
        confidence=policy.decision_confidence,
        metrics=tuple(results),
    )


def evaluate_window(
    snapshot: WindowSnapshot, baseline: BaselineMetrics, policy: PerformancePolicy | None = None
) -> PerformanceReport:
    """:func:`evaluate_performance` on the labelled rows of a window snapshot."""
    rows = snapshot.labelled_indices()
    return evaluate_performance(
        [snapshot.predictions[i] for i in rows],
        [snapshot.labels[i] for i in rows],
        [snapshot.scores[i] for i in rows],
        baseline,
        policy,
    )


def _judge(
    name: str,
    value: float | None,
    interval: tuple[float, float] | None,
    n: int,
    enough: bool,
    baseline: float | None,
    policy: PerformancePolicy,
) -> MetricResult:
    low, high = interval if interval else (None, None)
    floor = baseline * (1 - policy.max_relative_drop) if baseline is not None else None
    drop = (baseline - value) / baseline if baseline is not None and value is not None else None
    if not enough:
        state = NOT_ENOUGH_LABELS
    elif value is None:
        state = UNDEFINED
    elif floor is None:
        state = NO_BASELINE
    elif policy.require_significant_drop:
        state = DEGRADED if high is not None and high < floor else OK
    else:
        state = DEGRADED if value < floor else OK
    return MetricResult(name, state, value, low, high, n, baseline, drop, floor)


def severity_of(metrics: Sequence[Mapping[str, Any]]) -> str | None:
    """How bad a degraded report is, from its metrics' documents: ``critical``, ``warning`` or None.

    Critical when some degraded metric is confidently (its interval's upper end) more than twice
    the allowed drop below its baseline; warning for a significant drop short of that; None when
    nothing is degraded. Size and certainty both count: a big drop seen on few labels has a wide
    interval and stays a warning until the labels confirm it.
    """
    worst: str | None = None
    for metric in metrics:
        if metric.get("state") != DEGRADED:
            continue
        worst = "warning"
        high, floor, baseline = metric.get("ci_high"), metric.get("floor"), metric.get("baseline")
        if high is not None and floor is not None and baseline is not None and high < 2 * floor - baseline:
            return "critical"
    return worst


def _verdict(total: int, results: list[MetricResult], policy: PerformancePolicy) -> str:
    if total < policy.min_labels:
        return NOT_ENOUGH_LABELS
    states = {r.state for r in results}
    if DEGRADED in states:
        return DEGRADED
    if OK in states:
        return OK
    # Nothing could be compared: say why rather than calling it healthy.
    return NOT_ENOUGH_LABELS if NOT_ENOUGH_LABELS in states else NO_BASELINE
