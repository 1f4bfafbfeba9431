"""``opsctl demo restart daemon``: ask the running demo to start its daemon again."""

from __future__ import annotations

import os
from pathlib import Path

from opsctl.cli.context import CliContext
from opsctl.cli.demo.args import DEFAULT_STATE_DIR
from opsctl.demo.fleet import FleetLayout, read_state
from opsctl.errors import NotFoundError, OpsctlError

RESTART_TIMEOUT_SECONDS = 45.0


def _layout(ctx: CliContext) -> FleetLayout:
    """--state-dir, else the demo OPSCTL_CONFIG points at, else the default state dir."""
    explicit = getattr(ctx.args, "state_dir", None)
    if explicit:
        return FleetLayout.at(explicit)
    config = os.environ.get("OPSCTL_CONFIG")
    if config and (Path(config).parent / "demo.json").exists():
        return FleetLayout.at(Path(config).parent)
    return FleetLayout.at(DEFAULT_STATE_DIR)


def restart(ctx: CliContext) -> int:
    from opsctl.demo.restart import request_restart, wait_for_answer

    layout = _layout(ctx)
    if read_state(layout) is None:  # a clear "no running demo" error before asking anyone
        raise NotFoundError("running demo", str(layout.root),
                            f"start one with `opsctl demo --state-dir {layout.root}` (or pass --state-dir)")
    name = ctx.args.process
    request_restart(layout, name)
    if not ctx.out.json:
        ctx.out.message(f"opsctl: asked the demo in {layout.root} to restart the {name}…")
    answer = wait_for_answer(layout, name, timeout_seconds=RESTART_TIMEOUT_SECONDS)
    if answer is None:
        raise OpsctlError(f"the demo's supervisor did not answer within {RESTART_TIMEOUT_SECONDS:g}s; see"
                          f" {layout.logs / 'supervisor.log'}")
    if ctx.out.json:
        ctx.out.emit_json(answer.to_json())
    else:
        ctx.out.line(answer.message)
    return 0 if answer.ok else 1
