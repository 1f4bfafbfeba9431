"""Canary analysis gates: canary vs production numbers -> pass / fail / inconclusive, with the numbers.

Pure: no I/O, no clock reads. The daemon's canary job reads one analysis window from Prometheus
and the label store into plain dataclasses (:class:`VersionWindow`, :class:`SlaInput`,
:class:`DriftInput`, :class:`CustomReading`), calls :func:`evaluate_gates` and hands the
:class:`Evaluation` to :func:`opsctl.core.canary.step`.

Rules every gate follows:

- missing data (``None``, NaN, counters that make no sense) is **inconclusive**, never pass;
- too little traffic to judge is **inconclusive** and says how much is needed (``sample_needed``);
- each result carries the numbers behind the verdict (value, threshold, p-value, sample size).

>>> canary = VersionWindow(requests=5000, errors=10, p95_seconds=0.20, p99_seconds=0.40)
>>> production = VersionWindow(requests=95000, errors=190, p95_seconds=0.19, p99_seconds=0.41)
>>> latency_gates(canary, production, tolerance=1.2, min_requests=200, slack_seconds=0.0)[0].verdict
<Verdict.PASS: 'pass'>
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from opsctl.core.abtest import sample_size_per_group, two_proportion_ztest


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    # The gate's question has no meaning in this window (a comparison with production when the
    # canary has all the traffic); it reports its numbers and takes no part in the verdict.
    NOT_APPLICABLE = "not_applicable"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class VersionWindow:
    """What one model version did during the analysis window; ``None`` means the source had no value."""

    requests: int | None = None
    errors: int | None = None
    p95_seconds: float | None = None
    p99_seconds: float | None = None
    labelled: int | None = None  # predictions whose delayed label has arrived
    correct: int | None = None  # of those, how many were right

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p95_seconds": self.p95_seconds,
            "p99_seconds": self.p99_seconds,
            "labelled": self.labelled,
            "correct": self.correct,
        }


@dataclass(frozen=True)
class SlaInput:
    """The canary version's SLA status from the health checks (``healthy | degraded | unknown``)."""

    status: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriftInput:
    """The dataset-drift verdict on the canary's inputs; ``drifted=None`` means no verdict."""

    drifted: bool | None
    reason: str = ""
    p_value: float | None = None


@dataclass(frozen=True)
class CustomReading:
    """The value a custom PromQL gate's query returned, or the error that prevented it."""

    name: str
    value: float | None = None
    error: str | None = None


_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class CustomGate:
    """A ``[[canary.custom_gates]]`` entry: the gate passes when ``value <comparator> threshold``.

    ``query`` is a PromQL template; the daemon fills in the model and canary version and reads one
    scalar.
    """

    name: str
    query: str
    comparator: str = "<"
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("custom gate name must not be empty")
        if not self.query:
            raise ValueError(f"custom gate {self.name!r}: query must not be empty")
        if self.comparator not in _COMPARATORS:
            allowed = ", ".join(repr(c) for c in _COMPARATORS)
            raise ValueError(f"custom gate {self.name!r}: comparator must be one of {allowed}, got {self.comparator!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise ValueError(f"custom gate {self.name!r}: threshold must be a number, got {self.threshold!r}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"custom gate {self.name!r}: threshold must be finite, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "query": self.query, "comparator": self.comparator, "threshold": self.threshold}


@dataclass(frozen=True)
class GateInputs:
    """Everything one evaluation looks at; the same window for canary and production."""

    canary: VersionWindow
    production: VersionWindow
    sla: SlaInput | None = None
    drift: DriftInput | None = None
    custom: tuple[CustomReading, ...] = ()
    # Accuracy is compared with this window when given (e.g. production's accuracy on the
    # labelled baseline set), else with ``production``.
    quality_reference: VersionWindow | None = None
    # The SLA's error-rate threshold in percent (SlaThresholds.error_rate_percent) for the
    # absolute ceiling; the policy's ``max_error_rate_percent`` wins when set.
    sla_error_rate_percent: float | None = None
    # Set by the shell when the metrics source failed; the message says how.
    metrics_error: str | None = None
    # The canary's share of traffic in percent during the window. At 100 production serves
    # nothing, so the comparative gates are not applicable (see :func:`evaluate_gates`).
    canary_weight: float | None = None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict and the numbers behind it."""

    name: str
    verdict: Verdict
    value: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    sample_size: int | None = None
    sample_needed: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "value": self.value,
            "threshold": self.threshold,
            "p_value": self.p_value,
            "sample_size": self.sample_size,
            "sample_needed": self.sample_needed,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateResult:
        return cls(
            name=str(data["name"]),
            verdict=Verdict(data["verdict"]),
            value=_opt_float(data.get("value")),
            threshold=_opt_float(data.get("threshold")),
            p_value=_opt_float(data.get("p_value")),
            sample_size=_opt_int(data.get("sample_size")),
            sample_needed=_opt_int(data.get("sample_needed")),
            reason=str(data.get("reason", "")),
        )


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """Fail if any fails, inconclusive if any is inconclusive (or nothing applies), else pass.

    ``not_applicable`` verdicts are left out: an evaluation made only of them is inconclusive.
    """
    verdicts = [v for v in verdicts if v is not Verdict.NOT_APPLICABLE]
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if not verdicts or Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


@dataclass(frozen=True)
class Evaluation:
    """All gate results of one analysis run and the overall verdict.

    ``metrics_error`` is true when the metrics source failed; such an evaluation never counts as
    a pass (the canary state machine counts it as a metrics-source error unless a gate failed).
    """

    verdict: Verdict
    results: tuple[GateResult, ...] = ()
    metrics_error: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        expected = combine([r.verdict for r in self.results])
        if self.verdict is not expected:
            # An evaluation that says "pass" over failing or missing results is a bug upstream.
            raise ValueError(
                f"evaluation verdict {self.verdict.value!r} contradicts its gate results ({expected.value})"
            )

    @classmethod
    def of(cls, results: Sequence[GateResult], *, metrics_error: bool = False, reason: str = "") -> Evaluation:
        """An evaluation whose verdict is combined from ``results``."""
        results = tuple(results)
        verdict = combine([r.verdict for r in results])
        return cls(verdict=verdict, results=results, metrics_error=metrics_error, reason=reason or _summary(results))

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "results": [r.to_json() for r in self.results],
            "metrics_error": self.metrics_error,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            verdict=Verdict(data["verdict"]),
            results=tuple(GateResult.from_json(r) for r in data.get("results", ())),
            metrics_error=bool(data.get("metrics_error", False)),
            reason=str(data.get("reason", "")),
        )


def _summary(results: Sequence[GateResult]) -> str:
    if not results:
        return "no gate produced a result"
    if all(r.verdict is Verdict.NOT_APPLICABLE for r in results):
        return "inconclusive: no gate applies to this window"
    failing = [r for r in results if r.verdict is Verdict.FAIL]
    unsure = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    if failing:
        return "failed: " + "; ".join(f"{r.name}: {r.reason}" for r in failing)
    if unsure:
        return "inconclusive: " + "; ".join(f"{r.name}: {r.reason}" for r in unsure)
    judged = [r.name for r in results if r.verdict is Verdict.PASS]
    skipped = [r.name for r in results if r.verdict is Verdict.NOT_APPLICABLE]
    text = "all gates passed: " + ", ".join(judged)
    return text + (f" (not applicable: {', '.join(skipped)})" if skipped else "")


# --------------------------------------------------------------------------- helpers


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _counts_problem(requests: int | None, errors: int | None, who: str) -> str | None:
    """Why a (requests, errors) pair cannot be used, or None when it can."""
    if requests is None or errors is None:
        return f"no request/error counts for {who}"
    if requests < 0 or errors < 0 or errors > requests:
        return f"inconsistent counts for {who} ({errors} errors of {requests} requests)"
    return None


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# --------------------------------------------------------------------------- gates


def error_rate_gate(
    canary: VersionWindow,
    production: VersionWindow,
    *,
    alpha: float,
    power: float,
    mde_relative: float,
    min_baseline: float,
    min_requests: int,
) -> GateResult:
    """Is the canary's error rate higher than production's on the same window?

    One-sided two-proportion z-test (treatment = canary, "larger"). A significant excess fails
    (once the canary has ``min_requests``, so the normal approximation holds). Otherwise the gate
    passes only when the canary has the traffic the test needs to detect a relative increase of
    ``mde_relative`` with ``power`` (production's rate, floored at ``min_baseline`` so a
    zero-error production does not demand infinite traffic); below that it is inconclusive and
    reports the sample needed.
    """
    name = "error_rate"
    for window, who in ((canary, "canary"), (production, "production")):
        problem = _counts_problem(window.requests, window.errors, who)
        if problem:
            return GateResult(name, Verdict.INCONCLUSIVE, sample_size=canary.requests, reason=problem)
    assert canary.requests is not None and canary.errors is not None
    assert production.requests is not None and production.errors is not None
    if production.requests == 0:
        return GateResult(
            name, Verdict.INCONCLUSIVE, sample_size=canary.requests, reason="no production traffic to compare with"
        )
    baseline = max(production.errors / production.requests, min_baseline)
    baseline = min(baseline, 1.0 / (1.0 + mde_relative) - 1e-9)  # keep the alternative rate below 1
    needed = max(
        min_requests,
        sample_size_per_group(baseline, mde_relative, alpha=alpha, power=power, alternative="larger"),
    )
    if canary.requests < min_requests:
        return GateResult(
            name,
            Verdict.INCONCLUSIVE,
            value=canary.errors / canary.requests if canary.requests else None,
            threshold=production.errors / production.requests,
            sample_size=canary.requests,
            sample_needed=needed,
            reason=f"{canary.requests} canary requests, {needed} needed",
        )
    test = two_proportion_ztest(
        production.errors, production.requests, canary.errors, canary.requests, alpha=alpha, alternative="larger"
    )
    numbers = {
        "value": test.treatment_rate,
        "threshold": test.control_rate,
        "p_value": test.p_value,
        "sample_size": canary.requests,
        "sample_needed": needed,
    }
    if test.significant:
        return GateResult(
            name,
            Verdict.FAIL,
            **numbers,
            reason=(
                f"canary error rate {test.treatment_rate:.2%} above production {test.control_rate:.2%} "
                f"(one-sided p={test.p_value:.3g} < {alpha})"
            ),
        )
    if canary.requests < needed:
        return GateResult(
            name,
            Verdict.INCONCLUSIVE,
            **numbers,
            reason=(
                f"no significant excess yet, but {canary.requests} canary requests cannot rule out "
                f"a {mde_relative:.0%} increase; {needed} needed"
            ),
        )
    return GateResult(
        name,
        Verdict.PASS,
        **numbers,
        reason=f"canary {test.treatment_rate:.2%} vs production {test.control_rate:.2%} (p={test.p_value:.3g})",
    )


def error_ceiling_gate(
    canary: VersionWindow, *, ceiling_percent: float | None, alpha: float, min_requests: int
) -> GateResult:
    """Is the canary's error rate above the SLA's absolute ceiling?

    Fails when the excess over the ceiling is significant (one-sided exact binomial test), so a
    canary running just under the ceiling is not rolled back by noise; passes when the rate is
    significantly below it, or at or below it with ``min_requests``.
    """
    name = "error_rate_ceiling"
    if ceiling_percent is None:
        return GateResult(name, Verdict.INCONCLUSIVE, reason="no error-rate ceiling configured")
    ceiling = ceiling_percent / 100.0
    problem = _counts_problem(canary.requests, canary.errors, "canary")
    if problem:
        return GateResult(name, Verdict.INCONCLUSIVE, threshold=ceiling, reason=problem)
    assert canary.requests is not None and canary.errors is not None
    if canary.requests < min_requests:
        return GateResult(
            name,
            Verdict.INCONCLUSIVE,
            value=canary.errors / canary.requests if canary.requests else None,
            threshold=ceiling,
            sample_size=canary.requests,
            sample_needed=min_requests,
            reason=f"{canary.requests} canary requests, {min_requests} needed",
        )
    from scipy.stats import binomtest  # scipy stays off the import path of one-shot CLI commands

    rate = canary.errors / canary.requests
    if ceiling >= 1.0:
        p_value = 1.0
    elif ceiling <= 0.0:
        p_value = 0.0 if canary.errors else 1.0
    else:
        p_value = float(binomtest(canary.errors, canary.requests, ceiling, alternative="greater").pvalue)
    numbers = {
        "value": rate,
        "threshold": ceiling,
        "p_value": p_value,
        "sample_size": canary.requests,
        "sample_needed": min_requests,
    }
    if p_value < alpha:
        return GateResult(
            name,
            Verdict.FAIL,
            **numbers,
            reason=f"canary error rate {rate:.2%} above the SLA ceiling {ceiling:.2%} (p={p_value:.3g})",
        )
    if rate > ceiling:
        return GateResult(
            name,
            Verdict.INCONCLUSIVE,
            **numbers,
            reason=f"canary error rate {rate:.2%} over the SLA ceiling {ceiling:.2%}, not yet significant",
        )
    return GateResult(name, Verdict.PASS, **numbers, reason=f"canary error rate {rate:.2%} <= ceiling {ceiling:.2%}")


def latency_gates(
    canary: VersionWindow,
    production: VersionWindow,
    *,
    tolerance: float,
    min_requests: int,
    slack_seconds: float,
) -> tuple[GateResult, GateResult]:
    """Canary p95 and p99 latency over production's; fails above ``tolerance`` times production.

    ``slack_seconds`` ignores differences too small to matter (2 ms vs 3 ms is a ratio of 1.5).
    Inconclusive with fewer than ``min_requests`` on either side or a missing/zero quantile.
    """
    results = []
    for label, can_q, prod_q in (
        ("p95", canary.p95_seconds, production.p95_seconds),
        ("p99", canary.p99_seconds, production.p99_seconds),
    ):
        name = f"latency_{label}"
        requests = canary.requests
        if requests is None or requests < min_requests:
            results.append(
                GateResult(
                    name,
                    Verdict.INCONCLUSIVE,
                    threshold=tolerance,
                    sample_size=requests,
                    sample_needed=min_requests,
                    reason=f"{requests or 0} canary requests, {min_requests} needed",
                )
            )
            continue
        if production.requests is None or production.requests < min_requests:
            results.append(
                GateResult(
                    name,
                    Verdict.INCONCLUSIVE,
                    threshold=tolerance,
                    sample_size=requests,
                    sample_needed=min_requests,
                    reason=f"{production.requests or 0} production requests, {min_requests} needed",
                )
            )
            continue
        if not (_usable(can_q) and _usable(prod_q)) or prod_q <= 0 or can_q < 0:  # type: ignore[operator]
            results.append(
                GateResult(
                    name,
                    Verdict.INCONCLUSIVE,
                    threshold=tolerance,
                    sample_size=requests,
                    reason=f"{label} latency missing (canary {can_q}, production {prod_q})",
                )
            )
            continue
        assert can_q is not None and prod_q is not None
        ratio = can_q / prod_q
        numbers = {"value": ratio, "threshold": tolerance, "sample_size": requests, "sample_needed": min_requests}
        detail = f"canary {label} {can_q * 1000:.0f} ms vs production {prod_q * 1000:.0f} ms (x{ratio:.2f})"
        if ratio > tolerance and can_q - prod_q > slack_seconds:
            results.append(GateResult(name, Verdict.FAIL, **numbers, reason=f"{detail} > x{tolerance:g}"))
        else:
            results.append(GateResult(name, Verdict.PASS, **numbers, reason=f"{detail} <= x{tolerance:g}"))
    return results[0], results[1]


def sla_gate(sla: SlaInput | None) -> GateResult:
    """The canary version's SLA status: healthy passes, degraded fails, anything else is inconclusive."""
    name = "sla"
    if sla is None:
        return GateResult(name, Verdict.INCONCLUSIVE, reason="no SLA status for the canary version")
    status = str(sla.status)
    reasons = "; ".join(sla.reasons)
    if status == "healthy":
        return GateResult(name, Verdict.PASS, reason=reasons or "healthy")
    if status == "degraded":
        return GateResult(name, Verdict.FAIL, reason=f"degraded: {reasons}" if reasons else "degraded")
    return GateResult(name, Verdict.INCONCLUSIVE, reason=f"SLA status {status}" + (f": {reasons}" if reasons else ""))


def accuracy_gate(
    canary: VersionWindow, reference: VersionWindow, *, min_labels: int, tolerance: float, alpha: float
) -> GateResult:
    """Canary accuracy from delayed labels against the reference (production or baseline).

    Fails when the canary is significantly more than ``tolerance`` (absolute) below the reference
    (one-sided z-test of the difference against the margin, unpooled variance); passes when the
    observed drop is within the tolerance; an observed drop beyond the tolerance that is not yet
    significant is inconclusive (more labels needed). Fewer than ``min_labels`` on either side is
    inconclusive with the labels needed.
    """
    name = "accuracy"
    for window, who in ((canary, "canary"), (reference, "reference")):
        if window.labelled is None or window.correct is None:
            return GateResult(name, Verdict.INCONCLUSIVE, sample_needed=min_labels, reason=f"no labels for {who}")
        if window.labelled < 0 or window.correct < 0 or window.correct > window.labelled:
            return GateResult(
                name,
                Verdict.INCONCLUSIVE,
                reason=f"inconsistent label counts for {who} ({window.correct} correct of {window.labelled})",
            )
        if window.labelled < min_labels:
            return GateResult(
                name,
                Verdict.INCONCLUSIVE,
                sample_size=canary.labelled,
                sample_needed=min_labels,
                reason=f"{window.labelled} labels for {who}, {min_labels} needed",
            )
    assert canary.labelled and canary.correct is not None and reference.labelled and reference.correct is not None
    p_can = canary.correct / canary.labelled
    p_ref = reference.correct / reference.labelled
    drop = p_ref - p_can
    se = math.sqrt(p_can * (1 - p_can) / canary.labelled + p_ref * (1 - p_ref) / reference.labelled)
    # se == 0: every label right (or every one wrong) on both sides, nothing to test with.
    p_value = _normal_sf((drop - tolerance) / se) if se > 0.0 else float(drop <= tolerance)
    numbers = {
        "value": p_can,
        "threshold": p_ref - tolerance,
        "p_value": p_value,
        "sample_size": canary.labelled,
        "sample_needed": min_labels,
    }
    detail = f"canary accuracy {p_can:.3f} vs reference {p_ref:.3f} (tolerance {tolerance:g})"
    if p_value < alpha:
        return GateResult(name, Verdict.FAIL, **numbers, reason=f"{detail}: significantly worse (p={p_value:.3g})")
    if drop > tolerance:
        return GateResult(name, Verdict.INCONCLUSIVE, **numbers, reason=f"{detail}: worse, not yet significant")
    return GateResult(name, Verdict.PASS, **numbers, reason=detail)


def drift_gate(drift: DriftInput | None) -> GateResult:
    """The dataset-drift verdict on the canary's inputs: drifted fails, no verdict is inconclusive."""
    name = "drift"
    if drift is None or drift.drifted is None:
        reason = drift.reason if drift is not None and drift.reason else "no drift verdict for the canary's inputs"
        return GateResult(name, Verdict.INCONCLUSIVE, reason=reason)
    verdict = Verdict.FAIL if drift.drifted else Verdict.PASS
    reason = drift.reason or ("inputs drifted" if drift.drifted else "no drift")
    return GateResult(name, verdict, p_value=drift.p_value, reason=reason)


def custom_gate(spec: CustomGate, reading: CustomReading | None) -> GateResult:
    """A custom PromQL gate: passes when ``value <comparator> threshold``; no value is inconclusive."""
    name = f"custom:{spec.name}"
    condition = f"{spec.comparator} {spec.threshold:g}"
    if reading is None:
        return GateResult(name, Verdict.INCONCLUSIVE, threshold=spec.threshold, reason="no reading")
    if reading.error is not None:
        return GateResult(name, Verdict.INCONCLUSIVE, threshold=spec.threshold, reason=f"query failed: {reading.error}")
    if not _usable(reading.value):
        return GateResult(name, Verdict.INCONCLUSIVE, threshold=spec.threshold, reason="query returned no value")
    assert reading.value is not None
    ok = _COMPARATORS[spec.comparator](reading.value, spec.threshold)
    return GateResult(
        name,
        Verdict.PASS if ok else Verdict.FAIL,
        value=reading.value,
        threshold=spec.threshold,
        reason=f"{reading.value:g} {'meets' if ok else 'fails'} {condition}",
    )


# --------------------------------------------------------------------------- all together


FULL_TRAFFIC_PERCENT = 100.0
_NO_PRODUCTION = "not applicable: no production traffic at 100 %"


def _not_applicable(result: GateResult, why: str) -> GateResult:
    """``result``'s numbers, marked not applicable (they are shown, they decide nothing)."""
    return replace(result, verdict=Verdict.NOT_APPLICABLE, reason=f"{why} ({result.reason})")


def _unjudged(result: GateResult, why: str) -> GateResult:
    """``result``'s numbers, inconclusive: nothing else judges what this gate would have."""
    return replace(result, verdict=Verdict.INCONCLUSIVE, reason=f"{why} ({result.reason})")


class AnalysisPolicy(Protocol):
    """What the gates read of a canary policy (``opsctl.core.canary.CanaryPolicy`` has these fields).

    A protocol, not an import: the canary machine imports the gates, so the gates must not import it.
    """

    @property
    def error_rate_alpha(self) -> float: ...
    @property
    def error_rate_power(self) -> float: ...
    @property
    def error_rate_mde_relative(self) -> float: ...
    @property
    def error_rate_min_baseline(self) -> float: ...
    @property
    def max_error_rate_percent(self) -> float | None: ...
    @property
    def latency_ratio_tolerance(self) -> float: ...
    @property
    def latency_slack_seconds(self) -> float: ...
    @property
    def min_requests(self) -> int: ...
    @property
    def sla_gate(self) -> bool: ...
    @property
    def accuracy_gate(self) -> bool: ...
    @property
    def min_labels(self) -> int: ...
    @property
    def accuracy_tolerance(self) -> float: ...
    @property
    def accuracy_alpha(self) -> float: ...
    @property
    def drift_gate(self) -> bool: ...
    @property
    def custom_gates(self) -> Sequence[CustomGate]: ...


def evaluate_gates(policy: AnalysisPolicy, inputs: GateInputs) -> Evaluation:
    """Run every gate the policy enables on one window; the overall verdict combines them.

    ``metrics_error`` is set when the shell says the source failed or a custom query failed.

    **At 100 %** (``inputs.canary_weight``) production serves nothing, so a comparison with it
    would only ever be inconclusive and the last stage could never pass. The stage is judged on
    the absolute gates instead: the error-rate ceiling, the SLA (latency and accuracy thresholds),
    accuracy against ``quality_reference`` when given, drift and custom gates. Each comparative
    gate is reported ``not_applicable`` with its numbers, but only when an absolute gate covers
    its question; otherwise it is inconclusive, so missing data never becomes a pass: the error
    rate needs a ceiling (``max_error_rate_percent`` or the SLA's), latency and an accuracy
    without ``quality_reference`` need ``sla_gate``.
    """
    full = inputs.canary_weight is not None and inputs.canary_weight >= FULL_TRAFFIC_PERCENT
    ceiling = policy.max_error_rate_percent
    if ceiling is None:
        ceiling = inputs.sla_error_rate_percent
    results = _evaluate(policy, inputs, ceiling)
    if full:
        results = [_at_full_traffic(r, policy, inputs, ceiling) for r in results]
    readings = {r.name: r for r in inputs.custom}
    custom_failed = any(readings.get(spec.name) is not None and readings[spec.name].error is not None
                        for spec in policy.custom_gates)
    metrics_error = inputs.metrics_error is not None or custom_failed
    evaluation = Evaluation.of(results, metrics_error=metrics_error)
    if inputs.metrics_error is not None:
        return Evaluation.of(
            results, metrics_error=True, reason=f"metrics source error: {inputs.metrics_error}; {evaluation.reason}"
        )
    return evaluation


def _at_full_traffic(result: GateResult, policy: AnalysisPolicy, inputs: GateInputs,
                     ceiling: float | None) -> GateResult:
    if result.name == "error_rate":
        canary = inputs.canary
        usable = _counts_problem(canary.requests, canary.errors, "canary") is None
        if result.value is None and usable and canary.requests:
            assert canary.errors is not None and canary.requests is not None
            result = replace(result, value=canary.errors / canary.requests)  # the canary's own rate
        if ceiling is None:
            return _unjudged(result, "no production traffic at 100 % and no error-rate ceiling to judge by")
        return _not_applicable(result, f"{_NO_PRODUCTION}; judged by error_rate_ceiling")
    if result.name.startswith("latency_"):
        if not policy.sla_gate:
            return _unjudged(result, "no production traffic at 100 % and sla_gate is off")
        return _not_applicable(result, f"{_NO_PRODUCTION}; judged by the SLA")
    if result.name == "accuracy" and inputs.quality_reference is None:
        if not policy.sla_gate:
            return _unjudged(result, "no production labels at 100 %, no quality_reference and sla_gate is off")
        return _not_applicable(result, f"{_NO_PRODUCTION}; judged by the SLA's accuracy floor")
    return result


def _evaluate(policy: AnalysisPolicy, inputs: GateInputs, ceiling: float | None) -> list[GateResult]:
    results: list[GateResult] = [
        error_rate_gate(
            inputs.canary,
            inputs.production,
            alpha=policy.error_rate_alpha,
            power=policy.error_rate_power,
            mde_relative=policy.error_rate_mde_relative,
            min_baseline=policy.error_rate_min_baseline,
            min_requests=policy.min_requests,
        )
    ]
    if ceiling is not None:
        results.append(
            error_ceiling_gate(
                inputs.canary, ceiling_percent=ceiling, alpha=policy.error_rate_alpha, min_requests=policy.min_requests
            )
        )
    results.extend(
        latency_gates(
            inputs.canary,
            inputs.production,
            tolerance=policy.latency_ratio_tolerance,
            min_requests=policy.min_requests,
            slack_seconds=policy.latency_slack_seconds,
        )
    )
    if policy.sla_gate:
        results.append(sla_gate(inputs.sla))
    if policy.accuracy_gate:
        reference = inputs.quality_reference if inputs.quality_reference is not None else inputs.production
        results.append(
            accuracy_gate(
                inputs.canary,
                reference,
                min_labels=policy.min_labels,
                tolerance=policy.accuracy_tolerance,
                alpha=policy.accuracy_alpha,
            )
        )
    if policy.drift_gate:
        results.append(drift_gate(inputs.drift))
    readings = {r.name: r for r in inputs.custom}
    results.extend(custom_gate(spec, readings.get(spec.name)) for spec in policy.custom_gates)
    return results
