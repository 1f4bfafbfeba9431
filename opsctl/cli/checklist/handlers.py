"""``opsctl checklist [MODEL]``: the chapter's production checklist against live state."""

from __future__ import annotations

from opsctl.cli.context import CliContext


def checklist(ctx: CliContext) -> int:
    from opsctl.clock import SystemClock
    from opsctl.services.checklist import run_checklist

    report = run_checklist(ctx.settings, SystemClock(), ctx.args.model)
    if ctx.out.json:
        ctx.out.emit_json(report.to_json())
    else:
        rows = [(i.category, i.title, i.model or "", i.priority.value, i.status.value, i.evidence, i.fix)
                for i in report.items]
        ctx.out.table(["CATEGORY", "ITEM", "MODEL", "PRIORITY", "STATUS", "EVIDENCE", "FIX"], rows)
    return report.exit_code
