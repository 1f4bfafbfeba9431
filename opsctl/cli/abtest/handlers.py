"""Handlers of ``opsctl abtest``: pure computation, no daemon needed."""

from __future__ import annotations

from opsctl import abtest_requests
from opsctl.cli.context import CliContext


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def ztest(ctx: CliContext) -> int:
    a = ctx.args
    result = abtest_requests.ztest(a.control, a.treatment, alpha=a.alpha, alternative=a.alternative)
    if ctx.out.json:
        ctx.out.emit_json(result)
        return 0
    lift = result["relative_lift"]
    level = round((1 - a.alpha) * 100)
    ctx.out.table(["", "rate", "successes", "total"], [
        ["control", _pct(result["control_rate"]), result["control_successes"], result["control_total"]],
        ["treatment", _pct(result["treatment_rate"]), result["treatment_successes"], result["treatment_total"]],
    ])
    ctx.out.line(f"difference {_pct(result['difference'])}  ({level}% CI {_pct(result['ci_low'])} .."
                 f" {_pct(result['ci_high'])})  relative lift {_pct(lift)}")
    verdict = "significant" if result["significant"] else "not significant"
    ctx.out.line(f"z = {result['z']:.3f}  p = {result['p_value']:.4g} ({a.alternative})  -> {verdict}"
                 f" at alpha {a.alpha:g}")
    return 0


def sample_size(ctx: CliContext) -> int:
    a = ctx.args
    result = abtest_requests.sample_size(a.baseline, a.mde, alpha=a.alpha, power=a.power,
                                         alternative=a.alternative)
    if ctx.out.json:
        ctx.out.emit_json(result)
        return 0
    ctx.out.line(f"{result['per_group']} per group ({result['total']} in total) to detect"
                 f" {_pct(a.baseline)} -> {_pct(result['treatment_rate'])} ({a.mde:+.0%} relative)"
                 f" with power {a.power:g} at alpha {a.alpha:g} ({a.alternative})")
    return 0


def sequential(ctx: CliContext) -> int:
    a = ctx.args
    looks = [abtest_requests.parse_look(text, i) for i, text in enumerate(a.look)]
    result = abtest_requests.sequential(looks, alpha=a.alpha, tau=a.tau, min_samples=a.min_samples)
    if ctx.out.json:
        ctx.out.emit_json(result)
        return 0
    ctx.out.table(["look", "control", "treatment", "difference", "always-valid p", "CI", "decision"], [
        [i + 1, f"{s['control_successes']}/{s['control_total']}", f"{s['treatment_successes']}/{s['treatment_total']}",
         _pct(s["difference"]), f"{s['always_valid_p_value']:.4g}", f"{_pct(s['ci_low'])} .. {_pct(s['ci_high'])}",
         s["decision"]] for i, s in enumerate(result["looks"])])
    return 0
