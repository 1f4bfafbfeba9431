"""``opsctl checklist [MODEL]``: the production checklist (registry read-only, Prometheus, Alertmanager)."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import command


def add_commands(sub: Any) -> None:
    p = command(sub, "checklist", "opsctl.cli.checklist.handlers:checklist",
                "the production checklist: each item pass|fail|unknown with evidence and fix"
                " (exit 0 all pass, 1 recommended fail, 2 required fail, 3 unknown)")
    p.add_argument("model", nargs="?", default=None, help="one model (default: every deployed model)")
