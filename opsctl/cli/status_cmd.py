"""``opsctl status``: what each model serves (and, once it answers, the daemon's view)."""

from __future__ import annotations

from opsctl.cli.context import CliContext


def status(ctx: CliContext) -> int:
    deployments = ctx.backend.deployments()
    if ctx.out.json:
        ctx.out.emit_json({"daemon": {"up": False}, "source": "registry",
                           "models": [d.to_json() for d in deployments]})
        return 0
    ctx.out.table(
        ["model", "production", "canary", "weight"],
        [[d.model, d.production_version, d.canary_version,
          f"{d.canary_weight:g}%" if d.canary_version else None] for d in deployments],
        empty="no models registered yet",
    )
    return 0
