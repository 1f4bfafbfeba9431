"""The ``opsctl`` command: argument parsing, dispatch, and error-to-exit-code mapping.

Handlers are named as ``module:function`` strings and imported only when their
command runs, so ``opsctl rollback`` never pays for the TUI, numpy or pandas.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from opsctl import __version__
from opsctl.cli.args import Parser
from opsctl.cli.output import Output, colour_enabled
from opsctl.errors import NotFoundError, OpsctlError, UsageError

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



# Command groups, one package each under opsctl/cli/ (arguments in <group>/args.py, handlers in
# <group>/handlers.py, imported only when their command runs).
GROUPS = ("registry", "status", "daemon", "config", "health", "alerts", "canary", "drift", "retrain", "abtest",
          "demo", "incident", "checklist", "report", "audit", "backup", "doctor", "migrate")
# Groups whose first positional may be a model instead of a subcommand: `opsctl retrain MODEL` is short for
# `opsctl retrain run MODEL`, `opsctl drift MODEL` for `opsctl drift check MODEL`.
SHORTHANDS = {"retrain": ("run", frozenset({"run", "runs", "show", "approve", "reject"})),
              "drift": ("check", frozenset({"check", "compare"}))}
# Options that take a value, so the word after them is not a positional.
_VALUED = frozenset({"-o", "--output", "--config", "--reason", "--timeout", "-n", "--limit", "--report",
                     "--categorical"})


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="opsctl", description="The on-call cockpit for ML models in production.",
                    epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"opsctl {__version__}")
    parser.add_argument("--config", metavar="FILE", default=None, help="config file")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", dest="global_output")
    parser.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR is honoured too)")
    parser.add_argument("--read-only", action="store_true", help="TUI: show everything, offer no action")
    parser.add_argument("--no-mouse", action="store_true", help="TUI: leave the mouse to the terminal (copy/paste)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in GROUPS:
        importlib.import_module(f"opsctl.cli.{name}.args").add_commands(sub)
    return parser


@dataclass(frozen=True)
class Shorthand:
    """Where :func:`expand_shorthand` inserted a group's default subcommand, and the word it took for a model."""

    group: str
    word: str

    def hint(self) -> str:
        """``did you mean `opsctl retrain runs`?`` when the word reads like a mistyped subcommand, else ''."""
        close = difflib.get_close_matches(self.word, sorted(SHORTHANDS[self.group][1]), n=1, cutoff=0.75)
        return f"; did you mean `opsctl {self.group} {close[0]}`?" if close else ""


def expand_shorthand(argv: Sequence[str]) -> tuple[list[str], Shorthand | None]:
    """``opsctl retrain MODEL ...`` -> ``opsctl retrain run MODEL ...`` (and ``drift MODEL`` -> ``drift check``),
    so a model named like a subcommand stays reachable through the explicit form."""
    args = list(argv)
    i = 0
    while i < len(args) and args[i].startswith("-"):  # global options before the command
        i += 2 if args[i] in ("-o", "--output", "--config") else 1
    if i >= len(args) or args[i] not in SHORTHANDS:
        return args, None
    default, names = SHORTHANDS[args[i]]
    j = i + 1
    while j < len(args) and args[j].startswith("-"):
        if args[j] in ("-h", "--help"):
            return args, None
        j += 2 if args[j] in _VALUED else 1
    if j < len(args) and args[j] not in names:
        args.insert(i + 1, default)
        return args, Shorthand(args[i], args[j + 1])
    return args, None


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON, read before parsing so a usage error can honour it."""
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
        if arg in ("-ojson", "--output=json"):
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opsctl`` console script; returns the exit code."""
    args_list, shorthand = expand_shorthand(sys.argv[1:] if argv is None else argv)
    out = Output(format="json" if _wants_json(args_list) else "table")
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        out.format = args.output or args.global_output if hasattr(args, "output") else args.global_output
        out.colour = colour_enabled(out.stdout, no_color_flag=args.no_color)
        handler_name = getattr(args, "handler", None)
        if handler_name is None:
            if args.command is None:
                return _run("opsctl.cli.tui.handlers:tui", args, out)
            parser.parse_args([*args_list, "--help"])
            return 2
        return _run(handler_name, args, out)
    except (UsageError, NotFoundError) as error:
        # `opsctl retrain rnus` ran `retrain run rnus`: a model nobody has, or arguments that do not fit.
        hint = shorthand.hint() if shorthand is not None else ""
        if hint:
            error.message += hint
        return _report(out, error)
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
    out.message(f"opsctl: {error}")
    if out.json:
        out.emit_json({"error": {"type": type(error).__name__, "message": str(error),
                                 "exit_code": error.exit_code}})
    return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
