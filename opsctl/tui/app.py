"""The opsctl TUI: the on-call cockpit in a terminal.

The app owns the view state (:class:`~opsctl.tui.model.Fleet`) and the feed; the
feed's loops run in thread workers and post messages here, so the UI thread
never waits on the daemon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.events import Resize
from textual.screen import Screen

from opsctl.clock import Clock, SystemClock
from opsctl.demo.faults import FAULT_KINDS
from opsctl.domain import ChangeResult, VersionStatus
from opsctl.errors import OpsctlError
from opsctl.tui.actions import Action, canary_action, canary_start_action, retrain_action
from opsctl.tui.breakglass import BreakGlass, BreakGlassResult
from opsctl.tui.checklist import ChecklistScreen, ChecklistSource
from opsctl.tui.dialogs import (
    ActionDialog,
    BreakGlassDialog,
    CanaryStartDialog,
    ChangeDialog,
    HelpScreen,
    TooSmallScreen,
)
from opsctl.tui.doctor import DoctorScreen, DoctorSource
from opsctl.tui.feed import Connection, EventArrived, Feed, StatusArrived
from opsctl.tui.gameday import GameDay
from opsctl.tui.model import CANARY_COMMANDS, CANARY_PHASES, Fleet, age_text
from opsctl.tui.screens import (
    WIDE_AT,
    AlertsScreen,
    Banner,
    ContextBar,
    ModelScreen,
    OverviewScreen,
    Panel,
    SilencesScreen,
)

MIN_SIZE = (80, 24)


class OpsctlCommands(Provider):
    """The `:` palette: jump to a model, run an action on it, refresh, help."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: OpsctlApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], Any], str]] = []
        for model in app.fleet.models:
            commands.append((f"open {model}", partial(app.open_model, model), "registry, panels and history"))
            if not app.read_only:
                commands.append((f"rollback {model}", partial(app.open_change, "rollback", model),
                                 "roll back to the previous production version (asks first)"))
                canary = app.fleet.deployments[model].get("canary_version")
                if canary:
                    commands.append((f"promote {model} {canary}", partial(app.open_change, "promote", model, canary),
                                     "promote the canary to production (asks first)"))
                live = (app.fleet.canaries or {}).get(model)
                if live and live.get("active", True):
                    for command in CANARY_COMMANDS:
                        if str(live.get("phase")) in CANARY_PHASES[command]:
                            commands.append((f"{command} canary {model}",
                                             partial(app.open_action, canary_action(model, command)),
                                             f"canary {command} (asks for a reason)"))
                screen = next((s for s in app.screen_stack if isinstance(s, ModelScreen) and s.model == model), None)
                production = app.fleet.deployments[model].get("production_version")
                for version in [v.version for v in (screen.versions if screen else [])]:
                    if version != production:
                        commands.append((f"canary start {model} {version}",
                                         partial(app.open_action, canary_start_action(model, version)),
                                         "start a canary of this version (asks for a reason)"))
                commands.append((f"canary {model}", partial(app.open_canary_candidate, model),
                                 "start a canary of its newest registered version (asks; --set overrides)"))
                commands.append((f"retrain {model}", partial(app.open_action, retrain_action(model)),
                                 "train a candidate; a better one goes through a canary (asks for a reason)"))
        if not app.read_only and app.gameday is not None:
            for model in app.gameday_models:
                for kind in FAULT_KINDS:
                    commands.append((f"game day: inject {kind} into {model}",
                                     partial(app.game_day, "inject", model, kind), "demo fleet fault (practice)"))
                commands.append((f"game day: clear faults of {model}", partial(app.game_day, "clear", model, None),
                                 "demo fleet: back to normal"))
        under = next((s for s in reversed(app.screen_stack) if not isinstance(s, CommandPalette)), None)
        selected = app.overview.selected if under is app.overview else None
        if selected and not app.read_only:
            # First: what an on-call types on the overview, for the highlighted model.
            commands.insert(0, ("canary", partial(app.open_canary_candidate, selected),
                                f"start a canary of {selected}'s newest registered version (asks; --set overrides)"))
        commands.append(("alerts", app.open_alerts, "firing, pending and resolved alerts; ack and silence"))
        commands.append(("silences", app.open_silences, "silences in force; end one"))
        commands.append(("checklist", app.open_checklist, "the production checklist: status, evidence, fix"))
        commands.append(("doctor", app.open_doctor, "every integration checked live: what is wrong, how to fix"))
        commands.append(("refresh", app.feed.refresh, "fetch the daemon's status now"))
        commands.append(("help", app.action_help, "keys for the current screen"))
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class OpsctlApp(App[None]):
    """``opsctl`` with no arguments."""

    CSS_PATH = Path(__file__).with_name("styles.tcss")
    TITLE = "opsctl"
    COMMANDS: ClassVar[set[Any]] = {OpsctlCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_palette", "Cmds", tooltip="the command palette: any action by name"),
    ]

    def __init__(self, feed: Feed, *, environment: str = "production", production: bool = True,
                 read_only: bool = False, clock: Clock | None = None, stale_seconds: float = 60.0,
                 animate: bool = True, gameday: GameDay | None = None,
                 daemon_start_command: str = "sudo systemctl start opsctl",
                 break_glass: BreakGlass | None = None, checklist: ChecklistSource | None = None,
                 doctor: DoctorSource | None = None) -> None:
        super().__init__()
        self.break_glass = break_glass
        self.checklist_source = checklist
        self.doctor_source = doctor
        self.daemon_start_command = daemon_start_command
        self.gameday = gameday
        self.gameday_models: list[str] = []
        self.feed = feed
        self.environment = environment
        self.production = production
        self.read_only = read_only
        self.clock = clock or SystemClock()
        self.stale_seconds = stale_seconds
        self.fleet = Fleet()
        self.connected = False
        self.ever_connected = False
        self.connection_error = ""
        self.retry_at: datetime | None = None  # when the feed tries the daemon again (counts down on the banner)
        self.overview = OverviewScreen()
        self.first_status = False
        self.log_lines: list[str] = []
        if not animate:
            self.animation_level = "none"

    def get_default_screen(self) -> Screen[Any]:
        return self.overview

    def on_mount(self) -> None:
        self.set_class(self.production, "-production")
        self.set_class(self.read_only, "-read-only")
        self.run_worker(partial(self.feed.run_events, self.post_message), thread=True, group="feed",
                        name="events", exit_on_error=False)
        self.run_worker(partial(self.feed.run_status, self.post_message), thread=True, group="feed",
                        name="status", exit_on_error=False)
        self.feed.refresh()
        self.set_interval(1.0, self.tick)
        self.update_chrome()
        if self.gameday is not None:
            self.run_worker(self._gameday_models, thread=True, group="gameday", exit_on_error=False)

    def _gameday_models(self) -> None:
        assert self.gameday is not None
        models = self.gameday.models()
        self.call_from_thread(setattr, self, "gameday_models", models)

    def on_unmount(self) -> None:
        self.feed.stop()

    async def action_quit(self) -> None:
        self.feed.stop()
        self.exit()

    # -- messages from the feed ------------------------------------------------------------------

    def on_status_arrived(self, message: StatusArrived) -> None:
        fleet = self.fleet
        fleet.apply_alerts(message.alerts)
        fleet.apply_health(message.health)
        if isinstance(message.document.get("demo"), dict) and self.gameday is None:
            root = message.document["demo"].get("state_dir")
            self.gameday = GameDay.detect([root]) if root else None
        feed_before = fleet.feed_version
        added, changed, removed = fleet.apply_status(message.document, message.at)
        fleet.apply_history(message.history)
        self.first_status = True
        self.overview.apply_rows(added, changed, removed)
        self.overview.show_detail()  # one widget: the selected model's health, alerts or canary may have moved
        if fleet.feed_version != feed_before:
            self.overview.show_feed()
        for screen in self._model_screens():
            screen.show_state()
        for alerts in self._screens(AlertsScreen):
            alerts.show_alerts()
        self.update_chrome()

    def on_event_arrived(self, message: EventArrived) -> None:
        kind = message.kind
        data = message.event.get("data") or {}
        fleet = self.fleet
        feed_before = fleet.feed_version
        fleet.apply_event(kind, message.event, message.at)
        touched: set[str] = set()
        if kind == "deployment" and isinstance(data.get("model"), str):
            fleet.apply_deployment(data, message.at)
            touched.add(data["model"])
        elif kind == "canary":
            model = fleet.apply_canary(data)
            touched |= {model} if model else set()
        elif kind == "drift":
            model = fleet.apply_drift_event(data)
            touched |= {model} if model else set()
        elif kind == "alert":
            touched |= fleet.apply_alert_event(data)
            for alerts in self._screens(AlertsScreen):
                alerts.show_alerts()
        elif kind == "silence":
            for silences in self._screens(SilencesScreen):
                silences.reload()
        if touched:
            added, changed = fleet.diff(touched & set(fleet.deployments))
            self.overview.apply_rows(added, changed, set())
            if self.overview.selected in touched:
                self.overview.show_detail()
        if fleet.feed_version != feed_before:
            self.overview.show_feed()
        model = data.get("model")
        for screen in self._model_screens():
            if screen.model != model:
                continue
            if kind == "retrain":
                screen.retrain_event(data)
                continue
            screen.show_state()
            if kind in ("audit", "deployment"):
                screen.reload()
            elif kind in ("drift", "performance"):
                screen.reload_drift()
        self.update_chrome()

    def on_connection(self, message: Connection) -> None:
        changed = message.up != self.connected
        self.connected = message.up
        self.connection_error = message.error
        self.retry_at = (None if message.retry_in is None
                         else self.clock.now() + timedelta(seconds=message.retry_in))
        if message.up:
            self.ever_connected = True
        if changed:
            for screen in self.screen_stack:
                screen.refresh_bindings()
                if isinstance(screen, ChangeDialog | ActionDialog | BreakGlassDialog):
                    screen.connectivity_changed()
        self.update_chrome()

    def _model_screens(self) -> list[ModelScreen]:
        return [s for s in self.screen_stack if isinstance(s, ModelScreen)]

    def _screens(self, kind: type[Any]) -> list[Any]:
        return [s for s in self.screen_stack if isinstance(s, kind)]

    # -- chrome: context bar, banner, ages ---------------------------------------------------------

    def tick(self) -> None:
        """Every second: ages and relative times keep counting even when no document arrives."""
        self.update_chrome()
        if self.first_status:
            self.overview.show_detail()  # skips the repaint when its text did not change
            top = self.screen
            if isinstance(top, ModelScreen):
                top.show_state()

    def data_age(self) -> float | None:
        updated = self.fleet.updated_at
        return None if updated is None else (self.clock.now() - updated).total_seconds()

    def stale(self) -> bool:
        age = self.data_age()
        return not self.connected or age is None or age > self.stale_seconds

    def update_chrome(self) -> None:
        """Context bar, banner and panel ages on every screen in the stack (a handful of widgets)."""
        age = self.data_age()
        status_age = (None if self.fleet.status_at is None
                      else (self.clock.now() - self.fleet.status_at).total_seconds())
        daemon = self.fleet.daemon
        state = (f"daemon up {escape(str(daemon.get('version', '')))}".rstrip() if self.connected
                 else "[b]daemon DOWN[/b]" if self.ever_connected or self.connection_error else "connecting…")
        env = f"[b]{escape(self.environment.upper() if self.production else self.environment)}[/b]"
        parts = [" opsctl", env, state, f"{len(self.fleet.deployments)} models"]
        if self.read_only:
            parts.append("[b]READ-ONLY[/b]")
        context = " · ".join(parts)
        if self.connected or self.connection_error == "":
            banner = ""
        else:
            retry = ""
            if self.retry_at is not None:
                left = (self.retry_at - self.clock.now()).total_seconds()
                retry = f" · retry in {max(1, math.ceil(left))}s" if left > 0 else " · retrying now…"
            kept = f"last data {age_text(age)} old" if age is not None else "no data yet"
            # Losing the daemon is what break-glass is for: say what still works and how it comes back.
            glass = ("r rolls back on the registry directly (break-glass, as `opsctl rollback MODEL`)"
                     if self.break_glass is not None and not self.read_only else
                     "break-glass still works: `opsctl rollback MODEL` in a shell moves traffic without the daemon"
                     " and says so")
            banner = (f" DAEMON UNREACHABLE · {kept}{retry} · other actions disabled here\n"
                      f" {glass} · bring it back: `{escape(self.daemon_start_command)}`")
        stale = self.stale()
        for screen in self.screen_stack:
            for bar in screen.query(ContextBar):
                bar.update(context)
            for widget in screen.query(Banner):
                widget.update(banner)
                widget.set_class(not banner, "hidden")
            for panel in screen.query(Panel):
                panel.set_class(stale and self.first_status, "-stale")
                suffix = " · stale" if stale and self.first_status else ""
                if panel.id == "model-panels":
                    panel.border_subtitle = f"status {age_text(status_age)} ago{suffix}"
                elif panel.id in ("models-panel", "detail-panel", "feed-panel"):
                    panel.border_subtitle = f"updated {age_text(age)} ago{suffix}"

    def on_resize(self, event: Resize) -> None:
        # Every screen in the stack, not only the top one: a screen under a pushed one must come back laid
        # out for the size the terminal has then, not the size it had when it was covered.
        wide = event.size.width >= WIDE_AT
        for screen in self.screen_stack:
            screen.set_class(wide, "-wide")
        too_small = event.size.width < MIN_SIZE[0] or event.size.height < MIN_SIZE[1]
        top = self.screen
        if too_small:
            if isinstance(top, TooSmallScreen):
                top.resized(event.size)
            else:
                self.push_screen(TooSmallScreen(event.size, MIN_SIZE))
        elif isinstance(top, TooSmallScreen):
            self.pop_screen()

    # -- navigation and actions ---------------------------------------------------------------------

    def open_model(self, model: str) -> None:
        self.overview.select(model)
        while len(self.screen_stack) > 1 and isinstance(self.screen, ModelScreen | HelpScreen | AlertsScreen
                                                                       | SilencesScreen):
            self.pop_screen()
        self.push_screen(ModelScreen(model))

    def open_alerts(self) -> None:
        while len(self.screen_stack) > 1 and isinstance(self.screen, ModelScreen | HelpScreen | AlertsScreen
                                                                       | SilencesScreen):
            self.pop_screen()
        self.push_screen(AlertsScreen())

    def open_silences(self) -> None:
        while len(self.screen_stack) > 1 and isinstance(self.screen, HelpScreen | SilencesScreen):
            self.pop_screen()
        self.push_screen(SilencesScreen())

    def open_checklist(self) -> None:
        """The production checklist screen (evaluated by the source the app was given)."""
        if self.checklist_source is None:
            self.notify("no checklist source: run `opsctl checklist` in a shell", severity="warning")
            return
        if not isinstance(self.screen, ChecklistScreen):
            self.push_screen(ChecklistScreen(self.checklist_source))

    def open_doctor(self) -> None:
        """The doctor screen: every integration checked live (by the source the app was given)."""
        if self.doctor_source is None:
            self.notify("no doctor source: run `opsctl doctor` in a shell", severity="warning")
            return
        if not isinstance(self.screen, DoctorScreen):
            self.push_screen(DoctorScreen(self.doctor_source))

    def open_action(self, action: Action) -> None:
        if self.read_only:
            self.notify("read-only mode: no actions", severity="warning")
            return
        if not self.connected:
            self.notify("the daemon is unreachable; actions are disabled", severity="error")
            return
        dialog = CanaryStartDialog(action) if action.name == "canary.start" else ActionDialog(action)
        self.push_screen(dialog, callback=self._action_done)

    def open_canary_candidate(self, model: str) -> None:
        """Start a canary of the model's candidate: its newest version not yet in production nor archived."""
        self.run_worker(partial(self._canary_candidate, model), thread=True, group="candidate", exit_on_error=False)

    def _canary_candidate(self, model: str) -> None:
        try:
            versions = self.feed.versions(model)
        except OpsctlError as error:
            self.call_from_thread(self.notify, f"canary {model}: {error}", severity="error")
            return
        waiting = (VersionStatus.REGISTERED, VersionStatus.STAGING)
        candidates = sorted((v for v in versions if v.status in waiting), key=lambda v: v.created_at)
        if not candidates:
            self.call_from_thread(self.notify, f"canary {model}: nothing done, no registered version waits for a"
                                  " canary (register one with `opsctl register`)", severity="warning")
            return
        self.call_from_thread(self.open_action, canary_start_action(model, candidates[-1].version))

    def _action_done(self, result: tuple[Action, Any] | None) -> None:
        if result is None:
            return
        action, answer = result
        detail = ""
        if isinstance(answer, dict):
            detail = str(answer.get("phase") or answer.get("state") or answer.get("verdict") or answer.get("id") or "")
        line = f"{action.name} {action.model or ''}: done {detail}".rstrip()
        self.log_lines.append(line)
        self.notify(line, title="done", timeout=8)
        if action.name.startswith("canary.") and isinstance(answer, dict):
            self.fleet.apply_canary(answer)
            for screen in self._model_screens():
                screen.show_state()
        if action.name.startswith("retrain."):
            for screen in self._model_screens():
                screen.reload_runs()
        if action.name in ("alert.silence", "alert.unsilence"):
            for silences in self._screens(SilencesScreen):
                silences.reload()
        self.feed.refresh()

    def game_day(self, verb: str, model: str, kind: str | None) -> None:
        if self.read_only or self.gameday is None:
            return
        self.run_worker(partial(self._game_day, verb, model, kind), thread=True, group="gameday",
                        exit_on_error=False)

    def _game_day(self, verb: str, model: str, kind: str | None) -> None:
        assert self.gameday is not None
        try:
            line = self.gameday.inject(model, kind or "") if verb == "inject" else self.gameday.clear(model)
        except OpsctlError as error:
            self.call_from_thread(self.notify, str(error), title="game day", severity="error")
            return
        self.log_lines.append(line)
        self.call_from_thread(self.notify, line, title="game day", timeout=8)

    def open_change(self, action: str, model: str, version: str | None = None) -> None:
        if self.read_only:
            self.notify("read-only mode: no actions", severity="warning")
            return
        if not self.connected:
            if action == "rollback" and version is None and self.break_glass is not None:
                self.open_break_glass(model)
                return
            self.notify("the daemon is unreachable; actions are disabled", severity="error")
            return
        self.push_screen(ChangeDialog(action, model, version), callback=self._change_done)

    def open_break_glass(self, model: str) -> None:
        """The CLI's direct rollback (daemon down) behind the typed-name confirmation."""
        if self.read_only or self.break_glass is None:
            return
        self.push_screen(BreakGlassDialog(self.break_glass, model), callback=self._break_glass_done)

    def _break_glass_done(self, outcome: BreakGlassResult | None) -> None:
        if outcome is None:
            return
        line = " · ".join(outcome.lines())
        self.log_lines.append(line)
        good = outcome.report.reached_traffic and (outcome.verification is None or outcome.verification.moved)
        self.notify(line, title="break-glass rollback" if good else "break-glass: traffic NOT confirmed",
                    severity="information" if good else "error", timeout=15)

    def _change_done(self, result: ChangeResult | None) -> None:
        if result is None:
            return
        from opsctl.change_report import report_change

        # The TUI changes production only through the daemon; "done" only once traffic followed.
        report = report_change(result, daemon_up=True, start_command=self.daemon_start_command)
        line = (f"{result.action} {result.model}: {result.from_version or '-'} -> {result.to_version or '-'}"
                f" ({result.outcome.value}, audit #{result.audit_id})")
        if report.traffic is not None and report.reached_traffic:
            line += f"; traffic: {report.traffic.detail}"
        elif len(report.lines) > 1:
            line += f"; {report.lines[1]}"
        self.log_lines.append(line)
        if report.reached_traffic:
            self.notify(line, title="done", timeout=8)
        else:
            self.notify(line, title="traffic NOT changed", severity="error", timeout=15)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        rows = []
        seen = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            # The screen's and the app's own keys, plus any a widget shows in the footer (not cursor keys).
            own = active.node is screen or active.node is self
            if not binding.description or binding.description in seen or not (own or binding.show):
                continue
            seen.add(binding.description)
            rows.append((binding.key_display or self.get_key_display(binding), binding.description, active.enabled))
        notes = getattr(screen, "HELP_NOTES", "")
        if self.read_only:
            notes = (notes + "\n" if notes else "") + "Read-only mode: no action is offered."
        title = ("overview" if isinstance(screen, OverviewScreen) else "alerts" if isinstance(screen, AlertsScreen)
                 else "silences" if isinstance(screen, SilencesScreen) else getattr(screen, "model", "screen"))
        self.push_screen(HelpScreen(str(title), rows, notes))
