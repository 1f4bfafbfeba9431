"""Parse and run A/B analysis requests, shared by the CLI and the daemon's API.

Counts come as ``SUCCESSES/TOTAL`` strings (what people type) or integers
(what scripts send); every error names the argument it came from.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opsctl.core.abtest import (
    SequentialTest,
    power_two_proportions,
    sample_size_per_group,
    two_proportion_ztest,
)
from opsctl.errors import UsageError


def parse_counts(text: str, name: str) -> tuple[int, int]:
    """``"220/1000"`` -> (220, 1000)."""
    successes, sep, total = text.strip().partition("/")
    if not sep:
        raise UsageError(f"{name} must be SUCCESSES/TOTAL, e.g. 220/1000; got {text!r}")
    try:
        return int(successes), int(total)
    except ValueError:
        raise UsageError(f"{name} must be whole numbers SUCCESSES/TOTAL, got {text!r}") from None


def parse_look(text: str, index: int) -> tuple[int, int, int, int]:
    """``"CS/CT:TS/TT"`` -> cumulative counts of one look."""
    control, sep, treatment = text.partition(":")
    if not sep:
        raise UsageError(f"--look #{index + 1} must be CONTROL_S/CONTROL_T:TREATMENT_S/TREATMENT_T, got {text!r}")
    cs, ct = parse_counts(control, f"--look #{index + 1} control")
    ts, tt = parse_counts(treatment, f"--look #{index + 1} treatment")
    return cs, ct, ts, tt


F = TypeVar("F", bound=Callable[..., Any])


def _numeric_limits(function: F) -> F:
    """Inputs at the edge of floating point (1e-300, 1e300) as a usage error, never a crash."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except UsageError:
            raise
        except (ArithmeticError, ValueError, statistics.StatisticsError) as error:  # ValueError: math domain
            raise UsageError(f"inputs outside the range this computation supports: {error}") from None

    return guarded  # type: ignore[return-value]


@_numeric_limits
def ztest(control: str, treatment: str, *, alpha: float, alternative: str) -> dict[str, Any]:
    cs, ct = parse_counts(control, "--control")
    ts, tt = parse_counts(treatment, "--treatment")
    result = two_proportion_ztest(cs, ct, ts, tt, alpha=alpha, alternative=alternative)
    return result.to_json()


@_numeric_limits
def sample_size(baseline: float, mde: float, *, alpha: float, power: float, alternative: str) -> dict[str, Any]:
    n = sample_size_per_group(baseline, mde, alpha=alpha, power=power, alternative=alternative)
    treatment = baseline * (1 + mde)
    return {
        "baseline": baseline,
        "mde_relative": mde,
        "treatment_rate": treatment,
        "alpha": alpha,
        "power": power,
        "alternative": alternative,
        "per_group": n,
        "total": 2 * n,
        "achieved_power": power_two_proportions(baseline, treatment, n, alpha=alpha, alternative=alternative),
        "method": "normal approximation on Cohen's h (as statsmodels NormalIndPower)",
    }


@_numeric_limits
def sequential(looks: Sequence[tuple[int, int, int, int]], *, alpha: float, tau: float,
               min_samples: int) -> dict[str, Any]:
    if not looks:
        raise UsageError("give at least one --look (cumulative counts at each time you looked)")
    state = SequentialTest.start(alpha=alpha, tau=tau, min_samples_per_group=min_samples)
    history = []
    for cs, ct, ts, tt in looks:
        state = state.at_totals(control_successes=cs, control_total=ct, treatment_successes=ts, treatment_total=tt)
        history.append(state.to_json())
    return {"final": state.to_json(), "looks": history,
            "method": "mixture SPRT (Johari, Pekelis & Walsh), always-valid p-values"}
