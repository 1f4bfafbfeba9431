"""``opsctl migrate``."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import command


def add_commands(sub: Any) -> None:
    p = command(sub, "migrate", "opsctl.cli.migrate.handlers:migrate",
                "run the registry's schema migrations (SQLite file or [registry] url); --check only looks")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 with a one-line message when migrations are pending")
