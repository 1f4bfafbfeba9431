"""Registry commands: models, versions, register, promote, rollback, history."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from opsctl.cli.context import CliContext
from opsctl.clock import utc_iso
from opsctl.domain import ChangeResult, Lineage, Outcome
from opsctl.errors import UsageError


def models(ctx: CliContext) -> int:
    rows = ctx.backend.models()
    if ctx.out.json:
        ctx.out.emit_json([m.to_json() for m in rows])
        return 0
    ctx.out.table(
        ["model", "production", "canary", "weight", "versions"],
        [[m.name, m.production_version, m.canary_version,
          f"{m.canary_weight:g}%" if m.canary_version else None, m.versions] for m in rows],
        empty="no models registered yet (see `opsctl register --help`)",
    )
    return 0


def versions(ctx: CliContext) -> int:
    rows = ctx.backend.versions(ctx.args.model)
    if ctx.out.json:
        ctx.out.emit_json([v.to_json() for v in rows])
        return 0
    ctx.out.table(
        ["version", "status", "created", "sha256", "metrics", "description"],
        [[v.version, ctx.out.style(v.status.value, *_status_style(v.status.value)), utc_iso(v.created_at),
          v.sha256[:12], v.metrics, v.description] for v in rows],
    )
    return 0


def _status_style(status: str) -> tuple[str, ...]:
    return {"production": ("green", "bold"), "canary": ("yellow",), "archived": ("dim",)}.get(status, ())


def register(ctx: CliContext) -> int:
    # The service layer (SQLite, hashing) loads only for the command that needs it.
    from opsctl.services.registry import RegisterRequest, validate_model_name

    args = ctx.args
    validate_model_name(args.model)
    metrics: dict[str, float] = {}
    if args.metrics:
        metrics = _read_metrics(Path(args.metrics))
    tags: dict[str, str] = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag must be KEY=VALUE, got {item!r}")
        tags[key] = value
    request = RegisterRequest(
        model=args.model,
        version=args.model_version,
        artifact=Path(args.artifact),
        metrics=metrics,
        reference=Path(args.reference) if args.reference else None,
        description=args.description,
        tags=tags,
        lineage=Lineage(training_data_hash=args.data_hash, code_version=args.code_version,
                        parent_version=args.parent, trigger="manual"),
    )
    created = ctx.backend.register(request, reason=args.reason, progress=_progress(ctx))
    if ctx.out.json:
        ctx.out.emit_json(created.to_json())
    else:
        ctx.out.line(f"registered {created.model} {created.version} (sha256 {created.sha256[:12]}…,"
                     f" {created.size_bytes} bytes)")
    return 0


def _progress(ctx: CliContext) -> Callable[[str, int, int], None] | None:
    """Upload progress on stderr when it is a terminal (at most every 1 %), else nothing."""
    stream = ctx.out.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    shown = {"percent": -1}

    def report(name: str, sent: int, total: int) -> None:
        percent = 100 if total == 0 else sent * 100 // total
        if percent == shown["percent"]:
            return
        shown["percent"] = percent
        end = "\n" if sent >= total else ""
        stream.write(f"\ruploading {name}: {percent:3d}% ({sent / 1e6:.1f} of {total / 1e6:.1f} MB){end}")
        stream.flush()

    return report


def _read_metrics(path: Path) -> dict[str, float]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--metrics file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"--metrics file {path} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"--metrics file {path} must hold a JSON object of name -> number")
    for key, value in document.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UsageError(f"--metrics file {path}: metric {key!r} must be a finite number, got {value!r}")
    return {str(k): float(v) for k, v in document.items()}


def promote(ctx: CliContext) -> int:
    args = ctx.args
    plan = ctx.backend.plan_promote(args.model, args.version)
    if not plan.noop:
        ctx.confirm(f"About to {plan.description} in production", expect=args.model)
    result = ctx.backend.promote(args.model, args.version, reason=args.reason,
                                 expected_generation=plan.generation)
    return _print_change(ctx, result)


def rollback(ctx: CliContext) -> int:
    args = ctx.args
    plan = ctx.backend.plan_rollback(args.model, args.to)
    if not plan.noop:
        ctx.confirm(f"About to {plan.description}", expect=args.model)
    result = ctx.backend.rollback(args.model, to=args.to, reason=args.reason,
                                  expected_generation=plan.generation)
    return _print_change(ctx, result)


def _print_change(ctx: CliContext, result: ChangeResult) -> int:
    if ctx.out.json:
        ctx.out.emit_json(result.to_json())
    elif result.outcome is Outcome.NOOP:
        ctx.out.line(result.message)
    else:
        ctx.out.line(ctx.out.style(f"done: {result.message}", "green") + f" (audit #{result.audit_id})")
    return 0


def history(ctx: CliContext) -> int:
    if ctx.args.limit <= 0:
        raise UsageError("--limit must be positive")
    events = ctx.backend.history(ctx.args.model, ctx.args.limit)
    if ctx.out.json:
        ctx.out.emit_json([e.to_json() for e in events])
        return 0
    ctx.out.table(
        ["id", "at", "who", "via", "action", "model", "from", "to", "outcome", "reason"],
        [[e.id, utc_iso(e.at), e.actor, e.via, e.action, e.model, e.from_version, e.to_version,
          e.outcome.value, e.reason] for e in events],
        empty="no audit events yet",
    )
    return 0


def verify(ctx: CliContext) -> int:
    from opsctl.errors import IntegrityError

    targets = [ctx.args.version] if ctx.args.version else [v.version for v in ctx.backend.versions(ctx.args.model)]
    results: list[dict[str, object]] = []
    failed: IntegrityError | None = None
    for version in targets:
        try:
            ctx.backend.verify(ctx.args.model, version)
            results.append({"version": version, "ok": True, "problem": None})
        except IntegrityError as error:
            failed = failed or error
            results.append({"version": version, "ok": False, "problem": str(error)})
    if ctx.out.json:
        ctx.out.emit_json({"model": ctx.args.model, "versions": results})
    else:
        ctx.out.table(["version", "ok", "problem"], [[r["version"], r["ok"], r["problem"]] for r in results])
    if failed is not None:
        ctx.out.message(f"opsctl: error: {failed}")
        return failed.exit_code
    return 0
