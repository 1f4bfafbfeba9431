"""``opsctl report``: the health report as Markdown (stdout or --md FILE) and self-contained HTML (--html)."""

from __future__ import annotations

from pathlib import Path

from opsctl.cli.context import CliContext


def report(ctx: CliContext) -> int:
    from opsctl.clock import SystemClock
    from opsctl.core.durations import parse_duration
    from opsctl.core.report import render_html, render_markdown
    from opsctl.services.report import build_report

    args = ctx.args
    data = build_report(ctx.settings, SystemClock(), parse_duration(args.since), args.model)
    if args.html:
        Path(args.html).write_text(render_html(data))
        ctx.out.message(f"HTML report written to {args.html}")
    if args.md:
        Path(args.md).write_text(render_markdown(data))
        ctx.out.message(f"Markdown report written to {args.md}")
    if not args.html and not args.md:
        ctx.out.stdout.write(render_markdown(data))
    return 0
