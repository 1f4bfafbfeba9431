"""``opsctl config check``: validate a config file before it reaches the daemon."""

from __future__ import annotations

from pathlib import Path

from opsctl.cli.context import CliContext
from opsctl.config import find_config, load_file


def check(ctx: CliContext) -> int:
    path = Path(ctx.args.file) if ctx.args.file else find_config(getattr(ctx.args, "config", None))
    if path is None:
        ctx.out.message("no config file found; the built-in defaults apply (nothing to check)")
        if ctx.out.json:
            ctx.out.emit_json({"ok": True, "file": None})
        return 0
    settings = load_file(path).validate()
    # The daemon's start-up checks that need no binding (state dir, socket dir, token file).
    from opsctl.adapters.preflight import preflight

    preflight(settings)
    for warning in settings.warnings:
        ctx.out.message(f"warning: {path}: {warning}")
    if ctx.out.json:
        ctx.out.emit_json({"ok": True, "file": str(path), "state_dir": settings.daemon.state_dir,
                           "socket": settings.daemon.socket, "warnings": list(settings.warnings)})
    else:
        ctx.out.line(f"{path}: ok")
    return 0
