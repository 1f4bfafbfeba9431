"""Handlers of ``opsctl retrain``: thin calls to the daemon's retraining API.

Training runs in the daemon (it owns the training processes, the registry and the canary), so
these commands need it: when it does not answer they exit 6 and say how to start it. ``--wait``
polls the run (``GET /v1/retrain/{id}?log_offset=N``) and prints its progress and new log lines
as they come.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opsctl.cli.context import CliContext
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.client import DaemonClient
    from opsctl.documents import RetrainRun

_ACTIVE = {"running", "evaluating"}
_FAILED = {"failed", "timed_out", "abandoned", "canary_rolled_back", "canary_aborted", "canary_failed"}
_GOOD = {"canary_started", "canary_promoted"}
EXIT_TIMEOUT = 3
_POLL_SECONDS = 0.5


NEEDS = "retraining runs in the daemon"


def trigger(ctx: CliContext) -> int:
    """``opsctl retrain [run] MODEL``."""
    out = ctx.out
    model = ctx.args.model
    with ctx.daemon(needs=NEEDS) as client:
        result = client.retrain.trigger(model, reason=ctx.args.reason)
        run = result.run
        if not ctx.args.wait:
            if out.json:
                out.emit_json(result.json)
            else:
                out.line(f"{model}: {result.verdict}: {result.message}")
                if run is not None:
                    out.line(f"  run {run.id}; follow it with `opsctl retrain show {run.id}`")
            return 0
        if run is None:
            raise UsageError(f"{model}: {result.message}")
        if not out.json:
            out.message(f"{model}: {result.verdict} run {run.id} ({result.message})")
        document = _follow(ctx, client, run.id)
    if out.json:
        out.emit_json(document.json)
    else:
        _print_run(ctx, dict(document.json), logs=False)
    if document.active:
        out.message(f"still {document.status} after {ctx.args.timeout:g} s; the run goes on in the daemon")
        return EXIT_TIMEOUT
    return 1 if document.status in _FAILED else 0


def _follow(ctx: CliContext, client: DaemonClient, run_id: str) -> RetrainRun:
    """Poll until the run ends, printing progress and new log lines (not in JSON mode)."""
    out = ctx.out
    deadline = None if ctx.args.timeout is None else time.monotonic() + ctx.args.timeout
    printed = 0
    last_progress = None
    while True:
        run = client.retrain.show(run_id, log_offset=printed)
        if not out.json:
            for line in run.logs.splitlines():
                out.message(f"  | {line}")
            # A run that ended between two polls has its last progress in the training record.
            progress = run.json.get("progress") or (run.json.get("training") or {}).get("last_progress")
            if progress and progress != last_progress:
                out.message(f"  [{progress['fraction'] * 100:3.0f}%] {progress['message']}")
                last_progress = progress
        printed = max(printed, run.log_lines_total)
        if not run.active:
            return run
        if deadline is not None and time.monotonic() >= deadline:
            return run
        time.sleep(_POLL_SECONDS)


def runs(ctx: CliContext) -> int:
    """``opsctl retrain runs [MODEL]``."""
    if ctx.args.limit <= 0:
        raise UsageError("--limit must be positive")
    with ctx.daemon(needs=NEEDS) as client:
        found = client.retrain.runs(ctx.args.model, limit=ctx.args.limit)
    if ctx.out.json:
        ctx.out.emit_json([r.json for r in found])
        return 0
    ctx.out.table(["run", "model", "triggers", "status", "started", "parent", "candidate", "decision"], [
        [r.id, r.model, _triggers_cell(dict(r.json)), r.status, r.started_at, r.json.get("parent_version") or "-",
         r.candidate_version or "-", _decision_cell(dict(r.json))] for r in found], empty="(no retraining runs)")
    return 0


def show(ctx: CliContext) -> int:
    """``opsctl retrain show RUN_ID``."""
    with ctx.daemon(needs=NEEDS) as client:
        run = client.retrain.show(ctx.args.run_id)
    if ctx.out.json:
        ctx.out.emit_json(run.json)
    else:
        _print_run(ctx, dict(run.json), logs=True)
    return 0


def approve(ctx: CliContext) -> int:
    """``opsctl retrain approve RUN_ID``."""
    with ctx.daemon(needs=NEEDS) as client:
        run = client.retrain.approve(ctx.args.run_id, reason=ctx.args.reason)
    if ctx.out.json:
        ctx.out.emit_json(run.json)
    else:
        _print_run(ctx, dict(run.json), logs=False)
    return 0


def reject(ctx: CliContext) -> int:
    """``opsctl retrain reject RUN_ID``."""
    with ctx.daemon(needs=NEEDS) as client:
        run = client.retrain.reject(ctx.args.run_id, reason=ctx.args.reason)
    if ctx.out.json:
        ctx.out.emit_json(run.json)
    else:
        _print_run(ctx, dict(run.json), logs=False)
    return 0


def _triggers_cell(document: dict[str, Any]) -> str:
    """``drift+performance``: every kind of trigger that asked for the run, the starting one first."""
    kinds = [document["trigger"]]
    for ask in document.get("triggers") or []:
        if ask.get("kind") not in kinds:
            kinds.append(ask["kind"])
    return "+".join(kinds)


def _decision_cell(document: dict[str, Any]) -> str:
    decision = document.get("decision")
    if not decision:
        return "-"
    if decision.get("improvement") is None:
        return decision["outcome"]
    return f"{decision['outcome']} ({decision['metric']} {decision['improvement']:+.4f})"


def _print_run(ctx: CliContext, d: dict[str, Any], *, logs: bool) -> None:
    out = ctx.out
    colour = ("red",) if d["status"] in _FAILED else ("green",) if d["status"] in _GOOD else ()
    out.line(f"run {d['id']}: {d['model']} {out.style(d['status'], *colour)} (trigger {d['trigger']},"
             f" by {d['actor']}, started {d['started_at']}, finished {d['finished_at'] or '-'})")
    if d.get("reason"):
        out.line(f"  reason: {d['reason']}")
    out.line(f"  parent {d['parent_version'] or '-'} -> candidate {d['candidate_version'] or '-'}")
    asks = d.get("triggers") or []
    if asks:
        out.line("  asked by:")
        for ask in asks:
            why = f": {ask['reason']}" if ask.get("reason") else ""
            out.line(f"    {ask['at']} {ask['kind']} ({ask['verdict']}) by {ask['actor']}{why}")
    elif d.get("joined_triggers"):
        out.line(f"  {d['joined_triggers']} more triggers joined this run")
    decision = d.get("decision")
    if decision:
        out.line(f"  decision: {_headline(decision)}")
        names = sorted(set(decision["champion_metrics"]) | set(decision["challenger_metrics"]))
        out.table(["metric", f"champion {decision['champion_version'] or '-'}",
                   f"challenger {decision['challenger_version']}"],
                  [[name, _num(decision["champion_metrics"].get(name)), _num(decision["challenger_metrics"].get(name))]
                   for name in names])
    if d.get("message"):
        out.line(f"  {d['message']}")
    if d.get("error"):
        out.line("  error:")
        for line in d["error"].rstrip().splitlines():
            out.line(f"    {line}")
    if logs and d.get("logs"):
        out.line("  logs:")
        for line in d["logs"].splitlines():
            out.line(f"  | {line}")


def _headline(decision: dict[str, Any]) -> str:
    """The decision in one line (``kept 1.0.0: challenger 1.0.1 roc_auc +0.0040 < margin 0.01 (...)``)."""
    return str(decision.get("headline") or f"{decision.get('outcome')}: {decision.get('reason')}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
