"""``opsctl audit verify``."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import group, subcommand


def add_commands(sub: Any) -> None:
    _, audit_sub = group(sub, "audit", "audit log integrity", "audit_command")
    p = subcommand(audit_sub, "verify", "opsctl.cli.audit.handlers:verify",
                   "recompute the audit log's hash chain; exit 5 naming the first broken row")
    p.add_argument("--registry", metavar="FILE", help="registry file (default: the config's state_dir/registry.db)")
