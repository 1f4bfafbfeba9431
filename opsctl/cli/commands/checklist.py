"""``opsctl checklist [MODEL]``: the production checklist (registry read-only, Prometheus, Alertmanager)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_commands(sub: Any, command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command("checklist", "opsctl.cli.checklist:checklist",
                "the production checklist: each item pass|fail|unknown with evidence and fix"
                " (exit 0 all pass, 1 recommended fail, 2 required fail, 3 unknown)")
    p.add_argument("model", nargs="?", default=None, help="one model (default: every deployed model)")
