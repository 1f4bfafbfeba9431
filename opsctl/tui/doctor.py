"""The doctor screen: every integration checked live (``opsctl doctor``), with what was found and the fix.

Read-only; evaluated in a worker thread by the callable the app was given (it asks Prometheus, each
Alertmanager and the daemon, which can take seconds); ``r`` checks again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.markup import escape

from opsctl.tui.evaluated import EvaluatedScreen, finding_lines, verdict_line

if TYPE_CHECKING:
    from opsctl.core.doctor import DoctorReport

DoctorSource = Callable[[], "DoctorReport"]

STATUS_STYLE = {"ok": "bold green", "warn": "bold yellow", "fail": "bold red", "unknown": "bold magenta"}
# What the exit code of `opsctl doctor` (the same numbers) says about the whole report.
VERDICT = {0: "every check is ok", 1: "something to fix", 2: "something is broken",
           3: "something could not be checked"}


def doctor_text(report: DoctorReport) -> str:
    """The report as Rich markup: the verdict and counts, then the findings worst first."""
    counts = report.to_json()["counts"]
    lines = [verdict_line(VERDICT.get(report.exit_code, ""), counts, STATUS_STYLE, ("fail", "unknown", "warn", "ok"),
                          f"checked {report.at}", report.exit_code), ""]
    order = {"fail": 0, "unknown": 1, "warn": 2, "ok": 3}
    for finding in sorted(report.findings, key=lambda f: order[f.status.value]):
        status = finding.status.value
        where = " ".join(escape(x) for x in (finding.model, finding.version) if x)
        lines += finding_lines(status, STATUS_STYLE[status],
                               f"[b]{escape(finding.check)}[/]" + (f" [cyan]{where}[/]" if where else ""),
                               finding.summary, finding.fix)
    return "\n".join(lines)


class DoctorScreen(EvaluatedScreen):
    """``opsctl doctor`` on screen: config, daemon, Prometheus and its queries, Alertmanagers, logs, disk."""

    KEY = "doctor"
    TITLE = "doctor: integrations checked live"
    WHAT = "the integrations"
    HELP_NOTES = ("Every integration checked live (what `opsctl doctor` prints): the config, the daemon, Prometheus\n"
                  "and each of the six queries per deployed version, the Alertmanagers, prediction logs, disk.\n"
                  "Worst first, each with what was found and how to fix it. j/k, PgUp/PgDn, g/G scroll; r checks\n"
                  "again. Nothing here changes anything.")

    def render_report(self, report: DoctorReport) -> str:
        return doctor_text(report)

    def count(self, report: DoctorReport) -> str:
        return f"{len(report.findings)} checks"
