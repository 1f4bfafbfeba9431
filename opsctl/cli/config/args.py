"""``opsctl config check``."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import group, subcommand


def add_commands(sub: Any) -> None:
    _, config_sub = group(sub, "config", "configuration commands", "config_command")
    p = subcommand(config_sub, "check", "opsctl.cli.config.handlers:check",
                   "validate a config file; non-zero exit on any problem")
    p.add_argument("file", nargs="?", help="file to check (default: the one opsctl would use)")
