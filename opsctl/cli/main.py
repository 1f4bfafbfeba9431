"""The ``opsctl`` command: argument parsing, dispatch, and error-to-exit-code mapping.

Handlers are named as ``module:function`` strings and imported only when their
command runs, so ``opsctl rollback`` never pays for the TUI, numpy or pandas.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from opsctl import __version__
from opsctl.cli.output import Output, colour_enabled
from opsctl.errors import OpsctlError, UsageError

# httpx 0.28's __init__ imports its own command-line client (httpx._main), which loads rich.console, click
# and pygments (~45 ms, a third of a daemon command's run) although opsctl never calls it. httpx wraps that
# import in `except ImportError` (the CLI extra is optional), and a None entry in sys.modules makes it raise
# ImportError, so httpx.main becomes its "install httpx[cli]" stub. Done here, in the console script's first
# module, because every path to httpx goes through it: opsctl.client, and also `opsctl demo status/fault`
# (opsctl.adapters.prometheus_launcher imports httpx directly). setdefault: a process that already imported
# the real module keeps it. (The imports above load no httpx.)
sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]

EXIT_CODES_HELP = """exit codes:
  0  success            4  conflict (someone else changed it first, or the state forbids it)
  1  failure            5  integrity (tampered or missing artifact, unsafe path)
  2  usage or config    6  daemon unavailable (for commands that need it)
  3  not found          7  confirmation required (pass --yes when stdin is not a terminal)
  opsctl health follows the monitoring-plugin convention instead: 0 ok, 1 degraded, 2 critical, 3 unknown."""

ROLLBACK_HELP = """where a rollback goes:
  with a canary running (or paused): the canary is aborted, all traffic goes to production.
  otherwise: production returns to the version it had before the last promote, whichever path
  promoted it (`opsctl promote`, `opsctl canary promote`, a canary that passed, a retrain handover).
  Every promote pushes the outgoing production version on the model's stack; every rollback pops
  one. `opsctl versions MODEL` marks the version a rollback would go to ("<- rollback").
  --to VERSION goes to that version instead.

what it reports:
  the registry change, then whether traffic followed (routing document updated, or the command/
  webhook actuator ran); exit 1 when traffic did not follow. With the daemon down it acts on the
  registry directly and still moves traffic (break-glass). --verify then watches Prometheus until
  the rolled-back-from version's share of requests is below --max-share (exit 1 if not by --within)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("table", "json"), default=None,
                        help="output format (json: a stable document on stdout)")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="config file (default: $OPSCTL_CONFIG, /etc/opsctl/opsctl.toml, ~/.config/opsctl/)")


def subcommand(group: Any, name: str, handler: str, help_text: str, *, config: bool = True,
               **kwargs: Any) -> argparse.ArgumentParser:
    """One subcommand under a command group (``opsctl canary start``), with ``-o`` and ``--config``."""
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text, **kwargs)
    parser.add_argument("-o", "--output", choices=("table", "json"), default=None,
                        help="output format (json: a stable document on stdout)")
    if config:
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="config file")
    parser.set_defaults(handler=handler)
    return parser


def _change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", default="", help="why: recorded in the audit log")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsctl", description="The on-call cockpit for ML models in production.",
                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"opsctl {__version__}")
    parser.add_argument("--config", metavar="FILE", default=None, help="config file")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", dest="global_output")
    parser.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR is honoured too)")
    parser.add_argument("--read-only", action="store_true", help="TUI: show everything, offer no action")
    parser.add_argument("--no-mouse", action="store_true", help="TUI: leave the mouse to the terminal (copy/paste)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.set_defaults(handler=handler)
        return p

    command("models", "opsctl.cli.registry_cmds:models", "list models with their production and canary versions")

    p = command("versions", "opsctl.cli.registry_cmds:versions", "list the versions of a model")
    p.add_argument("model")

    p = command("register", "opsctl.cli.registry_cmds:register", "register a model version (artifact is copied in)")
    p.add_argument("model")
    p.add_argument("--version", required=True, dest="model_version", metavar="VERSION")
    p.add_argument("--artifact", required=True, metavar="FILE")
    p.add_argument("--metrics", metavar="FILE.json", help="JSON object of metric name -> number")
    p.add_argument("--reference", metavar="FILE.csv", help="reference data sample for drift checks")
    p.add_argument("--description", default="")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--parent", metavar="VERSION", help="lineage: the version this one was trained from")
    p.add_argument("--code-version", metavar="REV", help="lineage: code revision used for training")
    p.add_argument("--data-hash", metavar="SHA256", help="lineage: hash of the training data")
    p.add_argument("--reason", default="")

    p = command("promote", "opsctl.cli.registry_cmds:promote", "put a version into production")
    p.add_argument("model")
    p.add_argument("version")
    _change(p)

    p = command("rollback", "opsctl.cli.registry_cmds:rollback",
                "abort a running canary, or return to the previous production version")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ROLLBACK_HELP
    p.add_argument("model")
    p.add_argument("--to", metavar="VERSION", help="roll back to this version instead of the previous one")
    p.add_argument("--verify", action="store_true",
                   help="after the change, watch Prometheus until traffic left the rolled-back-from version")
    p.add_argument("--within", type=float, default=60.0, metavar="SECONDS",
                   help="--verify: deadline for traffic to move (default: %(default)s)")
    p.add_argument("--max-share", type=float, default=5.0, metavar="PERCENT",
                   help="--verify: the rolled-back-from version's share of requests that counts as moved"
                        " (default: %(default)s)")
    p.add_argument("--window", type=float, default=15.0, metavar="SECONDS",
                   help="--verify: measure the share over this many seconds (default: %(default)s)")
    _change(p)

    p = command("history", "opsctl.cli.registry_cmds:history", "the audit log, oldest first")
    p.add_argument("model", nargs="?")
    p.add_argument("-n", "--limit", type=int, default=50)

    p = command("verify", "opsctl.cli.registry_cmds:verify",
                "check artifacts against their registered sha256 (exit 5 on a mismatch)")
    p.add_argument("model")
    p.add_argument("version", nargs="?", help="default: every version of the model")

    p = command("status", "opsctl.cli.status_cmd:status", "daemon, jobs and what each model serves")

    p = sub.add_parser("daemon", help="run the daemon in the foreground (what systemd's ExecStart calls)")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    p.set_defaults(handler="opsctl.cli.daemon_cmd:daemon")

    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=_Parser)
    p = config_sub.add_parser("check", help="validate a config file; non-zero exit on any problem")
    _common(p)
    p.add_argument("file", nargs="?", help="file to check (default: the one opsctl would use)")
    p.set_defaults(handler="opsctl.cli.config_cmds:check")

    import pkgutil

    from opsctl.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").add_commands(sub, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opsctl`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = Output()
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        out.format = args.output or args.global_output if hasattr(args, "output") else args.global_output
        out.colour = colour_enabled(out.stdout, no_color_flag=args.no_color)
        handler_name = getattr(args, "handler", None)
        if handler_name is None:
            if args.command is None:
                return _run("opsctl.cli.tui_cmd:tui", args, out)
            parser.parse_args([*args_list, "--help"])
            return 2
        return _run(handler_name, args, out)
    except OpsctlError as error:
        return _report(out, error)
    except KeyboardInterrupt:
        out.message("opsctl: interrupted")
        return 130
    except BrokenPipeError:
        return 1


def _run(handler_name: str, args: argparse.Namespace, out: Output) -> int:
    from opsctl.cli.context import CliContext

    module_name, _, function_name = handler_name.partition(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    return int(handler(CliContext(args=args, out=out)) or 0)


def _report(out: Output, error: OpsctlError) -> int:
    out.message(f"opsctl: error: {error}")
    if out.json:
        out.emit_json({"error": {"type": type(error).__name__, "message": str(error),
                                 "exit_code": error.exit_code}})
    return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
