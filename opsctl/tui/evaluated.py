"""A read-only screen over a report that takes seconds to evaluate (the checklist, the doctor).

The report comes from a callable the app was given, run in a worker thread so the screen answers keys
while it loads; ``r`` evaluates it again; a failed evaluation keeps the last report, marked as such.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from opsctl.errors import OpsctlError
from opsctl.tui.screens import OpsScreen, Panel


def verdict_line(verdict: str, counts: dict[str, int], styles: dict[str, str], order: tuple[str, ...],
                 when: str, exit_code: int) -> str:
    """A report's first line: its verdict in words, the count per status (coloured) and its exit code."""
    return (f"[b]{verdict}[/b] - " + ", ".join(f"[{styles[s]}]{counts[s]} {s}[/]" for s in order)
            + f"  [dim]({escape(when)}; exit code {exit_code})[/]")


def finding_lines(status: str, style: str, head: str, detail: str, fix: str | None,
                  detail_label: str = "") -> list[str]:
    """One finding: its status (coloured) and ``head`` (markup), then its detail and fix, indented."""
    label = f"[dim]{detail_label}:[/] " if detail_label else ""
    lines = [f"  [{style}]{status:<7}[/] {head}", f"           {label}{escape(detail)}"]
    if fix:
        lines.append(f"           [dim]fix:[/] {escape(fix)}")
    return lines


class EvaluatedScreen(OpsScreen):
    """Shows ``render(report)`` for the report ``source()`` returns; subclasses name and render it."""

    DEFAULT_CSS = """
    EvaluatedScreen .evaluated-panel { height: 1fr; }
    EvaluatedScreen .evaluated-body { width: 100%; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Re-evaluate"),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "Bottom", show=False),
    ]
    KEY: ClassVar[str]  # ids: KEY, KEY-panel, KEY-scroll; the worker group
    TITLE: ClassVar[str]
    WHAT: ClassVar[str]  # "the checklist", in messages

    def __init__(self, source: Callable[[], Any]) -> None:
        super().__init__(id=f"{self.KEY}-screen")
        self.source = source
        self.report: Any = None
        self.error = ""

    def render_report(self, report: Any) -> str:
        """The report as Rich markup."""
        raise NotImplementedError

    def count(self, report: Any) -> str:
        """The panel's subtitle for a report, e.g. "34 items"."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        with Panel(id=f"{self.KEY}-panel", classes="panel evaluated-panel"), \
                VerticalScroll(id=f"{self.KEY}-scroll"):
            yield Static(f"[dim]evaluating {self.WHAT}…[/]", id=self.KEY, classes="evaluated-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(f"#{self.KEY}-panel").border_title = self.TITLE
        self.query_one(f"#{self.KEY}-scroll").focus()
        self.opsctl.update_chrome()
        self.action_reload()

    def action_reload(self) -> None:
        self.query_one(f"#{self.KEY}-panel").border_subtitle = "evaluating…"
        self.run_worker(self.source, thread=True, exclusive=True, group=self.KEY, exit_on_error=False)

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one(f"#{self.KEY}-scroll", VerticalScroll)
        {"down": scroll.scroll_down, "up": scroll.scroll_up, "home": scroll.scroll_home,
         "end": scroll.scroll_end}[where](animate=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != self.KEY or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        panel = self.query_one(f"#{self.KEY}-panel")
        body = self.query_one(f"#{self.KEY}", Static)
        if event.state is WorkerState.SUCCESS:
            self.report, self.error = event.worker.result, ""
            body.update(self.render_report(self.report))
            panel.border_subtitle = self.count(self.report)
            return
        error = event.worker.error
        self.error = str(error) if isinstance(error, OpsctlError) else f"{type(error).__name__}: {error}"
        # The last report stays (marked as such) rather than a blank screen.
        previous = "" if self.report is None else "\n\n[dim]last evaluation:[/]\n" + self.render_report(self.report)
        body.update(f"[bold red]could not evaluate {self.WHAT}:[/] {escape(self.error)}{previous}")
        panel.border_subtitle = "failed"
