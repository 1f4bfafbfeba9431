"""``opsctl demo restart daemon``: ask the running demo to start its daemon again."""

from __future__ import annotations

from opsctl.cli.context import CliContext
from opsctl.errors import OpsctlError

RESTART_TIMEOUT_SECONDS = 45.0


def restart(ctx: CliContext) -> int:
    from opsctl.cli.demo_cmds import _layout, _running
    from opsctl.demo.restart import request_restart, wait_for_answer

    layout = _layout(ctx, follow_config=True)
    _running(layout)  # a clear "no running demo" error before asking anyone
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
