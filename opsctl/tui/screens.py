"""The overview (every model) and the registry screen (one model's versions, lineage, panels, history)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from opsctl.domain import ModelVersion
from opsctl.errors import OpsctlError
from opsctl.tui.model import COLUMNS, ModelRow, describe_event
from opsctl.tui.panels import alerts_text, canary_text, drift_text, health_text, version_cells, version_text

if TYPE_CHECKING:
    from opsctl.tui.app import OpsctlApp

ACTIONS = frozenset({"rollback", "promote"})
_SLA_STYLE = {"healthy": "green", "degraded": "bold red", "unknown": "yellow"}


class ContextBar(Static):
    """Top line: environment (loud in production), daemon state, read-only."""


class Banner(Static):
    """Shown while the daemon is unreachable."""


class Panel(Vertical):
    """A bordered panel whose title carries the age of its data; dims (class -stale) when stale."""


class ModelTable(DataTable[Any]):
    """The overview's table; enter opens the highlighted model (and says so in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open", show=True)]


class OpsScreen(Screen[None]):
    """Shared chrome and action gating for the main screens."""

    HELP_NOTES = ""

    @property
    def opsctl(self) -> OpsctlApp:
        return self.app  # type: ignore[return-value]

    def chrome(self) -> ComposeResult:
        yield ContextBar("", classes="context-bar")
        yield Banner("", classes="banner")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ACTIONS:
            if self.opsctl.read_only:
                return False  # hidden: read-only mode offers no action at all
            if not self.opsctl.connected:
                return None  # shown, disabled
        return True

    def on_screen_resume(self) -> None:
        self.opsctl.update_chrome()


class OverviewScreen(OpsScreen):
    """Every model: production, canary and weight, SLA status, firing alerts; the live event feed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rollback", "Rollback"),
        Binding("p", "promote", "Promote canary"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
    ]
    HELP_NOTES = ("enter opens the registry for the highlighted model; r rolls it back (to the previous\n"
                  "production version, or aborts its canary); p promotes its canary to production.")

    def __init__(self) -> None:
        super().__init__(id="overview")
        self.filter_text = ""
        self.ready = False

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        yield Input(placeholder="filter models (escape clears)", id="filter", classes="hidden")
        with Horizontal(id="body"):
            with Panel(id="models-panel", classes="panel"):
                table = ModelTable(id="models", cursor_type="row")
                for key, label in COLUMNS:
                    table.add_column(label, key=key)
                yield table
            with Panel(id="detail-panel", classes="panel"), VerticalScroll():
                yield Static("", id="detail")
        with Panel(id="feed-panel", classes="panel"), VerticalScroll(id="feed-scroll"):
            yield Static("[dim]waiting for events…[/]", id="feed")
        yield Footer()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#models", DataTable)

    def on_mount(self) -> None:
        self.query_one("#models-panel").border_title = "models"
        self.query_one("#detail-panel").border_title = "model"
        self.query_one("#feed-panel").border_title = "events"
        self.table.focus()
        self.ready = True
        # Documents that arrived before the widgets existed.
        self.apply_rows(set(self.opsctl.fleet.models), set(), set())
        self.show_feed()

    def on_unmount(self) -> None:
        self.ready = False

    # -- rows, updated in place ------------------------------------------------------------------

    def _visible(self, model: str) -> bool:
        return not self.filter_text or self.filter_text.lower() in model.lower()

    @staticmethod
    def _cell(key: str, value: str) -> str | Text:
        if key == "sla" and value in _SLA_STYLE:
            return Text(value, style=_SLA_STYLE[value])
        if key == "alerts" and value not in ("-", "0"):
            return Text(value, style="bold red")
        return value

    def apply_rows(self, added: set[str], changed: set[str], removed: set[str]) -> None:
        """Touch only what changed: new rows are added, changed cells updated, gone rows removed."""
        if not self.ready:
            return
        table = self.table
        fleet = self.opsctl.fleet
        for name in removed:
            if name in table.rows:
                table.remove_row(name)
        for name in sorted(added):
            if self._visible(name) and name not in table.rows:
                cells = fleet.row(name).cells()
                table.add_row(*(self._cell(k, cells[k]) for k, _ in COLUMNS), key=name)
        if added:
            table.sort("model")
        for name in changed:
            if name not in table.rows:
                continue
            before = fleet.committed(name)
            after = fleet.row(name).cells()
            old = before.cells() if before else {}
            for key, _ in COLUMNS:
                if old.get(key) != after[key]:
                    table.update_cell(name, key, self._cell(key, after[key]))
        fleet.commit(added | changed)
        if self.selected in added | changed or (added and self.selected is None):
            self.show_detail()

    def rebuild(self) -> None:
        """Used by the filter only: the visible set changed."""
        if not self.ready:
            return
        table = self.table
        wanted = [m for m in self.opsctl.fleet.models if self._visible(m)]
        for key in list(table.rows):
            if key.value not in wanted:
                table.remove_row(key)
        present = {k.value for k in table.rows}
        missing = [m for m in wanted if m not in present]
        for name in missing:
            cells = self.opsctl.fleet.row(name).cells()
            table.add_row(*(self._cell(k, cells[k]) for k, _ in COLUMNS), key=name)
        if missing:
            table.sort("model")
        self.show_detail()

    @property
    def selected(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # the cursor can briefly point past a removed row
            return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def show_detail(self) -> None:
        if not self.ready:
            return
        model = self.selected
        detail = self.query_one("#detail", Static)
        panel = self.query_one("#detail-panel")
        if model is None:
            panel.border_title = "model"
            detail.update("[dim]no models registered yet[/]" if not self.opsctl.fleet.models else "")
            return
        fleet = self.opsctl.fleet
        deployment = fleet.deployments.get(model, {})
        panel.border_title = escape(model)
        row: ModelRow = fleet.row(model)
        lines = [f"production {escape(row.production or '-')}  generation {deployment.get('generation', '-')}",
                 canary_text((fleet.canaries or {}).get(model), deployment),
                 health_text((fleet.health or {}).get(model)),
                 alerts_text(None if fleet.alert_counts is None else fleet.alerts, model),
                 drift_text((fleet.drift or {}).get(model))]
        detail.update("\n".join(lines))

    def show_feed(self) -> None:
        if not self.ready:
            return
        entries = list(self.opsctl.fleet.feed.values())[-60:]
        text = "\n".join(escape(describe_event(e)) for e in entries) or "[dim]no events yet[/]"
        self.query_one("#feed", Static).update(text)
        # After the new text is laid out, or the end we scroll to is the old one.
        scroll = self.query_one("#feed-scroll", VerticalScroll)
        self.call_after_refresh(scroll.scroll_end, animate=False)

    # -- actions -----------------------------------------------------------------------------------

    def action_open(self) -> None:
        if self.selected:
            self.opsctl.open_model(self.selected)

    def action_rollback(self) -> None:
        if self.selected:
            self.opsctl.open_change("rollback", self.selected)

    def action_promote(self) -> None:
        model = self.selected
        if not model:
            return
        canary = self.opsctl.fleet.deployments.get(model, {}).get("canary_version")
        if not canary:
            self.notify(f"{model} has no canary; open the registry (enter) and pick a version to promote",
                        severity="warning")
            return
        self.opsctl.open_change("promote", model, canary)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.add_class("hidden")
        self.table.focus()

    def action_refresh(self) -> None:
        self.opsctl.feed.refresh()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    def select(self, model: str) -> None:
        if model in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(model))


class ModelScreen(OpsScreen):
    """The registry for one model: versions with metrics, lineage and status; panels; its audit history."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "rollback", "Rollback"),
        Binding("p", "promote", "Promote version"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]
    HELP_NOTES = ("r rolls back to the previous production version (or aborts a running canary);\n"
                  "p promotes the highlighted version to production.")

    def __init__(self, model: str) -> None:
        super().__init__(id=f"model-{abs(hash(model))}", classes="model-screen")
        self.model = model
        self.ready = False
        self.versions: list[ModelVersion] = []
        self.history: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        yield Static("", id="model-title")
        with Horizontal(id="reg-body"):
            with Panel(id="versions-panel", classes="panel"):
                table: DataTable[Any] = DataTable(id="versions", cursor_type="row")
                for key in ("version", "status", "created", "metrics", "parent"):
                    table.add_column(key, key=key)
                yield table
            with Panel(id="version-panel", classes="panel"), VerticalScroll():
                yield Static("[dim]loading versions…[/]", id="version-detail")
        with Panel(id="model-panels", classes="panel"), VerticalScroll():
            yield Static("", id="model-state")
        yield Footer()

    def on_mount(self) -> None:
        self.ready = True
        self.query_one("#versions-panel").border_title = "versions"
        self.query_one("#version-panel").border_title = "version"
        self.query_one("#model-panels").border_title = "state and history"
        self.query_one("#versions", DataTable).focus()
        self.show_state()
        self.reload()

    def reload(self) -> None:
        self.run_worker(self._load, thread=True, exclusive=True, group="registry")

    def action_reload(self) -> None:
        self.reload()

    def _load(self) -> None:
        try:
            versions = self.opsctl.feed.versions(self.model)
            history = self.opsctl.feed.history(self.model, 20)
        except OpsctlError as error:
            self.app.call_from_thread(self._load_failed, str(error))
            return
        self.app.call_from_thread(self._loaded, versions, history)

    def _load_failed(self, message: str) -> None:
        if not self.versions:
            self.query_one("#version-detail", Static).update(f"[red]{escape(message)}[/]")

    def _loaded(self, versions: list[ModelVersion], history: list[dict[str, Any]]) -> None:
        if not self.ready:
            return
        table = self.query_one("#versions", DataTable)
        keep = self.highlighted
        first = not self.versions
        previous = {v.version: v for v in self.versions}
        self.versions = versions
        self.history = history
        for version in versions:
            cells = version_cells(version)
            if version.version in table.rows:
                old = previous.get(version.version)
                if old is None or version_cells(old) != cells:
                    for key, value in zip(("version", "status", "created", "metrics", "parent"), cells, strict=True):
                        table.update_cell(version.version, key, value)
            else:
                table.add_row(*cells, key=version.version)
        production = self.opsctl.fleet.deployments.get(self.model, {}).get("production_version")
        start = keep if keep and not first else production
        if start and start in table.rows:
            table.move_cursor(row=table.get_row_index(start))
        self.show_version()
        self.show_state()

    @property
    def highlighted(self) -> str | None:
        table = self.query_one("#versions", DataTable)
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_version()

    def show_version(self) -> None:
        chosen = self.highlighted
        version = next((v for v in self.versions if v.version == chosen), None)
        self.query_one("#version-detail", Static).update(version_text(version))

    def show_state(self) -> None:
        if not self.ready:
            return
        fleet = self.opsctl.fleet
        deployment = fleet.deployments.get(self.model, {})
        self.query_one("#model-title", Static).update(
            f"[b]{escape(self.model)}[/b]  production {escape(deployment.get('production_version') or '-')}"
            f"  previous {escape(', '.join(deployment.get('previous_versions') or []) or '-')}"
            f"  generation {deployment.get('generation', '-')}")
        history = "\n".join(escape(describe_event({"kind": "audit", "at": h.get("at"), "data": h}))
                            for h in self.history[-20:]) or "[dim]no history yet[/]"
        self.query_one("#model-state", Static).update("\n".join([
            canary_text((fleet.canaries or {}).get(self.model), deployment),
            health_text((fleet.health or {}).get(self.model)),
            alerts_text(None if fleet.alert_counts is None else fleet.alerts, self.model),
            drift_text((fleet.drift or {}).get(self.model)),
            "", "[b]history[/b]", history]))

    def action_rollback(self) -> None:
        self.opsctl.open_change("rollback", self.model)

    def action_promote(self) -> None:
        version = self.highlighted
        if version:
            self.opsctl.open_change("promote", self.model, version)
