"""``opsctl audit verify``: recompute the audit log's hash chain from the registry file (exit 5 when broken)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsctl.cli.main import subcommand

if TYPE_CHECKING:
    from opsctl.cli.context import CliContext


def add_commands(sub: Any, command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    group = sub.add_parser("audit", help="audit log integrity", description="audit log integrity")
    group_sub = group.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", parser_class=type(group))
    p = subcommand(group_sub, "verify", "opsctl.cli.commands.audit:verify",
                   "recompute the audit log's hash chain; exit 5 naming the first broken row")
    p.add_argument("--registry", metavar="FILE", help="registry file (default: the config's state_dir/registry.db)")


def verify(ctx: CliContext) -> int:
    from pathlib import Path

    from opsctl.adapters.registry import Registry
    from opsctl.errors import IntegrityError, NotFoundError
    from opsctl.services.audit import verify_registry

    path = Path(ctx.args.registry) if ctx.args.registry else ctx.settings.daemon.registry_path
    if not path.is_file():
        raise NotFoundError("registry", str(path), "pass --registry FILE or --config")
    registry = Registry(path)
    try:
        report = verify_registry(registry)
    finally:
        registry.close()
    if not report.ok:
        message = f"audit log of {path}: first broken row {report.first_broken_id}: {report.problem}"
        if not ctx.out.json:
            raise IntegrityError(message)
        ctx.out.message(f"opsctl: error: {message}")
    if ctx.out.json:
        ctx.out.emit_json({"registry": str(path), **report.to_json()})
    else:
        ctx.out.line(f"{path}: audit chain intact ({report.rows} rows, last row {report.last_id or 0})")
    return 0 if report.ok else IntegrityError.exit_code

