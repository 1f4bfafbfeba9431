"""``opsctl daemon``: run the daemon in the foreground."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    p = sub.add_parser("daemon", help="run the daemon in the foreground (what systemd's ExecStart calls)")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None,
                   help="lowest level logged (default: [daemon] log_level, else info)")
    p.set_defaults(handler="opsctl.cli.daemon.handlers:daemon")
