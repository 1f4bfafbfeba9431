"""``opsctl doctor``: every integration checked live (config, daemon, Prometheus, queries, Alertmanagers, logs)."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import command


def add_commands(sub: Any) -> None:
    command(sub, "doctor", "opsctl.cli.doctor.handlers:doctor",
            "check every integration live and say what to fix"
            " (exit 0 all ok, 1 something to fix, 2 something broken, 3 something could not be checked)")
