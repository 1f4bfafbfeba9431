"""``opsctl audit verify``: recompute the audit log's hash chain from the registry (exit 5 when broken)."""

from __future__ import annotations

from pathlib import Path

from opsctl.cli.context import CliContext
from opsctl.errors import IntegrityError, NotFoundError


def verify(ctx: CliContext) -> int:
    from opsctl.adapters.registry import Registry, open_registry
    from opsctl.services.audit import verify_registry

    if ctx.args.registry or ctx.settings.registry.engine == "sqlite":
        path = Path(ctx.args.registry) if ctx.args.registry else ctx.settings.daemon.registry_path
        if not path.is_file():
            raise NotFoundError("registry", str(path), "pass --registry FILE or --config")
        registry = Registry(path)
    else:
        registry = open_registry(ctx.settings.registry, ctx.settings.daemon.registry_path, publish_routing=False)
    shown = registry.location
    try:
        report = verify_registry(registry)
    finally:
        registry.close()
    if not report.ok:
        message = f"audit log of {shown}: first broken row {report.first_broken_id}: {report.problem}"
        if not ctx.out.json:
            raise IntegrityError(message)
        ctx.out.message(f"opsctl: {message}")
    if ctx.out.json:
        ctx.out.emit_json({"registry": shown, **report.to_json()})
    else:
        ctx.out.line(f"{shown}: audit chain intact ({report.rows} rows, last row {report.last_id or 0})")
    return 0 if report.ok else IntegrityError.exit_code

