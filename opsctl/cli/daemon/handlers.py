"""``opsctl daemon``: the long-running service, in the foreground."""

from __future__ import annotations

from opsctl.cli.context import CliContext


def daemon(ctx: CliContext) -> int:
    from opsctld.main import run  # the daemon's dependencies load only for this command

    return run(getattr(ctx.args, "config", None), log_level=ctx.args.log_level)
