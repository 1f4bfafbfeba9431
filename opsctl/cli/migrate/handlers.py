"""``opsctl migrate``: bring the registry's schema to this opsctl's version, or (``--check``) say whether it is.

The same forward-only steps, under the same lock, as a daemon runs on its first connection, so running it
while daemons are up is safe. A registry migrated by a newer opsctl is refused, never touched.
"""

from __future__ import annotations

from opsctl.adapters.registry_engine import SchemaStatus
from opsctl.cli.context import CliContext
from opsctl.errors import OpsctlError


def migrate(ctx: CliContext) -> int:
    from opsctl.adapters.registry import open_registry

    registry = open_registry(ctx.settings.registry, ctx.settings.daemon.registry_path, publish_routing=False)
    try:
        if ctx.args.check:
            return _check(ctx, registry.schema_status())
        done = registry.migrate()
    finally:
        registry.close()
    if ctx.out.json:
        ctx.out.emit_json(done.to_json())
    elif done.applied:
        plural = "s" if done.applied != 1 else ""
        others = (f"; {done.to_version - done.from_version - done.applied} more by another process meanwhile"
                  if done.applied < done.to_version - done.from_version else "")
        ctx.out.line(f"{done.location}: schema {done.from_version} -> {done.to_version}"
                     f" ({done.applied} migration{plural} applied{others})")
    else:
        ctx.out.line(f"{done.location}: schema {done.to_version} -> {done.to_version} (up to date, nothing to do)")
    return 0


def _check(ctx: CliContext, status: SchemaStatus) -> int:
    message = (f"{status.location} is at schema {status.current}, this opsctl at {status.target}:"
               f" {status.pending} migration{'s' if status.pending != 1 else ''} pending; run `opsctl migrate`")
    if ctx.out.json:
        if status.pending:
            ctx.out.message(f"opsctl: {message}")
        ctx.out.emit_json(status.to_json())
        return 1 if status.pending else 0
    if status.pending:
        raise OpsctlError(message)
    ctx.out.line(f"{status.location}: schema {status.current}, up to date")
    return 0
