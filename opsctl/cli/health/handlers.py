"""Handler of ``opsctl health``: the daemon's live SLA state.

There is no registry fallback here: health results live in the daemon. ``opsctl health`` exits 3
(UNKNOWN, the monitoring-plugin code) when the daemon is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opsctl.cli.context import CliContext
from opsctl.errors import DaemonUnavailableError

EXIT_OK, EXIT_DEGRADED, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
_PLUGIN_WORDS = {EXIT_OK: "OK", EXIT_DEGRADED: "WARNING", EXIT_CRITICAL: "CRITICAL", EXIT_UNKNOWN: "UNKNOWN"}

def health_exit_code(models: Sequence[dict[str, Any]]) -> int:
    """Monitoring-plugin code for these versions (``/v1/health`` items): critical, then degraded, then
    unknown, then healthy. Critical = a degraded production version failing error rate or availability
    (the daemon computes ``critical``)."""
    statuses = {m["status"] for m in models}
    if any(m.get("critical") for m in models):
        return EXIT_CRITICAL
    if "degraded" in statuses:
        return EXIT_DEGRADED
    if "unknown" in statuses:
        return EXIT_UNKNOWN
    return EXIT_OK


# -- opsctl health ------------------------------------------------------------------------------------


def health(ctx: CliContext) -> int:
    model = getattr(ctx.args, "model", None)
    try:
        with ctx.daemon() as client:
            document = dict(client.health.get(model).json)
    except DaemonUnavailableError as error:
        ctx.out.message(f"opsctl health: UNKNOWN: the daemon is down, and health is its live state: {error}")
        if ctx.out.json:
            ctx.out.emit_json({"status": "unknown", "exit_code": EXIT_UNKNOWN, "models": [], "evaluated_at": None,
                               "error": {"type": type(error).__name__, "message": str(error)}})
        return EXIT_UNKNOWN
    models = document["models"]
    code = health_exit_code(models)
    if document["evaluated_at"] is None:
        code = EXIT_UNKNOWN
        ctx.out.message("opsctl health: UNKNOWN: the daemon has not finished its first health cycle yet"
                        f" (every {document.get('health_seconds', '?')}s); try again in a moment")
    elif not models:
        ctx.out.message(f"no deployed versions{f' for {model}' if model else ''}: nothing to check")
    prometheus = document.get("prometheus") or {}
    if prometheus.get("error"):
        ctx.out.message(f"opsctl health: Prometheus at {prometheus.get('url')} failed: {prometheus['error']}")
    if ctx.out.json:
        ctx.out.emit_json({
            "status": _PLUGIN_WORDS[code].lower(), "exit_code": code,
            "evaluated_at": document["evaluated_at"],
            "models": [{"model": m["model"], "version": m["version"], "role": m["role"], "status": m["status"],
                        "critical": m["critical"], "reason": m["reason"], "checks": m["checks"],
                        "sample_age_seconds": m.get("sample_age_seconds"), "evaluated_at": m["evaluated_at"]}
                       for m in models],
            "prometheus": prometheus,
        })
        return code
    rows = []
    for m in models:
        checks = {c["name"]: c for c in m["checks"]}
        status = "CRITICAL" if m["critical"] else m["status"]
        colour = {"healthy": "green", "degraded": "yellow", "unknown": "yellow", "CRITICAL": "red"}[status]
        rows.append([m["model"], m["version"], m["role"], ctx.out.style(status, colour, "bold"),
                     *(_check_cell(checks.get(name)) for name in
                       ("latency_p95", "latency_p99", "error_rate", "availability", "request_rate", "accuracy")),
                     m["reason"] or "-"])
    if rows:
        ctx.out.table(["model", "version", "role", "status", "p95", "p99", "errors", "avail", "req/s",
                       "accuracy", "reason"], rows)
        evaluated = _ago(document["evaluated_at"])
        ctx.out.line(f"{_PLUGIN_WORDS[code]} (exit {code}); evaluated {evaluated}; a cell reads"
                     " value(threshold), ! marks a failed check, ? no data")
    return code


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    if unit == "ms":
        return f"{value:.0f}ms"
    if unit == "%":
        return f"{value:.3g}%"
    if unit == "ratio":
        return f"{value:.3f}"
    return f"{value:.3g}"


def _check_cell(check: dict[str, Any] | None) -> str:
    """``value(threshold)``; ``!`` marks a failed check, ``?`` a check without data."""
    if check is None:
        return "-"
    if check["verdict"] == "skipped":
        return "skipped"
    unit = check["unit"]
    failed = check["verdict"] == "fail"
    # A failed check without a value is a latency above the highest bucket (JSON has no infinity).
    shown = ("inf" if failed else "?") if check["value"] is None else _fmt(check["value"], unit)
    threshold = check["threshold"]
    limit = "" if threshold is None else f"({_fmt(threshold, unit).removesuffix('ms').removesuffix('%')})"
    return f"{'!' if failed else ''}{shown}{limit}"


def _ago(iso: str | None) -> str:
    if iso is None:
        return "never"
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    seconds = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    return f"{seconds:.0f}s ago ({iso})"
