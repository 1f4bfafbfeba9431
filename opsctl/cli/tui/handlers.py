"""Bare ``opsctl``: the Textual TUI against the daemon."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from opsctl.cli.context import CliContext
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.config import Settings
    from opsctl.core.doctor import DoctorReport
    from opsctl.services.checklist import ChecklistReport


def tui(ctx: CliContext) -> int:
    """Open the TUI; returns 0 when the user quits."""
    args = ctx.args
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the TUI needs a terminal; for scripts use `opsctl status -o json` and friends")
    if getattr(args, "no_color", False):
        os.environ["NO_COLOR"] = "1"  # Textual reads it when the app is created
    from opsctl.backends import DirectBackend
    from opsctl.rollout_verify import PrometheusTrafficMeter
    from opsctl.tui.app import OpsctlApp
    from opsctl.tui.breakglass import BreakGlass
    from opsctl.tui.feed import DaemonFeed
    from opsctl.tui.gameday import GameDay

    settings = ctx.settings
    feed = DaemonFeed(settings.daemon.socket, connect_timeout=settings.daemon.connect_timeout_seconds,
                      timeout=settings.daemon.request_timeout_seconds)
    # Connected to the demo fleet (its demo.json beside the daemon's state dir): game-day fault commands.
    config = settings.source if settings.source not in ("defaults", "<config>") else None
    gameday = GameDay.detect([settings.daemon.state_dir, config and os.path.dirname(os.path.abspath(config))])
    # With the daemon down, `r` runs what `opsctl rollback MODEL` runs then: the registry directly, traffic through
    # the routing document, and (as with --verify) a traffic check against Prometheus, audited.
    break_glass = BreakGlass(lambda: DirectBackend(settings, via="direct (daemon down)"),
                             start_command=settings.daemon.start_command,
                             meter=PrometheusTrafficMeter(settings.prometheus))
    app = OpsctlApp(feed, environment=settings.ui.environment, production=settings.ui.production,
                    read_only=bool(getattr(args, "read_only", False)), gameday=gameday,
                    daemon_start_command=settings.daemon.start_command, break_glass=break_glass,
                    checklist=checklist_source(settings), doctor=doctor_source(ctx, settings))
    app.run(mouse=not getattr(args, "no_mouse", False))
    return 0


def checklist_source(settings: Settings) -> Callable[[], ChecklistReport]:
    """What the TUI's checklist screen evaluates: ``opsctl checklist`` on these settings."""

    def evaluate() -> ChecklistReport:
        from opsctl.clock import SystemClock
        from opsctl.services.checklist import run_checklist

        return run_checklist(settings, SystemClock())

    return evaluate


def doctor_source(ctx: CliContext, settings: Settings) -> Callable[[], DoctorReport]:
    """What the TUI's doctor screen evaluates: ``opsctl doctor`` on these settings."""

    def evaluate() -> DoctorReport:
        from opsctl.cli.doctor.handlers import daemon_check
        from opsctl.clock import SystemClock
        from opsctl.services.doctor import run_doctor

        return run_doctor(settings, SystemClock(), daemon_check(ctx, settings))

    return evaluate
