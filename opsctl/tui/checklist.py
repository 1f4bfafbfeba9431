"""The production checklist screen: every item of the chapter's table with its status, evidence and fix.

Read-only. The checklist is evaluated by a callable the app was given (``opsctl.services.checklist``
with the CLI's settings: it reads the registry and asks Prometheus and Alertmanager, which can take
seconds), in a worker thread (:class:`~opsctl.tui.evaluated.EvaluatedScreen`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.markup import escape

from opsctl.clock import utc_iso
from opsctl.tui.evaluated import EvaluatedScreen, finding_lines, verdict_line

if TYPE_CHECKING:
    from opsctl.services.checklist import ChecklistReport

ChecklistSource = Callable[[], "ChecklistReport"]

STATUS_STYLE = {"pass": "bold green", "fail": "bold red", "unknown": "bold yellow"}
# What the exit code of `opsctl checklist` (the same numbers) says about the whole table.
VERDICT = {0: "every item passes", 1: "a recommended item fails", 2: "a required item fails",
           3: "some items are unknown"}


def checklist_text(report: ChecklistReport) -> str:
    """The report as Rich markup: counts, then each category's items with status, evidence and fix."""
    counts = report.to_json()["counts"]
    lines = [verdict_line(VERDICT.get(report.exit_code, ""), counts, STATUS_STYLE, ("fail", "unknown", "pass"),
                          f"evaluated {utc_iso(report.at)}", report.exit_code)]
    category = None
    for item in report.items:
        if item.category != category:
            category = item.category
            lines += ["", f"[b u]{escape(category)}[/]"]
        status = item.status.value
        model = f" [cyan]{escape(item.model)}[/]" if item.model else ""
        lines += finding_lines(status, STATUS_STYLE[status],
                               f"{escape(item.title)}{model} [dim]({item.priority.value})[/]",
                               item.evidence, item.fix, "evidence")
    return "\n".join(lines)


class ChecklistScreen(EvaluatedScreen):
    """The chapter's production checklist against live state (``opsctl checklist``), read-only."""

    KEY = "checklist"
    TITLE = "production checklist"
    WHAT = "the checklist"
    HELP_NOTES = ("The chapter's production checklist evaluated on live state (what `opsctl checklist` prints):\n"
                  "pass, fail or unknown per item, with the evidence and how to fix it. j/k, PgUp/PgDn, g/G scroll;\n"
                  "r evaluates it again. Nothing here changes anything.")

    def render_report(self, report: ChecklistReport) -> str:
        return checklist_text(report)

    def count(self, report: ChecklistReport) -> str:
        return f"{len(report.items)} items"
