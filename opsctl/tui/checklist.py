"""The production checklist screen: every item of the chapter's table with its status, evidence and fix.

Read-only. The checklist is evaluated by a callable the app was given (``opsctl.services.checklist``
with the CLI's settings: it reads the registry and asks Prometheus and Alertmanager, which can take
seconds), in a worker thread, so the screen answers keys while it loads; ``r`` evaluates it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from opsctl.clock import utc_iso
from opsctl.errors import OpsctlError
from opsctl.tui.screens import OpsScreen, Panel

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
    lines = [f"[b]{VERDICT.get(report.exit_code, '')}[/b] - "
             + ", ".join(f"[{STATUS_STYLE[s]}]{counts[s]} {s}[/]" for s in ("fail", "unknown", "pass"))
             + f"  [dim](evaluated {escape(utc_iso(report.at))}; exit code {report.exit_code})[/]"]
    category = None
    for item in report.items:
        if item.category != category:
            category = item.category
            lines += ["", f"[b u]{escape(category)}[/]"]
        status = item.status.value
        model = f" [cyan]{escape(item.model)}[/]" if item.model else ""
        lines.append(f"  [{STATUS_STYLE[status]}]{status:<7}[/] {escape(item.title)}{model}"
                     f" [dim]({item.priority.value})[/]")
        lines.append(f"           [dim]evidence:[/] {escape(item.evidence)}")
        if item.fix:
            lines.append(f"           [dim]fix:[/] {escape(item.fix)}")
    return "\n".join(lines)


class ChecklistScreen(OpsScreen):
    """The chapter's production checklist against live state (``opsctl checklist``), read-only."""

    DEFAULT_CSS = """
    #checklist-panel { height: 1fr; }
    #checklist { width: 100%; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Re-evaluate"),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "Bottom", show=False),
    ]
    HELP_NOTES = ("The chapter's production checklist evaluated on live state (what `opsctl checklist` prints):\n"
                  "pass, fail or unknown per item, with the evidence and how to fix it. j/k, PgUp/PgDn, g/G scroll;\n"
                  "r evaluates it again. Nothing here changes anything.")

    def __init__(self, source: ChecklistSource) -> None:
        super().__init__(id="checklist-screen")
        self.source = source
        self.report: ChecklistReport | None = None
        self.error = ""

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        with Panel(id="checklist-panel", classes="panel"), VerticalScroll(id="checklist-scroll"):
            yield Static("[dim]evaluating the checklist…[/]", id="checklist")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#checklist-panel").border_title = "production checklist"
        self.query_one("#checklist-scroll").focus()
        self.opsctl.update_chrome()
        self.action_reload()

    def action_reload(self) -> None:
        self.query_one("#checklist-panel").border_subtitle = "evaluating…"
        self.run_worker(self.source, thread=True, exclusive=True, group="checklist", exit_on_error=False)

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#checklist-scroll", VerticalScroll)
        {"down": scroll.scroll_down, "up": scroll.scroll_up, "home": scroll.scroll_home,
         "end": scroll.scroll_end}[where](animate=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "checklist" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        panel = self.query_one("#checklist-panel")
        if event.state is WorkerState.SUCCESS:
            self.report, self.error = event.worker.result, ""
            assert self.report is not None
            self.query_one("#checklist", Static).update(checklist_text(self.report))
            panel.border_subtitle = f"{len(self.report.items)} items"
            return
        error = event.worker.error
        self.error = str(error) if isinstance(error, OpsctlError) else f"{type(error).__name__}: {error}"
        # The last table stays (marked as such) rather than a blank screen.
        previous = "" if self.report is None else "\n\n[dim]last evaluation:[/]\n" + checklist_text(self.report)
        self.query_one("#checklist", Static).update(f"[bold red]could not evaluate the checklist:[/]"
                                                    f" {escape(self.error)}{previous}")
        panel.border_subtitle = "failed"
