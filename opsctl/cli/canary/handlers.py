"""Handlers of ``opsctl canary``: thin calls to the daemon's canary API.

Canaries live in the daemon (its job moves the traffic), so these commands need it: when it does
not answer they exit 6 and say how to start it. ``opsctl rollback MODEL`` still works without the
daemon and aborts a running canary.
"""

from __future__ import annotations

import time
from typing import Any

from opsctl.cli.context import CliContext
from opsctl.errors import UsageError

EXIT_BY_STATE = {"succeeded": 0, "failed": 1, "rolled_back": 1, "aborted": 1, "paused": 2, "promoting": 2}
EXIT_TIMEOUT = 3
_SETTLED = {"succeeded", "failed", "rolled_back", "aborted", "paused", "promoting"}


NEEDS = "canary commands need the daemon"
HINT = "to stop a canary right now without it, use `opsctl rollback MODEL`"


def _list(ctx: CliContext, model: str | None) -> list[dict[str, Any]]:
    with ctx.daemon(needs=NEEDS, hint=HINT) as client:
        return [dict(c.json) for c in client.canaries.list(model)]


def _print(ctx: CliContext, doc: dict[str, Any], *, gates: bool) -> None:
    out = ctx.out
    state = doc["state"]
    colour = {"succeeded": ("green",), "progressing": ("cyan",), "paused": ("yellow",),
              "promoting": ("yellow",)}.get(state, ("red",) if state in ("failed", "rolled_back", "aborted") else ())
    weight = f"{doc['weight']:g}%"
    if doc.get("target_weight") is not None and doc["target_weight"] != doc["weight"] and doc["active"]:
        weight += f" (-> {doc['target_weight']:g}%)"
    out.line(f"{doc['model']}: canary {doc['canary_version']} vs production {doc['production_version'] or '-'}: "
             f"{out.style(state, *colour)}, stage {doc['stage']}/{doc['stages']}, weight {weight}, "
             f"failed checks {doc['failed_checks']}/{doc['failure_threshold']}")
    if doc.get("reason"):
        out.line(f"  why: {doc['reason']}")
    if doc.get("actuator_error"):
        out.line(f"  actuator: {doc['actuator_error']}")
    if gates and doc.get("gates"):
        rows = []
        for g in doc["gates"]:
            rows.append([g["name"], g["verdict"], _num(g.get("value")), _num(g.get("threshold")),
                         _num(g.get("p_value")), g.get("sample_size"), g.get("sample_needed"),
                         _eta(g.get("expected_seconds")), g.get("reason")])
        out.table(["gate", "verdict", "value", "threshold", "p", "n", "needed", "eta", "why"], rows)


def _eta(seconds: Any) -> str | None:
    from opsctl.core.sequential import describe_seconds

    if seconds is None:
        return None
    return "now" if seconds <= 0 else describe_seconds(float(seconds))


def _num(value: Any) -> str | None:
    return None if value is None else f"{value:.4g}"


def _finish(ctx: CliContext, doc: dict[str, Any]) -> int:
    if ctx.out.json:
        ctx.out.emit_json(doc)
    else:
        _print(ctx, doc, gates=True)
    return 0


def start(ctx: CliContext) -> int:
    from opsctl.services.canary import parse_overrides

    a = ctx.args
    overrides = parse_overrides(a.overrides)
    with ctx.daemon(needs=NEEDS, hint=HINT) as client:
        started = client.canaries.start(a.model, a.version, reason=a.reason, overrides=overrides)
    return _finish(ctx, dict(started.json))


def _command(ctx: CliContext, name: str) -> int:
    a = ctx.args
    with ctx.daemon(needs=NEEDS, hint=HINT) as client:
        document = client.canaries.command(a.model, name, reason=a.reason)
    return _finish(ctx, dict(document.json))


def pause(ctx: CliContext) -> int:
    return _command(ctx, "pause")


def resume(ctx: CliContext) -> int:
    return _command(ctx, "resume")


def promote(ctx: CliContext) -> int:
    ctx.confirm(f"promote the canary of {ctx.args.model} to production now, skipping its remaining stages?")
    return _command(ctx, "promote")


def abort(ctx: CliContext) -> int:
    return _command(ctx, "abort")


def approve(ctx: CliContext) -> int:
    return _command(ctx, "approve")


def status(ctx: CliContext) -> int:
    a = ctx.args
    if a.watch and not a.model:
        raise UsageError("--watch needs a MODEL")
    if a.timeout is not None and a.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if a.interval <= 0:
        raise UsageError("--interval must be positive")
    docs = _list(ctx, a.model)
    if not a.model:
        if ctx.out.json:
            ctx.out.emit_json(docs)
        elif not docs:
            ctx.out.message("no canaries yet; start one with `opsctl canary start MODEL VERSION`")
        else:
            for doc in docs:
                _print(ctx, doc, gates=False)
        return 0
    doc = docs[0]
    if not a.watch:
        _finish(ctx, doc)
        return EXIT_BY_STATE.get(doc["state"], 0)
    deadline = None if a.timeout is None else time.monotonic() + a.timeout
    last_key = None
    while True:
        key = (doc["state"], doc["stage"], doc["weight"], doc["failed_checks"], doc.get("reason"))
        if key != last_key and not ctx.out.json:
            _print(ctx, doc, gates=doc["state"] in _SETTLED)
            ctx.out.stdout.flush()
        last_key = key
        if doc["state"] in _SETTLED:
            if ctx.out.json:
                ctx.out.emit_json(doc)
            return EXIT_BY_STATE[doc["state"]]
        if deadline is not None and time.monotonic() >= deadline:
            if ctx.out.json:
                ctx.out.emit_json(doc)
            ctx.out.message(f"opsctl: {a.model}'s canary still {doc['state']} after {a.timeout:g}s")
            return EXIT_TIMEOUT
        time.sleep(a.interval if deadline is None else max(0.0, min(a.interval, deadline - time.monotonic())))
        doc = _list(ctx, a.model)[0]
