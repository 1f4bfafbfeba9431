"""Canary analysis gates: canary vs production numbers -> pass / fail / inconclusive, with the numbers.

Pure: no I/O, no clock reads. The daemon's canary job reads one analysis window from Prometheus
and the label store into plain dataclasses (:class:`VersionWindow`, :class:`SlaInput`,
:class:`DriftInput`, :class:`CustomReading`), calls :func:`evaluate_gates` and hands the
:class:`Evaluation` to :func:`opsctl.core.canary.step`.

Rules every gate follows:

- missing data (``None``, NaN, counters that make no sense) is **inconclusive**, never pass;
- counts are the stage's so far; rates (errors, requests over the latency bound, wrong
  predictions) are judged by :mod:`opsctl.core.sequential`: fail on an exact test valid under
  continuous looks (no minimum sample: 4 errors in 7 requests fail at once), pass on evidence of
  non-inferiority (Wald's SPRT), and in between say how much is needed (``sample_needed``) and
  when it is expected (``expected_seconds``, ``collecting``);
- each result carries the numbers behind the verdict (value, threshold, p-value, sample size).

>>> canary = VersionWindow(requests=7, errors=4)
>>> production = VersionWindow(requests=10_000, errors=10)
>>> error_rate_gate(canary, production, alpha=0.01, power=0.8, margin_relative=1.0, margin_floor=0.001).verdict
<Verdict.FAIL: 'fail'>
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from opsctl.core.sequential import (
    RateDecision,
    compare_to_bound,
    compare_to_ceiling,
    compare_to_reference,
    describe_seconds,
    expected_seconds,
    fail_beyond_margin,
)


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
    slow: int | None = None  # requests slower than the latency bound (from the histogram's buckets)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p95_seconds": self.p95_seconds,
            "p99_seconds": self.p99_seconds,
            "labelled": self.labelled,
            "correct": self.correct,
            "slow": self.slow,
        }


@dataclass(frozen=True)
class SlaInput:
    """The canary version's SLA: the bounds its counts are judged against, and the health status.

    With ``error_rate_percent`` or ``latency_bound_seconds`` set (the daemon always sets them), the
    sla gate judges the canary's counts since the stage started against them (see :func:`sla_gate`);
    ``status`` and ``reasons`` are then shown only. A status alone (a scripted input) is judged as is.
    """

    status: str = "unknown"
    reasons: tuple[str, ...] = ()
    error_rate_percent: float | None = None  # the SLA's maximum error rate
    latency_bound_seconds: float | None = None  # the SLA's latency bound (latency_p95_ms)
    latency_quantile: float = 0.95  # the bound's quantile: at most 1 - this share may be slower


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
    # How long the counts have accumulated (the stage's age): turns counts into rates for the
    # expected time to a decision.
    stage_seconds: float | None = None
    # The latency bound whose bucket splits fast from slow requests (the SLA's latency_p95_ms).
    latency_bound_seconds: float | None = None


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
    # The fixed-sample exact p-value (scipy gives the same); ``p_value`` is the always-valid one.
    exact_p_value: float | None = None
    # Seconds to the expected decision at the current rate (0 once decided, None when unknown).
    expected_seconds: float | None = None
    # Inconclusive only because evidence is still accumulating (as opposed to missing data).
    collecting: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "value": self.value,
            "threshold": self.threshold,
            "p_value": self.p_value,
            "exact_p_value": self.exact_p_value,
            "sample_size": self.sample_size,
            "sample_needed": self.sample_needed,
            "expected_seconds": self.expected_seconds,
            "collecting": self.collecting,
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
            exact_p_value=_opt_float(data.get("exact_p_value")),
            expected_seconds=_opt_float(data.get("expected_seconds")),
            collecting=bool(data.get("collecting", False)),
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

    @property
    def collecting(self) -> bool:
        """Inconclusive only because evidence is accumulating: every undecided gate is collecting."""
        undecided = [r for r in self.results if r.verdict is Verdict.INCONCLUSIVE]
        return (self.verdict is Verdict.INCONCLUSIVE and not self.metrics_error and bool(undecided)
                and all(r.collecting for r in undecided))

    @property
    def expected_seconds(self) -> float | None:
        """Seconds until every undecided gate is expected to pass; None when any cannot say."""
        undecided = [r for r in self.results if r.verdict is Verdict.INCONCLUSIVE]
        if not undecided:
            return 0.0
        times = [r.expected_seconds for r in undecided]
        if any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

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


# --------------------------------------------------------------------------- gates


def _rate_per_second(count: int | None, seconds: float | None) -> float | None:
    if count is None or seconds is None or seconds <= 0:
        return None
    return count / seconds


def _expectation(decision: RateDecision, have: int, rate: float | None, unit: str) -> tuple[float | None, str]:
    """Seconds to the expected pass at ``rate`` and the sentence that says so."""
    if decision.needed is None:
        return None, "no pass expected at the observed rate"
    seconds = expected_seconds(decision.needed, have, rate)
    if seconds is None:
        return None, f"pass expected at {decision.needed} {unit}"
    return seconds, f"pass expected in {describe_seconds(seconds)} at {rate:.3g} {unit}/s"


def _rate_gate(
    name: str,
    bad: int,
    trials: int,
    decision: RateDecision,
    *,
    what: str,
    against: str,
    threshold: float,
    unit: str,
    rate: float | None,
) -> GateResult:
    observed = bad / trials if trials else None
    shown = "-" if observed is None else f"{observed:.2%}"
    numbers: dict[str, Any] = {
        "value": observed,
        "threshold": threshold,
        "p_value": decision.always_valid_p,
        "exact_p_value": decision.p_value,
        "sample_size": trials,
        "sample_needed": decision.needed,
    }
    if decision.fail:
        return GateResult(
            name, Verdict.FAIL, **numbers,
            reason=(f"{what} {shown} ({bad}/{trials}) above {against} (always-valid p={decision.always_valid_p:.3g}, "
                    f"exact p={decision.p_value:.3g})"),
        )
    if decision.passed:
        return GateResult(
            name, Verdict.PASS, **numbers, expected_seconds=0.0,
            reason=f"{what} {shown} ({bad}/{trials}) not worse than {against} by the margin (SPRT)",
        )
    seconds, when = _expectation(decision, trials, rate, unit)
    return GateResult(
        name, Verdict.INCONCLUSIVE, **numbers, expected_seconds=seconds, collecting=True,
        reason=f"{what} {shown} ({bad}/{trials}) vs {against}: collecting evidence; {when}",
    )


def error_rate_gate(
    canary: VersionWindow,
    production: VersionWindow,
    *,
    alpha: float,
    power: float,
    margin_relative: float,
    margin_floor: float,
    stages: int = 1,
    stage_seconds: float | None = None,
) -> GateResult:
    """Is the canary's error rate above production's since the stage started?

    Fails on the exact conditional test of the pooled errors, read as an always-valid mixture
    likelihood ratio at ``alpha / stages`` (so the false-rollback chance of a whole canary stays
    within ``alpha`` however often it is looked at, from the first request on: no minimum).
    Passes when Wald's SPRT of "production's rate" against "production's rate plus the margin"
    (``margin_relative`` times production's rate floored at ``margin_floor``) accepts the former
    at ``alpha`` and ``power``. In between it is inconclusive and says when a pass is expected.
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
    decision = compare_to_reference(
        canary.errors, canary.requests, production.errors, production.requests,
        alpha_fail=alpha / stages, alpha=alpha, beta=1.0 - power,
        margin_relative=margin_relative, margin_floor=margin_floor,
    )
    return _rate_gate(
        name, canary.errors, canary.requests, decision, what="canary error rate",
        against=f"production {production.errors / production.requests:.2%} ({production.errors}/{production.requests})",
        threshold=production.errors / production.requests, unit="req",
        rate=_rate_per_second(canary.requests, stage_seconds),
    )


def error_ceiling_gate(
    canary: VersionWindow,
    *,
    ceiling_percent: float | None,
    alpha: float,
    power: float = 0.8,
    margin_relative: float = 1.0,
    stages: int = 1,
    stage_seconds: float | None = None,
) -> GateResult:
    """Is the canary's error rate above the absolute ceiling (the SLA's, or the policy's)?

    Fails on the exact one-sample test against the ceiling, read as an always-valid mixture
    likelihood ratio at ``alpha / stages``; passes when Wald's SPRT of "at the ceiling" against
    "the ceiling / (1 + margin_relative)" accepts the latter. Same counts, same rules as
    :func:`error_rate_gate`: no minimum sample.
    """
    name = "error_rate_ceiling"
    if ceiling_percent is None:
        return GateResult(name, Verdict.INCONCLUSIVE, reason="no error-rate ceiling configured")
    ceiling = ceiling_percent / 100.0
    problem = _counts_problem(canary.requests, canary.errors, "canary")
    if problem:
        return GateResult(name, Verdict.INCONCLUSIVE, threshold=ceiling, reason=problem)
    assert canary.requests is not None and canary.errors is not None
    if ceiling >= 1.0:
        return GateResult(name, Verdict.PASS, threshold=ceiling, sample_size=canary.requests,
                          reason="a 100 % ceiling cannot be exceeded")
    decision = compare_to_ceiling(
        canary.errors, canary.requests, ceiling, alpha_fail=alpha / stages, alpha=alpha, beta=1.0 - power,
        margin_relative=margin_relative,
    )
    return _rate_gate(
        name, canary.errors, canary.requests, decision, what="canary error rate",
        against=f"the ceiling {ceiling:.2%}", threshold=ceiling, unit="req",
        rate=_rate_per_second(canary.requests, stage_seconds),
    )


def latency_gate(
    canary: VersionWindow,
    production: VersionWindow,
    *,
    bound_seconds: float | None,
    alpha: float,
    power: float,
    margin_relative: float,
    margin_floor: float,
    stages: int = 1,
    stage_seconds: float | None = None,
) -> GateResult:
    """Does the canary answer more requests slower than the latency bound than production does?

    Judged on the histogram's bucket counts since the stage started (``slow`` = requests above the
    bucket at the SLA's p95 bound), with the same exact tests as the error rate: a share of slow
    requests is a rate like any other, so a healthy canary is not rolled back on the noise of a
    p99 interpolated from a few dozen requests.
    """
    name = "latency"
    if bound_seconds is None:
        return GateResult(name, Verdict.INCONCLUSIVE, reason="no latency bound (the SLA's latency_p95_ms)")
    for window, who in ((canary, "canary"), (production, "production")):
        problem = _counts_problem(window.requests, window.slow, who)
        if problem:
            return GateResult(name, Verdict.INCONCLUSIVE, threshold=bound_seconds, sample_size=canary.requests,
                              reason=problem.replace("request/error", "request/latency-bucket")
                              .replace("errors", "slow"))
    assert canary.requests is not None and canary.slow is not None
    assert production.requests is not None and production.slow is not None
    if production.requests == 0:
        return GateResult(name, Verdict.INCONCLUSIVE, threshold=bound_seconds, sample_size=canary.requests,
                          reason="no production traffic to compare with")
    decision = compare_to_reference(
        canary.slow, canary.requests, production.slow, production.requests,
        alpha_fail=alpha / stages, alpha=alpha, beta=1.0 - power,
        margin_relative=margin_relative, margin_floor=margin_floor,
    )
    result = _rate_gate(
        name, canary.slow, canary.requests, decision, what=f"share of canary requests over {bound_seconds * 1000:g} ms",
        against=f"production {production.slow / production.requests:.2%} ({production.slow}/{production.requests})",
        threshold=production.slow / production.requests, unit="req",
        rate=_rate_per_second(canary.requests, stage_seconds),
    )
    return result


def _sla_from_status(sla: SlaInput) -> GateResult:
    name = "sla"
    status = str(sla.status)
    reasons = "; ".join(sla.reasons)
    if status == "healthy":
        return GateResult(name, Verdict.PASS, reason=reasons or "healthy")
    if status == "degraded":
        return GateResult(name, Verdict.FAIL, reason=f"degraded: {reasons}" if reasons else "degraded")
    return GateResult(name, Verdict.INCONCLUSIVE, reason=f"SLA status {status}" + (f": {reasons}" if reasons else ""))


def _sla_latency(sla: SlaInput, canary: VersionWindow, *, alpha_fail: float, alpha: float, beta: float,
                 margin_relative: float, margin_floor: float) -> tuple[RateDecision | None, str]:
    """The share of canary requests over the SLA's latency bound against the share the quantile allows."""
    assert sla.latency_bound_seconds is not None
    allowed = 1.0 - sla.latency_quantile
    bound_ms = f"{sla.latency_bound_seconds * 1000:g} ms"
    problem = _counts_problem(canary.requests, canary.slow, "canary")
    if problem:
        return None, f"latency: {problem.replace('request/error', 'request/latency-bucket').replace('errors', 'slow')}"
    assert canary.requests is not None and canary.slow is not None
    decision = compare_to_bound(canary.slow, canary.requests, allowed, alpha_fail=alpha_fail, alpha=alpha, beta=beta,
                                margin=max(margin_relative * allowed, margin_floor))
    shown = f"{canary.slow / canary.requests:.2%}" if canary.requests else "-"
    return decision, (f"{shown} ({canary.slow}/{canary.requests}) of requests over {bound_ms}, "
                      f"SLA allows {allowed:.0%}")


def sla_gate(
    sla: SlaInput | None,
    canary: VersionWindow | None = None,
    *,
    alpha: float = 0.01,
    power: float = 0.8,
    margin_relative: float = 1.0,
    latency_margin_relative: float = 1.0,
    latency_margin_floor: float = 0.01,
    stages: int = 1,
    stage_seconds: float | None = None,
) -> GateResult:
    """Does the canary meet its SLA, on the evidence of its counts since the stage started?

    Two rates, judged like every other gate (:mod:`opsctl.core.sequential`, no minimum sample):

    - errors against the SLA's maximum error rate, as :func:`error_ceiling_gate` does: fail when
      significantly above it (always-valid, at ``alpha / stages`` split over the two checks), pass
      when Wald's SPRT accepts "at most the ceiling / (1 + margin_relative)";
    - latency as the share of requests slower than the SLA's bound (from the histogram's buckets):
      a p95 bound allows 5 %; fail when the share is significantly above 5 %, pass when the SPRT
      of "5 %" against "5 % + margin" accepts the former (margin ``latency_margin_relative`` times
      the allowed share, at least ``latency_margin_floor``). No interpolated p95/p99 is judged, so
      a healthy canary is not rolled back on the noise of a percentile of a few dozen requests.

    Fails when either fails, passes when both pass, else inconclusive with what it has, what it
    needs and when. Without bounds in ``sla`` (a scripted status) the status is the verdict.
    """
    name = "sla"
    if sla is None:
        return GateResult(name, Verdict.INCONCLUSIVE, reason="no SLA status for the canary version")
    if sla.error_rate_percent is None and sla.latency_bound_seconds is None:
        return _sla_from_status(sla)
    canary = canary if canary is not None else VersionWindow()
    beta = 1.0 - power
    # Two checks, each able to fail the gate: Bonferroni keeps the gate's own error within alpha.
    checks = (sla.error_rate_percent is not None) + (sla.latency_bound_seconds is not None)
    alpha_fail = alpha / stages / checks
    parts: list[tuple[RateDecision | None, str]] = []
    if sla.error_rate_percent is not None:
        ceiling = sla.error_rate_percent / 100.0
        problem = _counts_problem(canary.requests, canary.errors, "canary")
        if problem:
            parts.append((None, f"errors: {problem}"))
        elif ceiling < 1.0:
            assert canary.requests is not None and canary.errors is not None
            decision = compare_to_ceiling(canary.errors, canary.requests, ceiling, alpha_fail=alpha_fail,
                                          alpha=alpha, beta=beta, margin_relative=margin_relative)
            shown = f"{canary.errors / canary.requests:.2%}" if canary.requests else "-"
            parts.append((decision, f"error rate {shown} ({canary.errors}/{canary.requests}), "
                                    f"SLA max {ceiling:.2%}"))
    if sla.latency_bound_seconds is not None:
        parts.append(_sla_latency(sla, canary, alpha_fail=alpha_fail, alpha=alpha, beta=beta,
                                  margin_relative=latency_margin_relative, margin_floor=latency_margin_floor))
    decisions = [d for d, _ in parts if d is not None]
    failed = [(d, text) for d, text in parts if d is not None and d.fail]
    numbers: dict[str, Any] = {"sample_size": canary.requests}
    if failed:
        worst = min(failed, key=lambda item: item[0].always_valid_p)[0]
        texts = "; ".join(f"{text} (always-valid p={d.always_valid_p:.3g}, exact p={d.p_value:.3g})"
                          for d, text in failed)
        return GateResult(name, Verdict.FAIL, p_value=worst.always_valid_p, exact_p_value=worst.p_value,
                          sample_needed=canary.requests, reason=f"SLA breached: {texts}", **numbers)
    summary = "; ".join(text for _, text in parts)
    if parts and all(d is not None and d.passed for d, _ in parts):
        return GateResult(name, Verdict.PASS, sample_needed=canary.requests, expected_seconds=0.0,
                          reason=f"within SLA (SPRT): {summary}", **numbers)
    missing = [text for d, text in parts if d is None]
    if missing or not parts:
        return GateResult(name, Verdict.INCONCLUSIVE, reason="; ".join(missing) or "no SLA bounds to judge by",
                          **numbers)
    needs = [d.needed for d in decisions]
    needed = None if any(n is None for n in needs) else max(n for n in needs if n is not None)
    have = canary.requests or 0
    if needed is None:
        seconds, when = None, "no pass expected at the observed rate"
    else:
        rate = _rate_per_second(canary.requests, stage_seconds)
        seconds = expected_seconds(needed, have, rate)
        when = (f"pass expected at {needed} req" if seconds is None
                else f"pass expected in {describe_seconds(seconds)} at {rate:.3g} req/s")
    return GateResult(name, Verdict.INCONCLUSIVE, sample_needed=needed, expected_seconds=seconds, collecting=True,
                      reason=f"SLA: collecting evidence: {summary}; {when}", **numbers)


def accuracy_gate(
    canary: VersionWindow,
    reference: VersionWindow,
    *,
    tolerance: float,
    alpha: float,
    power: float = 0.8,
    stages: int = 1,
    stage_seconds: float | None = None,
) -> GateResult:
    """Canary accuracy from delayed labels against the reference (production or a baseline): non-inferiority.

    The share of wrong predictions is a rate. Fails when the canary's accuracy is significantly
    below the reference's minus ``tolerance`` (:func:`~opsctl.core.sequential.fail_beyond_margin`:
    exact, always-valid in the canary's labels, at ``alpha / stages``); a drop within the tolerance
    never fails. Passes when Wald's SPRT of "the reference's share of wrong predictions" against
    "that share + ``tolerance``" accepts the former; in between it collects labels and says when a
    pass is expected.
    """
    name = "accuracy"
    for window, who in ((canary, "canary"), (reference, "reference")):
        if window.labelled is None or window.correct is None:
            return GateResult(name, Verdict.INCONCLUSIVE, reason=f"no labels for {who}")
        if window.labelled < 0 or window.correct < 0 or window.correct > window.labelled:
            return GateResult(
                name,
                Verdict.INCONCLUSIVE,
                reason=f"inconsistent label counts for {who} ({window.correct} correct of {window.labelled})",
            )
    assert canary.labelled is not None and canary.correct is not None
    assert reference.labelled is not None and reference.correct is not None
    if reference.labelled == 0:
        return GateResult(name, Verdict.INCONCLUSIVE, sample_size=canary.labelled, reason="no labels for reference")
    wrong_canary = canary.labelled - canary.correct
    wrong_reference = reference.labelled - reference.correct
    decision = compare_to_reference(
        wrong_canary, canary.labelled, wrong_reference, reference.labelled,
        alpha_fail=alpha / stages, alpha=alpha, beta=1.0 - power,
        margin_absolute=tolerance,
    )
    beyond = fail_beyond_margin(wrong_canary, canary.labelled, wrong_reference, reference.labelled, tolerance,
                                alpha_fail=alpha / stages)
    decision = replace(decision, fail=beyond.fail, passed=decision.passed and not beyond.fail,
                       p_value=beyond.p_value, always_valid_p=beyond.always_valid_p)
    p_ref = reference.correct / reference.labelled
    p_can = canary.correct / canary.labelled if canary.labelled else None
    shown = "-" if p_can is None else f"{p_can:.3f}"
    detail = (f"canary accuracy {shown} ({canary.correct}/{canary.labelled}) vs reference {p_ref:.3f} "
              f"(tolerance {tolerance:g})")
    numbers: dict[str, Any] = {
        "value": p_can,
        "threshold": p_ref - tolerance,
        "p_value": decision.always_valid_p,
        "exact_p_value": decision.p_value,
        "sample_size": canary.labelled,
        "sample_needed": decision.needed,
    }
    if decision.fail:
        return GateResult(name, Verdict.FAIL, **numbers,
                          reason=(f"{detail}: significantly below the reference minus the tolerance "
                                  f"(wrong share vs {beyond.ceiling:.3f}: always-valid p="
                                  f"{decision.always_valid_p:.3g}, exact p={decision.p_value:.3g})"))
    if decision.passed:
        return GateResult(name, Verdict.PASS, **numbers, expected_seconds=0.0, reason=f"{detail}: within tolerance")
    seconds, when = _expectation(decision, canary.labelled, _rate_per_second(canary.labelled, stage_seconds),
                                 "labels")
    return GateResult(name, Verdict.INCONCLUSIVE, **numbers, expected_seconds=seconds, collecting=True,
                      reason=f"{detail}: collecting labels; {when}")


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


@dataclass(frozen=True)
class GatePolicy:
    """How the gates judge one analysis: the analysis part of ``[canary]`` (see ``CanaryPolicy.gate_policy``).

    ``stages`` is the number of traffic stages of the canary: each stage's counts start afresh, so
    the failing tests run at ``alpha / stages`` and a whole canary's false-rollback chance stays
    within ``alpha``.
    """

    error_rate_alpha: float = 0.01
    error_rate_power: float = 0.8
    # "Worse by the margin": production's rate times this (1.0 = double) ...
    error_rate_mde_relative: float = 1.0
    # ... with production's rate floored at this, so a spotless production still has a margin.
    error_rate_min_baseline: float = 0.001
    max_error_rate_percent: float | None = None
    # Latency: the share of requests over the SLA's p95 bound, same margin rules.
    latency_margin_relative: float = 1.0
    latency_min_share: float = 0.01
    latency_gate: bool = True
    sla_gate: bool = True
    accuracy_gate: bool = True
    accuracy_tolerance: float = 0.02
    accuracy_alpha: float = 0.05
    drift_gate: bool = False
    custom_gates: tuple[CustomGate, ...] = ()
    stages: int = 1

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError(f"stages must be at least 1, got {self.stages}")
        for name in ("error_rate_alpha", "error_rate_power", "accuracy_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {getattr(self, name)}")
        for name in ("error_rate_mde_relative", "latency_margin_relative"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("error_rate_min_baseline", "latency_min_share"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {getattr(self, name)}")
        if not 0 < self.accuracy_tolerance < 1:
            raise ValueError(f"accuracy_tolerance must be in (0, 1), got {self.accuracy_tolerance}")


FULL_TRAFFIC_PERCENT = 100.0
_NO_PRODUCTION = "not applicable: no production traffic at 100 %"


def _not_applicable(result: GateResult, why: str) -> GateResult:
    """``result``'s numbers, marked not applicable (they are shown, they decide nothing)."""
    return replace(result, verdict=Verdict.NOT_APPLICABLE, reason=f"{why} ({result.reason})", collecting=False,
                   expected_seconds=None)


def _unjudged(result: GateResult, why: str) -> GateResult:
    """``result``'s numbers, inconclusive: nothing else judges what this gate would have."""
    return replace(result, verdict=Verdict.INCONCLUSIVE, reason=f"{why} ({result.reason})", collecting=False,
                   expected_seconds=None)


def evaluate_gates(policy: GatePolicy, inputs: GateInputs) -> Evaluation:
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


def _at_full_traffic(result: GateResult, policy: GatePolicy, inputs: GateInputs,
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
    if result.name == "latency":
        if not policy.sla_gate:
            return _unjudged(result, "no production traffic at 100 % and sla_gate is off")
        return _not_applicable(result, f"{_NO_PRODUCTION}; judged by the SLA")
    if result.name == "accuracy" and inputs.quality_reference is None:
        if not policy.sla_gate:
            return _unjudged(result, "no production labels at 100 %, no quality_reference and sla_gate is off")
        # The sla gate judges errors and latency only; say plainly that quality goes unjudged here.
        return _not_applicable(result, f"{_NO_PRODUCTION}; no quality_reference: accuracy is not judged at this stage")
    return result


def _evaluate(policy: GatePolicy, inputs: GateInputs, ceiling: float | None) -> list[GateResult]:
    common = {"stages": policy.stages, "stage_seconds": inputs.stage_seconds}
    results: list[GateResult] = [
        error_rate_gate(
            inputs.canary,
            inputs.production,
            alpha=policy.error_rate_alpha,
            power=policy.error_rate_power,
            margin_relative=policy.error_rate_mde_relative,
            margin_floor=policy.error_rate_min_baseline,
            **common,
        )
    ]
    if ceiling is not None:
        results.append(
            error_ceiling_gate(
                inputs.canary, ceiling_percent=ceiling, alpha=policy.error_rate_alpha, power=policy.error_rate_power,
                margin_relative=policy.error_rate_mde_relative, **common,
            )
        )
    if policy.latency_gate:
        results.append(
            latency_gate(
                inputs.canary,
                inputs.production,
                bound_seconds=inputs.latency_bound_seconds,
                alpha=policy.error_rate_alpha,
                power=policy.error_rate_power,
                margin_relative=policy.latency_margin_relative,
                margin_floor=policy.latency_min_share,
                **common,
            )
        )
    if policy.sla_gate:
        results.append(
            sla_gate(
                inputs.sla, inputs.canary, alpha=policy.error_rate_alpha, power=policy.error_rate_power,
                margin_relative=policy.error_rate_mde_relative,
                latency_margin_relative=policy.latency_margin_relative,
                latency_margin_floor=policy.latency_min_share, **common,
            )
        )
    if policy.accuracy_gate:
        reference = inputs.quality_reference if inputs.quality_reference is not None else inputs.production
        results.append(
            accuracy_gate(
                inputs.canary,
                reference,
                tolerance=policy.accuracy_tolerance,
                alpha=policy.accuracy_alpha,
                power=policy.error_rate_power,
                **common,
            )
        )
    if policy.drift_gate:
        results.append(drift_gate(inputs.drift))
    readings = {r.name: r for r in inputs.custom}
    results.extend(custom_gate(spec, readings.get(spec.name)) for spec in policy.custom_gates)
    return results
