"""Registry commands: models, versions, register, promote, rollback, history."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.cli.context import CliContext
from opsctl.clock import utc_iso
from opsctl.domain import ChangeResult, Deployment, Lineage, Outcome
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.rollout_verify import TrafficMeter, TrafficSnapshot, Verification


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
    deployment = next((d for d in ctx.backend.deployments() if d.model == ctx.args.model), None)
    target = rollback_target(deployment)
    if ctx.out.json:
        ctx.out.emit_json([{**v.to_json(), "rollback_target": v.version == target} for v in rows])
        return 0
    ctx.out.table(
        ["version", "status", "created", "sha256", "metrics", "description"],
        [[v.version + (" <- rollback" if v.version == target else ""),
          ctx.out.style(v.status.value, *_status_style(v.status.value)), utc_iso(v.created_at),
          v.sha256[:12], v.metrics, v.description] for v in rows],
    )
    ctx.out.line(_rollback_line(ctx.args.model, deployment, target))
    return 0


def rollback_target(deployment: Deployment | None) -> str | None:
    """The version `opsctl rollback MODEL` would put in production (None: it aborts a canary or cannot)."""
    if deployment is None or deployment.canary_version is not None or not deployment.previous_versions:
        return None
    return deployment.previous_versions[-1]


def _rollback_line(model: str, deployment: Deployment | None, target: str | None) -> str:
    if deployment is None:
        return ""
    if deployment.canary_version is not None:
        return (f"`opsctl rollback {model}` aborts the canary of {deployment.canary_version} and sends all traffic"
                f" to {deployment.production_version or '(none)'}")
    if target is None:
        return f"`opsctl rollback {model}` has no previous production version to go to (use --to VERSION)"
    earlier = list(deployment.previous_versions[:-1])
    stack = f" (then {', '.join(reversed(earlier))})" if earlier else ""
    return (f"`opsctl rollback {model}` goes to {target}, the production version before"
            f" {deployment.production_version}{stack}")


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
    if args.verify:
        _check_verify_args(args)
    plan = ctx.backend.plan_rollback(args.model, args.to)
    if not plan.noop:
        ctx.confirm(f"About to {plan.description}", expect=args.model)
    meter: TrafficMeter | None = None
    before: TrafficSnapshot | None = None
    if args.verify and not plan.noop:
        from opsctl.clock import SystemClock
        from opsctl.rollout_verify import PrometheusTrafficMeter

        meter = PrometheusTrafficMeter(ctx.settings.prometheus)
        before = meter.measure(args.model, SystemClock().now(), args.window)
    result = ctx.backend.rollback(args.model, to=args.to, reason=args.reason,
                                  expected_generation=plan.generation)
    code = _print_change(ctx, result, emit_json=meter is None)
    if meter is None:
        return code
    verification = _verify(ctx, result, meter, before)
    if ctx.out.json:
        from opsctl.change_report import report_change

        report = report_change(result, daemon_up=getattr(ctx.backend, "daemon_up", None),
                               start_command=ctx.settings.daemon.start_command)
        ctx.out.emit_json({**result.to_json(), **report.to_json(), "verification": verification.to_json()})
    else:
        line = f"verify: {verification.summary()}"
        ctx.out.line(ctx.out.style(line, "green" if verification.moved else "red"))
    return code or (0 if verification.moved else 1)


def _check_verify_args(args: argparse.Namespace) -> None:
    if not args.window > 0 or not args.within > 0:
        raise UsageError("--window and --within must be positive seconds")
    if not 0 <= args.max_share < 100:
        raise UsageError("--max-share must be a percent in [0, 100)")


def _verify(ctx: CliContext, result: ChangeResult, meter: TrafficMeter,
            before: TrafficSnapshot | None) -> Verification:
    """Watch traffic leave the rolled-back-from version; audit what was measured."""
    from opsctl.clock import SystemClock, parse_utc
    from opsctl.rollout_verify import verify_traffic_moved

    args = ctx.args
    clock = SystemClock()
    deployment = result.extra.get("deployment") or {}
    changed_at = parse_utc(deployment["updated_at"]) if deployment.get("updated_at") else clock.now()
    if not ctx.out.json:
        ctx.out.message(f"opsctl: verifying: watching {args.model}'s traffic on {result.from_version} for up to"
                        f" {max(args.within, args.window):g}s (share over {args.window:g}s windows)")
    verification = verify_traffic_moved(meter, model=args.model, from_version=result.from_version,
                                        to_version=result.to_version, before=before,
                                        changed_at=changed_at, clock=clock, window_seconds=args.window,
                                        within_seconds=args.within, max_share_percent=args.max_share)
    ctx.backend.record_verification(args.model, from_version=result.from_version, to_version=result.to_version,
                                    moved=verification.moved, detail=verification.summary(), reason=args.reason)
    return verification


def _print_change(ctx: CliContext, result: ChangeResult, *, emit_json: bool = True) -> int:
    """The registry change and, separately, whether traffic followed; exit 1 when it did not."""
    from opsctl.change_report import report_change

    daemon_up = getattr(ctx.backend, "daemon_up", None)
    report = report_change(result, daemon_up=daemon_up, start_command=ctx.settings.daemon.start_command)
    if ctx.out.json:
        if emit_json:
            ctx.out.emit_json({**result.to_json(), **report.to_json()})
    else:
        for index, line in enumerate(report.lines):
            colour = "green" if report.reached_traffic else "red"
            ctx.out.line(ctx.out.style(line, colour) if index == 0 and result.outcome is not Outcome.NOOP else line)
    return 0 if report.reached_traffic or result.outcome is Outcome.NOOP else 1


def history(ctx: CliContext) -> int:
    if ctx.args.limit <= 0:
        raise UsageError("--limit must be positive")
    events = ctx.backend.history(ctx.args.model, ctx.args.limit)
    if ctx.out.json:
        ctx.out.emit_json([e.to_json() for e in events])
        return 0
    # The detail is what happened (the drift's features, why a retrain was held, a decision's numbers);
    # the reason is why someone asked.
    ctx.out.table(
        ["id", "at", "who", "via", "action", "model", "from", "to", "outcome", "detail", "reason"],
        [[e.id, utc_iso(e.at), e.actor, e.via, e.action, e.model, e.from_version, e.to_version,
          e.outcome.value, e.detail or None, e.reason or None] for e in events],
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
        ctx.out.message(f"opsctl: {failed}")
        return failed.exit_code
    return 0
