"""``opsctl demo`` handlers: arguments and output only; the fleet is run by :mod:`opsctl.demo.runner`
and controlled through :mod:`opsctl.demo.control`."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from opsctl.cli.context import CliContext
from opsctl.cli.demo.args import DEFAULT_STATE_DIR
from opsctl.demo.control import DemoControl
from opsctl.demo.faults import Fault
from opsctl.demo.fleet import FleetLayout, merge_config, parse_models, read_state
from opsctl.demo.runner import DemoFleet, terminal_for_tui
from opsctl.demo.supervisor import RestartPolicy
from opsctl.errors import ConflictError, OpsctlError, UsageError

PROMETHEUS_INSTALL = "sudo apt-get install -y --no-install-recommends prometheus"


class _Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: stop starting, tear down."""


def _control(ctx: CliContext) -> DemoControl:
    """The demo named by --state-dir, else the one OPSCTL_CONFIG points into, else ./.demo-state."""
    explicit = getattr(ctx.args, "state_dir", None)
    if explicit:
        return DemoControl(FleetLayout.at(explicit))
    config = os.environ.get("OPSCTL_CONFIG")  # a terminal pointed at the demo finds it from anywhere
    if config and (Path(config).parent / "demo.json").exists():
        return DemoControl(FleetLayout.at(Path(config).parent))
    return DemoControl(FleetLayout.at(DEFAULT_STATE_DIR))


# --------------------------------------------------------------------------- opsctl demo



def run(ctx: CliContext) -> int:
    args = ctx.args
    layout = FleetLayout.at(getattr(args, "state_dir", None) or DEFAULT_STATE_DIR)
    try:
        models = parse_models(args.models)
    except ValueError as error:
        raise UsageError(f"--models: {error}") from None
    if not args.rate > 0:
        raise UsageError("--rate must be positive")
    if shutil.which("prometheus") is None:
        raise OpsctlError(f"the `prometheus` binary is not installed; install it with: {PROMETHEUS_INSTALL}"
                          " (`./dev demo` does this for you)")
    running = read_state(layout)
    if running is not None:
        raise ConflictError(f"a demo is already running from {layout.root} (pid {running.supervisor_pid});"
                            " stop it with Ctrl-C there, or use another --state-dir")
    extra = None
    if getattr(args, "config_extra", None):
        try:
            extra = Path(args.config_extra).read_text(encoding="utf-8")
            merge_config("", extra)
        except OSError as error:
            raise UsageError(f"--config-extra {args.config_extra}: {error.strerror}") from None
        except ValueError as error:
            raise UsageError(f"--config-extra {args.config_extra}: {error}") from None
    fleet = DemoFleet(layout, models, rate=args.rate, label_delay=args.label_delay,
                      restart=RestartPolicy(enabled=args.restart_crashed), stderr=ctx.out.stderr,
                      config_extra=extra)
    # SIGHUP too: a closed terminal or a dropped SSH session must not leave the fleet running.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only the first signal interrupts; a second Ctrl-C during teardown must not cut it short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise _Shutdown(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, on_signal)
    fleet.with_tui = not args.no_tui and terminal_for_tui()
    try:
        fleet.start()
        fleet.announce()
        if args.no_tui:
            fleet.run_headless()
        else:
            fleet.run_foreground_ui()
    except _Shutdown as stop:
        fleet.say(f"\nopsctl demo: {stop.args[0] if stop.args else 'stop'} received, shutting down")
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        fleet.teardown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


# --------------------------------------------------------------------------- faults and status


def fault(ctx: CliContext) -> int:
    args = ctx.args
    with _control(ctx) as demo:
        results = demo.inject(args.model, args.kind, level=args.level, versions=args.model_version,
                              features=args.feature)
    if ctx.out.json:
        ctx.out.emit_json([r.to_json() for r in results])
        return 0
    for result in results:
        applied = result.fault
        versions = ", ".join(applied.versions) or "all versions"
        extra = " (the server exits now)" if result.exiting else ""
        features = f", features {', '.join(applied.features)}" if applied.features else ""
        ctx.out.line(f"injected {applied.kind} (level {applied.level:g}{features}) into {result.server.model}"
                     f" [{versions}] at {result.server.url}{extra}")
    return 0


def clear(ctx: CliContext) -> int:
    args = ctx.args
    with _control(ctx) as demo:
        results = demo.clear(args.model, args.kind)
    if ctx.out.json:
        ctx.out.emit_json([r.to_json() for r in results])
        return 0
    for result in results:
        kinds = ", ".join(f.kind for f in result.cleared) or "nothing (no fault was active)"
        ctx.out.line(f"cleared {kinds} on {result.server.model} at {result.server.url}")
    return 0


def status(ctx: CliContext) -> int:
    with _control(ctx) as demo:
        fleet = demo.status()
    if ctx.out.json:
        ctx.out.emit_json(fleet.to_json())
        return 0
    state = fleet.state
    ctx.out.line(f"demo in {state.state_dir} (supervisor pid {state.supervisor_pid}, since {state.started_at})")
    ctx.out.line(f"config: OPSCTL_CONFIG={state.config}")
    rows: list[list[Any]] = [
        ["prometheus", state.prometheus_url, state.prometheus_pid, _running_text(fleet.prometheus_running), "-"],
        ["daemon", state.daemon_socket, state.daemon_pid, _running_text(fleet.daemon_running), "-"],
    ]
    for server in fleet.servers:
        rows.append([server.server.model, server.server.url, server.server.pid, _running_text(server.running),
                     _faults_text(server.faults)])
    ctx.out.table(["process", "address", "pid", "state", "faults"], rows)
    return 0


def _faults_text(faults: tuple[Fault, ...] | None) -> str:
    if faults is None:
        return "-"  # the server did not answer: unknown
    return ", ".join(f"{f.kind}={f.level:g}" for f in faults) or "none"


def _running_text(alive: bool) -> str:
    return "running" if alive else "down"
