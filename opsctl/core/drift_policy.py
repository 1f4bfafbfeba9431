"""The ``[drift]`` settings, the drift report's values and their Markdown rendering, without numpy.

``opsctl config check`` and anything else that only validates ``[drift]`` (or reads or renders a
report it already has) imports this module, not ``opsctl.core.drift``, so it does not pay for
numpy, pandas and scipy. ``opsctl.core.drift`` computes the report and re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from opsctl.core.multiple_testing import CORRECTIONS

DATASET_RULES = ("share", "any_critical")


@dataclass(frozen=True)
class DriftPolicy:
    """The ``[drift]`` section of opsctl.toml: how a drift check turns statistics into verdicts."""

    alpha: float = 0.05
    correction: str = "bh"
    wasserstein_threshold: float = 0.1
    js_threshold: float = 0.1
    psi_bins: int = 10
    psi_threshold: float = 0.2
    dataset_rule: str = "share"
    drift_share: float = 0.5
    critical_features: list[str] = field(default_factory=list)
    min_rows: int = 100
    missing_rate_threshold: float = 0.1
    unseen_share_threshold: float = 0.05
    block_columns: int = 8
    threads: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive), not {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {self.correction!r}")
        for key in ("wasserstein_threshold", "js_threshold", "psi_threshold"):
            value = getattr(self, key)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{key} must be a finite number >= 0, not {value}")
        if self.js_threshold > 1.0:
            raise ValueError(f"js_threshold must be at most 1 (base-2 JS distance), not {self.js_threshold}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins must be at least 2, not {self.psi_bins}")
        if self.dataset_rule not in DATASET_RULES:
            raise ValueError(
                f"dataset_rule must be one of {', '.join(DATASET_RULES)}, not {self.dataset_rule!r}"
            )
        if not 0.0 < self.drift_share <= 1.0:
            raise ValueError(f"drift_share must be in (0, 1], not {self.drift_share}")
        if self.dataset_rule == "any_critical" and not self.critical_features:
            raise ValueError('dataset_rule "any_critical" needs at least one name in critical_features')
        if self.min_rows < 2:
            raise ValueError(f"min_rows must be at least 2, not {self.min_rows}")
        for key in ("missing_rate_threshold", "unseen_share_threshold"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], not {value}")
        if self.block_columns < 1:
            raise ValueError(f"block_columns must be at least 1, not {self.block_columns}")
        if not 1 <= self.threads <= 64:
            raise ValueError(f"threads must be between 1 and 64, not {self.threads}")



# --------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class Distribution:
    """Reference and current counts of one feature over the same bins, for a plot.

    Numerical: ``edges`` are the bounds of equal-width bins over the 1st to 99th percentile of both
    samples together; values beyond them are counted in the outer bins. Categorical: ``labels`` are the
    reference's most frequent categories, then ``(other)`` for the rest and ``(unseen)`` for current
    values the reference never had. Missing values are not counted.
    """

    kind: str  # numerical | categorical
    edges: tuple[float, ...]
    labels: tuple[str, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "edges": list(self.edges), "labels": list(self.labels),
                "reference": list(self.reference), "current": list(self.current)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Distribution:
        return cls(str(data["kind"]), tuple(float(e) for e in data.get("edges", ())),
                   tuple(str(label) for label in data.get("labels", ())),
                   tuple(int(c) for c in data["reference"]), tuple(int(c) for c in data["current"]))


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature, with its evidence."""

    name: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None
    effect_size: float | None
    effect_metric: str
    psi: float | None
    missing_rate_reference: float | None
    missing_rate_current: float | None
    unseen_share: float | None
    drifted: bool | None
    reason: str
    distribution: Distribution | None = None

    def to_json(self) -> dict[str, Any]:
        document = {key: _json_value(value) for key, value in asdict(self).items() if key != "distribution"}
        document["distribution"] = None if self.distribution is None else self.distribution.to_json()
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureDrift:
        """The inverse of :meth:`to_json` (a stored report; reports stored before plots have no distribution)."""
        fields = {key: value for key, value in data.items() if key != "distribution"}
        distribution = data.get("distribution")
        return cls(**fields, distribution=Distribution.from_json(distribution) if distribution else None)


@dataclass(frozen=True)
class DriftReport:
    """The outcome of one drift check: per-feature verdicts and the dataset verdict."""

    features: tuple[FeatureDrift, ...]
    dataset_drift: bool | None
    drifted_count: int
    share_drifted: float | None
    rows_reference: int
    rows_current: int
    policy: DriftPolicy

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "drifted_count": self.drifted_count,
            "share_drifted": _json_value(self.share_drifted),
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "features": [f.to_json() for f in self.features],
            "policy": asdict(self.policy),
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Markdown


def _fmt(value: float | None, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def render_markdown(report: DriftReport, title: str = "Drift report") -> str:
    """The report as a Markdown section for incident write-ups."""
    policy = report.policy
    verdict = {True: "**DRIFT**", False: "no drift", None: "unknown (not enough data)"}[report.dataset_drift]
    rule = (
        f"share of drifted features >= {policy.drift_share:g}"
        if policy.dataset_rule == "share"
        else f"any critical feature drifts ({', '.join(policy.critical_features)})"
    )
    lines = [
        f"## {title}",
        "",
        f"- Dataset verdict: {verdict} ({report.drifted_count} of "
        f"{sum(1 for f in report.features if f.drifted is not None)} judged features drifted; rule: {rule})",
        f"- Rows: reference {report.rows_reference:,}, current {report.rows_current:,}",
        f"- Tests corrected with {'Benjamini-Hochberg' if policy.correction == 'bh' else 'Bonferroni'} "
        f"at alpha {policy.alpha:g}; effect floors: normalized Wasserstein {policy.wasserstein_threshold:g}, "
        f"Jensen-Shannon {policy.js_threshold:g}",
        "",
        "| feature | kind | test | statistic | p-value | p adj. | effect | PSI | missing ref/cur "
        "| unseen | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in report.features:
        psi = _fmt(f.psi, ".3f")
        if f.psi is not None and f.psi >= policy.psi_threshold:
            psi += " ⚠"
        state = {True: "**drift**", False: "ok", None: "?"}[f.drifted]
        lines.append(
            f"| {f.name} | {f.kind} | {f.test} | {_fmt(f.statistic)} | {_fmt(f.p_value, '.3g')} "
            f"| {_fmt(f.p_value_adjusted, '.3g')} | {_fmt(f.effect_size, '.3f')} ({f.effect_metric}) | {psi} "
            f"| {_fmt(f.missing_rate_reference, '.1%')} / {_fmt(f.missing_rate_current, '.1%')} "
            f"| {_fmt(f.unseen_share, '.1%')} | {state} ({f.reason}) |"
        )
    return "\n".join(lines) + "\n"
