"""Shared argparse pieces for every command group: the parser class, common options, subcommands.

A group package (``opsctl/cli/<group>/``) declares its arguments in ``args.py`` with these helpers
and names its handlers as ``module:function`` strings, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any

from opsctl.errors import UsageError

OUTPUT_HELP = "output format (json: a stable document on stdout)"
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class Parser(argparse.ArgumentParser):
    """Raises UsageError (one line, exit 2) instead of printing usage and exiting; suggests close names."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = self.prog.removeprefix("opsctl").strip()
        found = _INVALID_CHOICE.search(message)
        if found:
            given, choices = found.group(1), [c.strip(" '\"") for c in found.group(2).split(",")]
            close = difflib.get_close_matches(given, choices, n=3, cutoff=0.6)
            kind = "subcommand" if where else "command"
            message = f"unknown {kind} {given!r}"
            if close:
                message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
            message += f" (see `{self.prog} --help`)"
        else:
            message += f" (see `{self.prog} --help`)"
        raise UsageError(f"{where}: {message}" if where else message)


def common(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    """``-o/--output`` and ``--config``, accepted after the command too (``opsctl models -o json``)."""
    parser.add_argument("-o", "--output", choices=("table", "json"), default=None, help=OUTPUT_HELP)
    if config:
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                            help="config file (default: $OPSCTL_CONFIG, /etc/opsctl/opsctl.toml, ~/.config/opsctl/)")


def command(sub: Any, name: str, handler: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A top-level command (``opsctl versions``) with the common options."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text, **kwargs)
    common(parser)
    parser.set_defaults(handler=handler)
    return parser


def group(sub: Any, name: str, help_text: str, dest: str, **kwargs: Any) -> tuple[argparse.ArgumentParser, Any]:
    """A command group (``opsctl canary``) and the action to add its subcommands to."""
    kwargs.setdefault("description", help_text)
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, **kwargs)
    return parser, parser.add_subparsers(dest=dest, metavar="SUBCOMMAND", parser_class=Parser)


def subcommand(group_sub: Any, name: str, handler: str, help_text: str, *, config: bool = True,
               **kwargs: Any) -> argparse.ArgumentParser:
    """One subcommand under a command group (``opsctl canary start``), with ``-o`` and ``--config``."""
    kwargs.setdefault("description", help_text)
    parser: argparse.ArgumentParser = group_sub.add_parser(name, help=help_text, **kwargs)
    common(parser, config=config)
    parser.set_defaults(handler=handler)
    return parser


def change(parser: argparse.ArgumentParser) -> None:
    """``--reason`` and ``--yes`` for a command that changes production."""
    parser.add_argument("--reason", default="", help="why: recorded in the audit log")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
