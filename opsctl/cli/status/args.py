"""``opsctl status``: daemon up or down, jobs, and what each model serves."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import command


def add_commands(sub: Any) -> None:
    command(sub, "status", "opsctl.cli.status.handlers:status", "daemon, jobs and what each model serves")
