"""The overview (every model) and the registry screen (one model's versions, lineage, panels, history)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Key
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Log, Static, TabbedContent, TabPane
from textual.widgets._data_table import default_cell_formatter  # internal: pyproject pins textual's minor
from textual.widgets.data_table import ColumnKey, RowKey

from opsctl.domain import ModelVersion
from opsctl.errors import OpsctlError
from opsctl.tui.actions import (
    alert_ack,
    alert_model,
    alert_silence,
    canary_action,
    canary_start_action,
    retrain_action,
    retrain_decision,
    silence_end,
)
from opsctl.tui.model import (
    CANARY_PHASES,
    COLUMNS,
    TREND_UNITS,
    TRENDS,
    ModelRow,
    describe_event,
    spark_label,
    spark_text,
)
from opsctl.tui.panels import (
    alerts_text,
    canary_text,
    drift_detail_text,
    drift_text,
    health_detail_text,
    health_text,
    num,
    performance_text,
    retrain_runs_text,
    version_cells,
    version_text,
)

if TYPE_CHECKING:
    from opsctl.tui.host import Host

ACTIONS = frozenset({"rollback", "promote", "canary_start", "ack", "silence", "canary_pause", "canary_resume",
                     "canary_abort", "canary_promote", "retrain", "retrain_approve", "retrain_reject", "unsilence"})
WIDE_AT = 120  # columns from which the screens put their panels side by side
_SLA_STYLE = {"healthy": "green", "degraded": "bold red", "unknown": "yellow"}
_DRIFT_STYLE = {"DRIFT": "bold red", "ok": "green", "unknown": "yellow", "error": "red", "no reference": "yellow"}


class ContextBar(Static):
    """Top line: environment (loud in production), daemon state, read-only."""


class Banner(Static):
    """Shown while the daemon is unreachable."""


class Panel(Vertical):
    """A bordered panel whose title carries the age of its data; dims (class -stale) when stale."""


class ModelTable(DataTable[Any]):
    """The overview's table; enter opens the highlighted model (and says so in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open", show=True)]

    def set_cells(self, updates: dict[str, dict[str, Any]]) -> None:
        """Like ``update_cell`` for each (row, column, value), but repaints only the rows that changed.

        ``DataTable.update_cell`` bumps the table-wide update counter, which drops every render
        cache and the row-order and y-offset lists (rebuilt over *all* rows on the next frame) and
        repaints the whole widget: a refresh then cost a full table render plus work per model.
        Here the changed rows' cache entries are dropped and only those rows are repainted. A value
        wider than its column falls back to ``update_cell(update_width=True)`` (the column grows)."""
        touched: set[RowKey] = set()
        grew = False
        for row, cells in updates.items():
            row_key = RowKey(row)
            if row_key not in self._row_locations:
                continue
            for column, value in cells.items():
                column_key = ColumnKey(column)
                width = self.columns[column_key].content_width
                plain = value.plain if isinstance(value, Text) else str(value)
                # Markup only shortens a string, so the exact (slower) measure is needed only past `width`.
                if cell_len(plain) > width and self.app.console.measure(default_cell_formatter(value)).maximum > width:
                    self.update_cell(row_key, column_key, value, update_width=True)
                    grew = True
                else:
                    self._data[row_key][column_key] = value
                    touched.add(row_key)
        if grew and self.row_count:
            # A wider column can bring a horizontal scrollbar, which hides the last visible row: keep the
            # cursor in view as a fresh table (sized for the wide value from the start) would.
            self.call_after_refresh(self.move_cursor, row=self.cursor_row, animate=False)
        if not touched:
            return
        indices = {self._row_locations.get(key) for key in touched}
        for rkey in [k for k in self._row_renderable_cache.keys() if k[1] in indices]:  # noqa: SIM118 (not a dict)
            self._row_renderable_cache.discard(rkey)
        for cache in (self._cell_render_cache, self._row_render_cache):
            for ckey in [k for k in cache.keys() if k[0] in touched]:  # noqa: SIM118
                cache.discard(ckey)
        self._line_cache.clear()  # keyed by screen line; rebuilt from the row caches above
        if len(indices) <= 4:
            for index in indices:
                self.refresh_row(index)  # sums the heights of the rows above: fine for a few
        else:
            self.refresh()  # many rows: repaint what is visible; untouched rows come from the caches


class OpsScreen(Screen[None]):
    """Shared chrome and action gating for the main screens."""

    HELP_NOTES = ""

    @property
    def opsctl(self) -> Host:
        return self.app  # type: ignore[return-value]

    def chrome(self) -> ComposeResult:
        yield ContextBar("", classes="context-bar")
        yield Banner("", classes="banner")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Hidden: read-only mode offers no action; with the daemon away the footer offers none that would do
        # nothing (the key still answers, in on_key).
        if (action == "rollback" and not self.opsctl.connected and not self.opsctl.read_only
                and self.opsctl.break_glass is not None and self.action_model() is not None):
            return True  # break-glass: the registry directly, as the CLI does without a daemon
        return not (action in ACTIONS and (self.opsctl.read_only or not self.opsctl.connected))

    def action_model(self) -> str | None:
        """The model an action key would act on here (none on the alerts screen)."""
        return None

    def why_not(self, action: str) -> str:
        """One line: why an action key cannot act here right now (a subclass knows its own reasons)."""
        return "not applicable here right now"

    def on_key(self, event: Key) -> None:
        """An action key that cannot act says why in one line (and, with the daemon away, what still works)."""
        binding = next((b for b in self.BINDINGS if isinstance(b, Binding) and b.action in ACTIONS
                        and event.key in b.key.split(",")), None)
        if binding is None:
            return
        if self.opsctl.read_only:
            event.stop()
            self.notify(f"{binding.description}: nothing done, read-only mode offers no action", severity="warning")
            return
        if self.opsctl.connected:
            if self.check_action(binding.action, ()):
                return  # the binding acts
            event.stop()
            self.notify(f"{binding.description}: nothing done, {self.why_not(binding.action)}", severity="warning")
            return
        event.stop()
        model = self.action_model()
        if binding.action == "rollback" and model is not None and self.opsctl.break_glass is not None:
            self.opsctl.open_break_glass(model)  # what break-glass is for: the CLI's direct path, from here
            return
        break_glass = (f" Break-glass: `opsctl rollback {model or 'MODEL'}` in a shell moves traffic without the"
                       " daemon and reports whether traffic followed." if binding.action == "rollback" else "")
        self.notify(f"{binding.description}: nothing done, the daemon is unreachable.{break_glass}"
                    f" Bring it back: `{self.opsctl.daemon_start_command}`.",
                    title="daemon unreachable", severity="error", timeout=10)

    def on_mount(self) -> None:
        self.set_class(self.app.size.width >= WIDE_AT, "-wide")

    def on_screen_resume(self) -> None:
        # The terminal may have been resized while this screen was covered: lay out for the size it has now.
        self.set_class(self.app.size.width >= WIDE_AT, "-wide")
        self.refresh(layout=True)
        self.opsctl.update_chrome()


class OverviewScreen(OpsScreen):
    """Every model: production, canary and weight, SLA status, firing alerts; the live event feed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rollback", "Rollback"),
        Binding("p", "promote", "Promote", tooltip="promote the canary"),
        Binding("a", "alerts", "Alerts"),
        Binding("l", "checklist", "Checklist", tooltip="the production checklist: status, evidence, fix"),
        Binding("D", "doctor", "Doctor", show=False, tooltip="every integration checked live"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
    ]
    HELP_NOTES = ("enter opens the model (registry, SLA, canary, drift, retrain, history); r rolls it back\n"
                  "(to the previous production version, or aborts its canary); p promotes its canary;\n"
                  "a lists the alerts (ack, silence); l shows the production checklist; D checks every\n"
                  "integration live (the doctor). `:` runs any action by name.")

    def __init__(self) -> None:
        super().__init__(id="overview")
        self.filter_text = ""
        self.ready = False
        self._detail_text: str | None = None

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
        yield Footer(compact=True)  # one space between keys: a screen's keys fit 80 columns

    @property
    def table(self) -> ModelTable:
        return self.query_one("#models", ModelTable)

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
        if key == "drift" and value in _DRIFT_STYLE:
            return Text(value, style=_DRIFT_STYLE[value])
        if key == "trend":
            return Text(value, style="cyan")
        return value

    def apply_rows(self, added: set[str], changed: set[str], removed: set[str]) -> None:
        """Touch only what changed: new rows are added, changed cells updated, gone rows removed."""
        if not self.ready or not self.query("#models"):
            return  # not composed yet, or being torn down (a status can arrive while the app quits)
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
        updates: dict[str, dict[str, Any]] = {}
        for name in changed:
            if name not in table.rows:
                continue
            before = fleet.committed(name)
            after = fleet.row(name).cells()
            old = before.cells() if before else {}
            updates[name] = {key: self._cell(key, after[key]) for key, _ in COLUMNS if old.get(key) != after[key]}
        if updates:
            table.set_cells(updates)
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
        if not self.ready:  # an SSE event can arrive before the overview is composed
            return None
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
        if not self.ready or not self.query("#models"):
            return  # not composed yet, or being torn down (the clock ticks while the app quits)
        model = self.selected
        detail = self.query_one("#detail", Static)
        panel = self.query_one("#detail-panel")
        if model is None:
            panel.border_title = "model"
            self._detail_text = None
            detail.update("[dim]no models registered yet[/]" if not self.opsctl.fleet.models else "")
            return
        fleet = self.opsctl.fleet
        deployment = fleet.deployments.get(model, {})
        panel.border_title = escape(model)
        row: ModelRow = fleet.row(model)
        trends = "\n".join(f"{label:<12} {spark_label(fleet.trend(model, name), TREND_UNITS[name], 12) or '-'}"
                           for name, label in TRENDS)
        lines = [f"production {escape(row.production or '-')}  generation {deployment.get('generation', '-')}",
                 canary_text((fleet.canaries or {}).get(model), deployment, self.opsctl.clock.now(), brief=True),
                 health_text((fleet.health or {}).get(model)),
                 trends,
                 alerts_text(None if fleet.alert_counts is None else fleet.alerts, model),
                 drift_text((fleet.drift or {}).get(model))]
        text = "\n".join(lines)
        if text != self._detail_text:  # an update re-lays out and repaints the panel: skip when unchanged
            self._detail_text = text
            detail.update(text)

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

    def action_model(self) -> str | None:
        return self.selected

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

    def action_checklist(self) -> None:
        self.opsctl.open_checklist()

    def action_doctor(self) -> None:
        self.opsctl.open_doctor()

    def action_alerts(self) -> None:
        self.opsctl.open_alerts()

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


class AlertsScreen(OpsScreen):
    """Every alert the daemon tracks (firing, pending, then resolved), with ack and silence from the keyboard."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "ack", "Ack"),
        Binding("j", "app.simulate_key('down')", "Down", show=False),
        Binding("k", "app.simulate_key('up')", "Up", show=False),
        Binding("s", "silence", "Silence 1h"),
        Binding("S", "silences", "Silences", tooltip="silences in force; end one"),
        Binding("enter", "open", "Open model"),
    ]
    HELP_NOTES = ("a acknowledges the highlighted alert until it resolves (notifications stop);\n"
                  "s silences alerts like it (its rule on its model) for an hour. Both ask for a reason\n"
                  "and are audited with your user. S lists the silences in force (e ends one).")
    # What an on-call reads first comes first, so version and ack stay on screen at 80 columns.
    COLUMNS: ClassVar[tuple[str, ...]] = ("state", "rule", "model", "version", "ack", "since", "severity")
    LABELS: ClassVar[dict[str, str]] = {"ack": "acked by"}
    ORDER: ClassVar[dict[str, int]] = {"firing": 0, "pending": 1, "resolved": 2}

    def __init__(self) -> None:
        super().__init__(id="alerts-screen")
        self.ready = False
        self.shown: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        with Panel(id="alerts-panel", classes="panel"):
            table: DataTable[Any] = DataTable(id="alerts", cursor_type="row")
            for key in self.COLUMNS:
                table.add_column(self.LABELS.get(key, key), key=key)
            yield table
        with Panel(id="alert-panel", classes="panel"), VerticalScroll():
            yield Static("", id="alert-detail")
        yield Footer(compact=True)  # one space between keys: a screen's keys fit 80 columns

    def on_mount(self) -> None:
        self.ready = True
        self.query_one("#alerts-panel").border_title = "alerts"
        self.query_one("#alert-panel").border_title = "alert"
        self.query_one("#alerts", DataTable).focus()
        self.show_alerts()

    def _cells(self, alert: dict[str, Any]) -> tuple[str, ...]:
        ack = alert.get("ack") or {}
        since = alert.get("fired_at") or alert.get("starts_at") or ""
        labels = alert.get("labels") or {}
        version = labels.get("model_version") or labels.get("version") or alert.get("version") or "-"
        return (str(alert.get("state", "?")), str(alert.get("rule", "")), alert_model(alert) or "-", str(version),
                str(ack.get("by", "?")) if ack else "-", str(since)[5:16].replace("T", " "),
                str(alert.get("severity", "")))

    def show_alerts(self) -> None:
        """Rows updated in place; a changed order (a new or re-stated alert) re-sorts."""
        if not self.ready:
            return
        table = self.query_one("#alerts", DataTable)
        alerts = {str(a.get("id")): a for a in self.opsctl.fleet.alerts}
        for key in list(self.shown):
            if key not in alerts:
                table.remove_row(key)
                del self.shown[key]
        resort = False
        for key, alert in alerts.items():
            cells = self._cells(alert)
            if key not in self.shown:
                table.add_row(*(self._styled(c) for c in cells), key=key)
                resort = True
            elif self.shown[key] != cells:
                for column, old, new in zip(self.COLUMNS, self.shown[key], cells, strict=True):
                    if old != new:
                        # The column grows with its content ("acked by alice" in a column sized for "-").
                        table.update_cell(key, column, self._styled(new), update_width=True)
                resort = resort or self.shown[key][0] != cells[0]
            self.shown[key] = cells
        if resort:
            table.sort("state", key=lambda state: self.ORDER.get(str(state), 3))
        self.query_one("#alerts-panel").border_title = (
            f"alerts: {sum(1 for a in alerts.values() if a.get('state') == 'firing')} firing,"
            f" {sum(1 for a in alerts.values() if a.get('state') == 'pending')} pending, "
            f"{sum(1 for a in alerts.values() if a.get('state') == 'resolved')} resolved")
        self.show_detail()

    @staticmethod
    def _styled(value: str) -> str | Text:
        style = {"firing": "bold red", "pending": "yellow", "resolved": "green", "critical": "red"}.get(value)
        return Text(value, style=style) if style else value

    @property
    def selected(self) -> dict[str, Any] | None:
        table = self.query_one("#alerts", DataTable)
        if not table.row_count:
            return None
        try:
            key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None
        return next((a for a in self.opsctl.fleet.alerts if str(a.get("id")) == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        alert = self.selected
        detail = self.query_one("#alert-detail", Static)
        if alert is None:
            fetched = self.opsctl.fleet.alerts_fetched
            detail.update("[dim]no alerts[/]" if fetched else "[dim]no data yet[/]")
            return
        ack = alert.get("ack")
        labels = " ".join(f"{k}={v}" for k, v in sorted((alert.get("labels") or {}).items()))
        lines = [f"[b]{escape(str(alert.get('rule')))}[/b] {escape(str(alert.get('id')))}"
                 f"  {escape(str(alert.get('state')))}  value {num(alert.get('value'))}",
                 escape(str(alert.get("summary") or "")),
                 f"labels: {escape(labels)}",
                 f"started {escape(str(alert.get('starts_at', '-')))}"
                 f"  fired {escape(str(alert.get('fired_at') or '-'))}"
                 f"  resolved {escape(str(alert.get('resolved_at') or '-'))}"]
        if ack:
            lines.append(f"acked by {escape(str(ack.get('by')))} at {escape(str(ack.get('at')))}\n"
                         f"  until {escape(str(ack.get('until') or 'it resolves'))}:"
                         f" {escape(str(ack.get('comment', '')))}")
        detail.update("\n".join(lines))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if action in ("ack", "silence") and allowed:
            alert = self.selected
            if alert is None or (action == "ack" and alert.get("state") == "resolved"):
                return None
        return allowed

    def why_not(self, action: str) -> str:
        alert = self.selected
        if alert is None:
            return "no alert highlighted"
        if action == "ack" and alert.get("state") == "resolved":
            return "the alert is resolved; there is nothing to acknowledge"
        return super().why_not(action)

    def action_ack(self) -> None:
        alert = self.selected
        if alert is not None and alert.get("state") != "resolved":
            self.opsctl.open_action(alert_ack(alert))

    def action_silence(self) -> None:
        alert = self.selected
        if alert is not None:
            self.opsctl.open_action(alert_silence(alert))

    def action_silences(self) -> None:
        self.opsctl.open_silences()

    def action_open(self) -> None:
        alert = self.selected
        model = alert_model(alert) if alert else None
        if model and model in self.opsctl.fleet.deployments:
            self.opsctl.open_model(model)


class SilencesScreen(OpsScreen):
    """The silences in force (newest end last): who set them, what they match, until when; end one with `e`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("e", "unsilence", "End silence"),
        Binding("j", "app.simulate_key('down')", "Down", show=False),
        Binding("k", "app.simulate_key('up')", "Up", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]
    HELP_NOTES = ("e ends the highlighted silence now (asks for a reason; audited with your user):\n"
                  "alerts it matched notify again. ctrl+r reloads the list.")
    # Short columns first so who and why stay on screen at 80 columns; the matchers, often long, come last.
    COLUMNS: ClassVar[tuple[str, ...]] = ("ends", "by", "comment", "matchers")

    def __init__(self) -> None:
        super().__init__(id="silences-screen")
        self.ready = False
        self.silences: list[dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        with Panel(id="silences-panel", classes="panel"):
            table: DataTable[Any] = DataTable(id="silences", cursor_type="row")
            for key in self.COLUMNS:
                table.add_column(key, key=key)
            yield table
        yield Static("[dim]loading silences…[/]", id="silences-note")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.query_one("#silences-panel").border_title = "silences in force"
        self.query_one("#silences", DataTable).focus()
        self.reload()

    def reload(self) -> None:
        self.run_worker(self._load, thread=True, exclusive=True, group="silences")

    def action_reload(self) -> None:
        self.reload()

    def _load(self) -> None:
        try:
            silences = self.opsctl.feed.silences()
        except OpsctlError as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self._loaded, silences)

    def _failed(self, message: str) -> None:
        if self.ready:
            self.query_one("#silences-note", Static).update(f"[red]cannot list silences: {escape(message)}[/]")

    def _loaded(self, silences: list[dict[str, Any]]) -> None:
        if not self.ready:
            return
        self.silences = sorted(silences, key=lambda s: str(s.get("ends_at") or ""))
        table = self.query_one("#silences", DataTable)
        keep = self.selected
        table.clear()
        for silence in self.silences:
            ends = str(silence.get("ends_at") or "")[5:16].replace("T", " ")
            comment = str(silence.get("comment") or "")
            table.add_row(ends, str(silence.get("author") or "-"),
                          comment if len(comment) <= 24 else comment[:23] + "…",
                          " ".join(str(m).replace('"', "") for m in silence.get("matchers") or ()) or "-",
                          key=str(silence.get("id")))
        if keep is not None and str(keep.get("id")) in table.rows:
            table.move_cursor(row=table.get_row_index(str(keep.get("id"))))
        self.show_detail()
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        count = len(self.silences or [])
        silence = self.selected
        lines = ["no silence in force" if not count else f"{count} in force · times in UTC · e ends the highlighted"]
        if silence is not None:
            lines.append(f"{escape(str(silence.get('id')))}: {escape(' '.join(silence.get('matchers') or ()))}"
                         f" · from {escape(str(silence.get('starts_at') or '-')[:16])}"
                         f" to {escape(str(silence.get('ends_at') or '-')[:16])}"
                         f" · {escape(str(silence.get('comment') or ''))}")
        self.query_one("#silences-note", Static).update("\n".join(lines))

    @property
    def selected(self) -> dict[str, Any] | None:
        table = self.query_one("#silences", DataTable)
        if not table.row_count or self.silences is None:
            return None
        try:
            key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None
        return next((s for s in self.silences if str(s.get("id")) == key), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if action == "unsilence" and allowed and self.selected is None:
            return None
        return allowed

    def why_not(self, action: str) -> str:
        return "no silence highlighted" if self.selected is None else super().why_not(action)

    def action_unsilence(self) -> None:
        silence = self.selected
        if silence is not None:
            self.opsctl.open_action(silence_end(silence))


TABS = ("registry", "sla", "canary", "drift", "retrain", "history")


class ModelScreen(OpsScreen):
    """One model: registry (versions, lineage), SLA checks with trends, canary, drift, retrain runs, history."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "rollback", "Rollback"),
        Binding("c", "canary_start", "Canary", tooltip="start a canary of the highlighted version"),
        Binding("p", "canary_start", "Promote", show=False, tooltip="through a canary (the safe path)"),
        Binding("P", "promote", "Promote directly", show=False, tooltip="no canary; asks for the model name"),
        Binding("z", "canary_pause", "Pause", tooltip="pause the canary"),
        Binding("u", "canary_resume", "Resume", tooltip="resume the canary"),
        Binding("x", "canary_abort", "Abort", tooltip="abort the canary"),
        Binding("g", "canary_promote", "Finish", tooltip="promote the canary now"),
        Binding("t", "retrain", "Retrain", show=False),
        Binding("y", "retrain_approve", "Approve", tooltip="approve the retrain run awaiting approval"),
        Binding("n", "retrain_reject", "Reject", tooltip="reject the retrain run awaiting approval"),
        Binding("j", "app.simulate_key('down')", "Down", show=False),
        Binding("k", "app.simulate_key('up')", "Up", show=False),
        *(Binding(str(i), f"tab('{name}')", name, show=False) for i, name in enumerate(TABS, start=1)),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]
    HELP_NOTES = ("1-6 switch tabs: registry, SLA, canary, drift, retrain, history.\n"
                  "r rolls back to the previous production version (or aborts a running canary);\n"
                  "c (or p) starts a canary of the highlighted version; P promotes it directly (no\n"
                  "canary; asks for the model name); z/u pause/resume the canary, x aborts it,\n"
                  "g promotes it now (x and g ask for the model name); t retrains; y approves\n"
                  "the retrain run awaiting approval (its canary starts), n rejects it (no canary).")

    def __init__(self, model: str) -> None:
        super().__init__(id=f"model-{abs(hash(model))}", classes="model-screen")
        self.model = model
        self.ready = False
        self.versions: list[ModelVersion] = []
        self.history: list[dict[str, Any]] = []
        self.drift: dict[str, Any] | None = None
        self.drift_history: list[dict[str, Any]] = []
        self.performance: dict[str, Any] | None = None
        self.runs: list[dict[str, Any]] | None = None
        self.log_run: str | None = None
        self.log_lines = 0

    def compose(self) -> ComposeResult:
        yield from self.chrome()
        yield Static("", id="model-title")
        with TabbedContent(id="tabs", initial="registry"):
            with TabPane("1 registry", id="registry"), Horizontal(id="reg-body"):
                with Panel(id="versions-panel", classes="panel"):
                    table: DataTable[Any] = DataTable(id="versions", cursor_type="row")
                    for key in ("version", "status", "created", "metrics", "parent"):
                        table.add_column(key, key=key)
                    yield table
                with Panel(id="version-panel", classes="panel"), VerticalScroll():
                    yield Static("[dim]loading versions…[/]", id="version-detail")
            with TabPane("2 SLA", id="sla"), Panel(id="sla-panel", classes="panel"), VerticalScroll():
                with Horizontal(id="sparks"):
                    for name, label in TRENDS:
                        with Vertical(classes="spark-box"):
                            yield Static(label, id=f"spark-label-{name}", classes="spark-label")
                            yield Static("", id=f"spark-{name}", classes="spark")
                yield Static("", id="sla-detail")
            with TabPane("3 canary", id="canary"), Panel(id="canary-panel", classes="panel"), VerticalScroll():
                yield Static("", id="canary-detail")
            with TabPane("4 drift", id="drift"), Panel(id="drift-panel", classes="panel"), VerticalScroll():
                yield Static(f"[dim]{escape('loading…')}[/]", id="drift-detail")
            with TabPane("5 retrain", id="retrain"), Panel(id="retrain-panel", classes="panel"):
                yield Static("", id="runs")
                yield Log(id="retrain-log", max_lines=2000)
            with TabPane("6 history", id="history"), Panel(id="model-panels", classes="panel"), VerticalScroll():
                yield Static("", id="model-state")
        yield Footer(compact=True)  # one space between keys: a screen's keys fit 80 columns

    def on_mount(self) -> None:
        self.ready = True
        self.query_one("#versions-panel").border_title = "versions"
        self.query_one("#version-panel").border_title = "version"
        self.query_one("#model-panels").border_title = "state and history"
        self.query_one("#sla-panel").border_title = "SLA checks"
        self.query_one("#canary-panel").border_title = "canary"
        self.query_one("#drift-panel").border_title = "drift and performance"
        self.query_one("#retrain-panel").border_title = "retrain runs and logs"
        self.query_one("#versions", DataTable).focus()
        self.show_state()
        self.reload()

    def on_unmount(self) -> None:
        self.ready = False  # the clock ticks and documents arrive while the app quits

    def action_tab(self, name: str) -> None:
        self.query_one("#tabs", TabbedContent).active = name

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # The keys go to what the tab shows: End, PgDn and arrows scroll its panel (the history's audit rows).
        pane = event.pane
        target = next(iter(pane.query("DataTable, Log, VerticalScroll")), None)
        if target is not None and target.focusable:
            target.focus()

    def reload(self) -> None:
        self.run_worker(self._load, thread=True, exclusive=True, group="registry")
        self.reload_drift()
        self.reload_runs()

    def reload_drift(self) -> None:
        self.run_worker(self._load_drift, thread=True, exclusive=True, group="drift")

    def reload_runs(self) -> None:
        self.run_worker(self._load_runs, thread=True, exclusive=True, group="runs")

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

    def _load_drift(self) -> None:
        feed = self.opsctl.feed
        drift = performance = None
        # On failure "no data yet" stays on screen; the subsystem may not run in this daemon.
        with contextlib.suppress(OpsctlError):
            drift = feed.drift(self.model, history=20)
        with contextlib.suppress(OpsctlError):
            performance = feed.performance(self.model)
        self.app.call_from_thread(self._drift_loaded, drift, performance)

    def _drift_loaded(self, drift: dict[str, Any] | None, performance: dict[str, Any] | None) -> None:
        if not self.ready:
            return
        self.drift = drift if drift is not None else self.drift
        self.performance = performance if performance is not None else self.performance
        history = list((self.drift or {}).get("history") or [])
        counts = [float(len(h.get("drifted_features") or [])) for h in reversed(history)
                  if h.get("verdict") in ("drift", "no_drift")]
        self.query_one("#drift-detail", Static).update(
            drift_detail_text(self.drift, spark_text(counts, 20)) + "\n\n" + performance_text(self.performance))

    def _load_runs(self) -> None:
        feed = self.opsctl.feed
        try:
            runs = feed.retrain_runs(self.model, limit=10)
            run = feed.retrain_run(runs[0]["id"]) if runs else None
        except OpsctlError:
            return
        self.app.call_from_thread(self._runs_loaded, runs, run)

    def _runs_loaded(self, runs: list[dict[str, Any]], run: dict[str, Any] | None) -> None:
        if not self.ready:
            return
        self.runs = runs
        waiting = self.awaiting_run
        hint = (f"\n[b]run {escape(str(waiting.get('id')))} awaits approval[/b]: y approves (canary of"
                f" {escape(str(waiting.get('candidate_version') or '?'))}), n rejects (no canary)" if waiting else "")
        # The hint first: the runs list is cut to the panel's height and the waiting run must not be.
        self.query_one("#runs", Static).update((hint.lstrip("\n") + "\n" if hint else "") + retrain_runs_text(runs))
        self.refresh_bindings()
        if run is not None:
            log = self.query_one("#retrain-log", Log)
            if run["id"] != self.log_run or int(run.get("log_lines_total") or 0) > self.log_lines:
                log.clear()
                lines = [line for line in str(run.get("logs") or "").splitlines()]
                log.write_lines(lines)
                self.log_run, self.log_lines = run["id"], int(run.get("log_lines_total") or len(lines))

    def retrain_event(self, data: dict[str, Any]) -> None:
        """A streamed log line of the run on screen goes straight to the log; anything else reloads the list."""
        if data.get("event") == "log" and data.get("run_id") == self.log_run and "line" in data:
            self.query_one("#retrain-log", Log).write_line(str(data["line"]))
            self.log_lines += 1
        elif data.get("event") == "status":
            self.reload_runs()

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
        # While the app quits, the clock ticks on after this screen's widgets are removed and before its unmount.
        if not self.ready or not self.query("#model-title"):
            return
        fleet = self.opsctl.fleet
        deployment = fleet.deployments.get(self.model, {})
        self.query_one("#model-title", Static).update(
            f"[b]{escape(self.model)}[/b]  production {escape(deployment.get('production_version') or '-')}"
            f"  previous {escape(', '.join(deployment.get('previous_versions') or []) or '-')}"
            f"  generation {deployment.get('generation', '-')}")
        history = "\n".join(escape(describe_event({"kind": "audit", "at": h.get("at"), "data": h}))
                            for h in self.history[-20:]) or "[dim]no history yet[/]"
        canary = (fleet.canaries or {}).get(self.model)
        now = self.opsctl.clock.now()
        self.query_one("#model-state", Static).update("\n".join([
            canary_text(canary, deployment, now, brief=True),
            health_text((fleet.health or {}).get(self.model)),
            alerts_text(None if fleet.alert_counts is None else fleet.alerts, self.model),
            drift_text((fleet.drift or {}).get(self.model)),
            "", "[b]history[/b]", history]))
        self.query_one("#canary-detail", Static).update(canary_text(canary, deployment, now))
        self.query_one("#sla-detail", Static).update(
            health_detail_text(None if fleet.health_detail is None else fleet.health_detail.get(self.model, []),
                               fleet.health_meta))
        for name, label in TRENDS:
            values = [v for v in fleet.trend(self.model, name) if v is not None]
            unit = TREND_UNITS[name]
            last = f"{values[-1]:.4g} {unit}" if values else "no data yet"
            self.query_one(f"#spark-label-{name}", Static).update(f"{label} {last}")
            # From zero, so a flat line reads flat; the scale is written beside it.
            spark = self.query_one(f"#spark-{name}", Static)
            spark.update(escape(spark_label(values, unit, 12)))
        self.refresh_bindings()

    @property
    def canary(self) -> dict[str, Any] | None:
        return (self.opsctl.fleet.canaries or {}).get(self.model)

    @property
    def awaiting_run(self) -> dict[str, Any] | None:
        """The newest retrain run of this model that waits for a person's approval."""
        return next((r for r in self.runs or [] if r.get("status") == "awaiting_approval"), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed is not False and action.startswith("canary_") and action != "canary_start":
            canary = self.canary
            phase = str((canary or {}).get("phase"))
            if canary is None or not canary.get("active", True) or phase not in CANARY_PHASES[action[7:]]:
                return False  # no such canary action now: hidden
        if allowed is not False and action in ("retrain_approve", "retrain_reject") and self.awaiting_run is None:
            return False
        return allowed

    def action_model(self) -> str | None:
        return self.model

    def why_not(self, action: str) -> str:
        if action.startswith("canary_") and action != "canary_start":
            canary = self.canary
            if canary is None or not canary.get("active", True):
                return f"{self.model} has no running canary (c starts one of the highlighted version)"
            return f"the canary of {self.model} is {canary.get('phase')}; {action[7:]} does not apply"
        if action in ("retrain_approve", "retrain_reject"):
            return f"no retrain run of {self.model} awaits approval"
        return super().why_not(action)

    def action_canary_pause(self) -> None:
        self.opsctl.open_action(canary_action(self.model, "pause"))

    def action_canary_resume(self) -> None:
        self.opsctl.open_action(canary_action(self.model, "resume"))

    def action_canary_abort(self) -> None:
        self.opsctl.open_action(canary_action(self.model, "abort"))

    def action_canary_promote(self) -> None:
        self.opsctl.open_action(canary_action(self.model, "promote"))

    def action_retrain(self) -> None:
        self.opsctl.open_action(retrain_action(self.model))

    def action_retrain_approve(self) -> None:
        run = self.awaiting_run
        if run is not None:
            self.opsctl.open_action(retrain_decision(self.model, run, approve=True))

    def action_retrain_reject(self) -> None:
        run = self.awaiting_run
        if run is not None:
            self.opsctl.open_action(retrain_decision(self.model, run, approve=False))

    def action_rollback(self) -> None:
        self.opsctl.open_change("rollback", self.model)

    def action_canary_start(self) -> None:
        version = self.highlighted
        production = self.opsctl.fleet.deployments.get(self.model, {}).get("production_version")
        if not version:
            return
        if version == production:
            self.notify(f"{version} is already in production; highlight another version", severity="warning")
            return
        self.opsctl.open_action(canary_start_action(self.model, version))

    def action_promote(self) -> None:
        version = self.highlighted
        if version:
            self.opsctl.open_change("promote", self.model, version)
