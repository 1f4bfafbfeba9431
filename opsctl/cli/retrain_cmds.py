"""Handlers of ``opsctl retrain``: thin calls to the daemon's retraining API.

Training runs in the daemon (it owns the training processes, the registry and the canary), so
these commands need it: when it does not answer they exit 6 and say how to start it. ``--wait``
polls the run (``GET /v1/retrain/{id}?log_offset=N``) and prints its progress and new log lines
as they come.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from opsctl.cli.context import CliContext
from opsctl.errors import DaemonUnavailableError, UsageError

_ACTIVE = {"running", "evaluating"}
_FAILED = {"failed", "timed_out", "abandoned"}
EXIT_TIMEOUT = 3
_POLL_SECONDS = 0.5


def _seg(value: str) -> str:
    return quote(value, safe="")


class _Api:
    def __init__(self, ctx: CliContext) -> None:
        from opsctl.client import DaemonClient

        self.client = DaemonClient.from_settings(ctx.settings)

    def __enter__(self) -> _Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        try:
            if method == "GET":
                return self.client.get(path, **params)
            return self.client.post(path, body or {})
        except DaemonUnavailableError as error:
            raise DaemonUnavailableError(
                f"retraining runs in the daemon, and it does not answer ({error}); start it with"
                " `systemctl start opsctl` (or `opsctl daemon`)") from error


def main(ctx: CliContext) -> int:
    target, argument = ctx.args.target, ctx.args.argument
    if target == "runs":
        return runs(ctx, argument)
    if target in ("show", "approve"):
        if not argument:
            raise UsageError(f"`opsctl retrain {target}` needs a RUN_ID (see `opsctl retrain runs`)")
        return show(ctx, argument) if target == "show" else approve(ctx, argument)
    if argument:
        raise UsageError(f"unexpected argument {argument!r}: `opsctl retrain MODEL [--wait] [--reason TEXT]`")
    return trigger(ctx, target)


def trigger(ctx: CliContext, model: str) -> int:
    out = ctx.out
    with _Api(ctx) as api:
        result = api.call("POST", f"/v1/retrain/{_seg(model)}", {"reason": ctx.args.reason, "wait": False})
        run = result["run"]
        if not ctx.args.wait:
            if out.json:
                out.emit_json(result)
            else:
                out.line(f"{model}: {result['verdict']}: {result['message']}")
                if run is not None:
                    out.line(f"  run {run['id']}; follow it with `opsctl retrain show {run['id']}`")
            return 0
        if run is None:
            raise UsageError(f"{model}: {result['message']}")
        if not out.json:
            out.message(f"{model}: {result['verdict']} run {run['id']} ({result['message']})")
        document = _follow(ctx, api, run["id"])
    if out.json:
        out.emit_json(document)
    else:
        _print_run(ctx, document, logs=False)
    if document["status"] in _ACTIVE:
        out.message(f"still {document['status']} after {ctx.args.timeout:g} s; the run goes on in the daemon")
        return EXIT_TIMEOUT
    return 1 if document["status"] in _FAILED else 0


def _follow(ctx: CliContext, api: _Api, run_id: str) -> dict[str, Any]:
    """Poll until the run ends, printing progress and new log lines (not in JSON mode)."""
    out = ctx.out
    deadline = None if ctx.args.timeout is None else time.monotonic() + ctx.args.timeout
    printed = 0
    last_progress = None
    while True:
        document = api.call("GET", f"/v1/retrain/{_seg(run_id)}", log_offset=printed)
        total = int(document.get("log_lines_total", 0))
        if not out.json:
            new = document.get("logs") or ""
            for line in new.splitlines():
                out.message(f"  | {line}")
            # A run that ended between two polls has its last progress in the training record.
            progress = document.get("progress") or (document.get("training") or {}).get("last_progress")
            if progress and progress != last_progress:
                out.message(f"  [{progress['fraction'] * 100:3.0f}%] {progress['message']}")
                last_progress = progress
        printed = max(printed, total)
        if document["status"] not in _ACTIVE:
            return document  # type: ignore[no-any-return]
        if deadline is not None and time.monotonic() >= deadline:
            return document  # type: ignore[no-any-return]
        time.sleep(_POLL_SECONDS)


def runs(ctx: CliContext, model: str | None) -> int:
    if ctx.args.limit <= 0:
        raise UsageError("--limit must be positive")
    with _Api(ctx) as api:
        documents = api.call("GET", "/v1/retrain", model=model, limit=ctx.args.limit)
    if ctx.out.json:
        ctx.out.emit_json(documents)
        return 0
    ctx.out.table(["run", "model", "trigger", "status", "started", "parent", "candidate", "decision"], [
        [d["id"], d["model"], d["trigger"], d["status"], d["started_at"], d["parent_version"] or "-",
         d["candidate_version"] or "-", _decision_cell(d)] for d in documents], empty="(no retraining runs)")
    return 0


def show(ctx: CliContext, run_id: str) -> int:
    with _Api(ctx) as api:
        document = api.call("GET", f"/v1/retrain/{_seg(run_id)}")
    if ctx.out.json:
        ctx.out.emit_json(document)
    else:
        _print_run(ctx, document, logs=True)
    return 0


def approve(ctx: CliContext, run_id: str) -> int:
    with _Api(ctx) as api:
        document = api.call("POST", f"/v1/retrain/{_seg(run_id)}/approve", {"reason": ctx.args.reason})
    if ctx.out.json:
        ctx.out.emit_json(document)
    else:
        _print_run(ctx, document, logs=False)
    return 0


def _decision_cell(document: dict[str, Any]) -> str:
    decision = document.get("decision")
    if not decision:
        return "-"
    if decision.get("improvement") is None:
        return decision["outcome"]
    return f"{decision['outcome']} ({decision['metric']} {decision['improvement']:+.4f})"


def _print_run(ctx: CliContext, d: dict[str, Any], *, logs: bool) -> None:
    out = ctx.out
    colour = ("red",) if d["status"] in _FAILED else ("green",) if d["status"] == "canary_started" else ()
    out.line(f"run {d['id']}: {d['model']} {out.style(d['status'], *colour)} (trigger {d['trigger']},"
             f" by {d['actor']}, started {d['started_at']}, finished {d['finished_at'] or '-'})")
    if d.get("reason"):
        out.line(f"  reason: {d['reason']}")
    out.line(f"  parent {d['parent_version'] or '-'} -> candidate {d['candidate_version'] or '-'}")
    if d.get("joined_triggers"):
        out.line(f"  {d['joined_triggers']} more triggers joined this run")
    decision = d.get("decision")
    if decision:
        out.line(f"  decision: {decision['outcome']}: {decision['reason']}")
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


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
