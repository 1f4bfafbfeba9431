"""Handlers of ``opsctl health`` and ``opsctl alerts ...``: they read the daemon's live state.

There is no registry fallback here: health results and alert states live in the daemon. ``opsctl health``
exits 3 (UNKNOWN, the monitoring-plugin code) when the daemon is down, the alert commands exit 6.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.cli.context import CliContext
from opsctl.errors import DaemonUnavailableError, UsageError

EXIT_OK, EXIT_DEGRADED, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
_PLUGIN_WORDS = {EXIT_OK: "OK", EXIT_DEGRADED: "WARNING", EXIT_CRITICAL: "CRITICAL", EXIT_UNKNOWN: "UNKNOWN"}
START_HINT = "start it with `systemctl start opsctl` (or `opsctl daemon` in the foreground)"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or a sum like ``1h30m``; UsageError otherwise."""
    cleaned = text.strip().lower()
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise UsageError(f"bad duration {text!r}: give a number and a unit (s, m, h, d, w), e.g. 30m, 2h, 1d"
                         " or 1h30m")
    if total <= 0:
        raise UsageError(f"bad duration {text!r}: must be longer than zero")
    return total


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


def _client(ctx: CliContext) -> Any:
    socket = ctx.settings.daemon.socket
    if not Path(socket).exists():
        raise DaemonUnavailableError(f"the daemon is not running (no socket at {socket}); {START_HINT}")
    from opsctl.client import DaemonClient

    return DaemonClient.from_settings(ctx.settings)


def _call(ctx: CliContext, method: str, path: str, **kwargs: Any) -> Any:
    client = _client(ctx)
    try:
        if method == "GET":
            return client.get(path, **kwargs)
        return client.post(path, kwargs)
    except DaemonUnavailableError as error:
        raise DaemonUnavailableError(f"{error}; {START_HINT}") from error
    finally:
        client.close()


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# -- opsctl health ------------------------------------------------------------------------------------


def health(ctx: CliContext) -> int:
    model = getattr(ctx.args, "model", None)
    try:
        document = _call(ctx, "GET", "/v1/health", model=model)
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


# -- opsctl alerts --------------------------------------------------------------------------------------


def alerts(ctx: CliContext) -> int:
    document = _call(ctx, "GET", "/v1/alerts", all="1" if ctx.args.all else None)
    for target, delivery in document.get("delivery", {}).items():
        if not delivery["ok"]:
            ctx.out.message(f"opsctl: {target} delivery failing since {delivery['at']}: {delivery['error']}"
                            f" ({delivery['queued']} notifications queued for retry)")
    if ctx.out.json:
        ctx.out.emit_json(document)
        return 0
    rows = []
    for a in document["alerts"]:
        ack = a.get("ack")
        acked = "-" if ack is None else f"{ack['by']}" + (f" until {ack['until']}" if ack["until"] else "")
        since = a["resolved_at"] if a["state"] == "resolved" else (a["fired_at"] or a["starts_at"])
        rows.append([a["id"], a["state"], a["severity"], a["rule"], a["labels"].get("model", "-"),
                     a["labels"].get("model_version", "-"), since, acked, a["summary"] or "-"])
    ctx.out.table(["id", "state", "severity", "rule", "model", "version", "since", "acked", "summary"], rows,
                  empty="no alerts" if ctx.args.all else "no pending or firing alerts")
    return 0


def ack(ctx: CliContext) -> int:
    seconds = parse_duration(ctx.args.duration) if ctx.args.duration else None
    alert = _call(ctx, "POST", f"/v1/alerts/{_seg(ctx.args.id)}/ack", for_seconds=seconds,
                  comment=ctx.args.comment, reason=ctx.args.reason)
    if ctx.out.json:
        ctx.out.emit_json(alert)
        return 0
    until = alert["ack"]["until"] or "it resolves"
    ctx.out.line(f"acked {alert['id']} ({alert['rule']} {alert['labels'].get('model', '')} "
                 f"{alert['labels'].get('model_version', '')}, {alert['state']}) until {until}")
    return 0


def silence(ctx: CliContext) -> int:
    seconds = parse_duration(ctx.args.duration)
    from opsctl.core.alerts import Matcher

    for text in ctx.args.match:
        Matcher.parse(text)  # a clear usage error before any request
    created = _call(ctx, "POST", "/v1/silences", matchers=list(ctx.args.match), for_seconds=seconds,
                    comment=ctx.args.comment, reason=ctx.args.reason)
    if ctx.out.json:
        ctx.out.emit_json(created)
        return 0
    ctx.out.line(f"silence {created['id']} ({' '.join(created['matchers'])}) until {created['ends_at']}")
    return 0


def silences(ctx: CliContext) -> int:
    document = _call(ctx, "GET", "/v1/silences", all="1" if ctx.args.all else None)
    if ctx.out.json:
        ctx.out.emit_json(document)
        return 0
    ctx.out.table(["id", "matchers", "author", "starts", "ends", "comment"],
                  [[s["id"], " ".join(s["matchers"]), s["author"], s["starts_at"], s["ends_at"], s["comment"]]
                   for s in document["silences"]], empty="no silences")
    return 0


def unsilence(ctx: CliContext) -> int:
    expired = _call(ctx, "POST", f"/v1/silences/{_seg(ctx.args.id)}/expire", reason=ctx.args.reason)
    if ctx.out.json:
        ctx.out.emit_json(expired)
        return 0
    ctx.out.line(f"silence {expired['id']} ended at {expired['ends_at']}")
    return 0
