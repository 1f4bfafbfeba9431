"""Modal screens: the rollback/promote confirmation, help for the current screen, too-small terminal."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rich.markup import escape
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from opsctl.domain import ChangePlan, ChangeResult
from opsctl.errors import OpsctlError, UsageError
from opsctl.tui.actions import Action
from opsctl.tui.breakglass import BreakGlass, BreakGlassResult
from opsctl.tui.panels import cli_command

if TYPE_CHECKING:
    from opsctl.tui.host import Host

TITLES = {"rollback": "Roll back", "promote": "Promote"}

R = TypeVar("R")


class _ConfirmDialog(ModalScreen[R]):
    """What every confirmation shares: a required reason, the model name typed out when ``confirm_name``
    is set, focus starting on Cancel, the equivalent CLI command, and the change run in a worker."""

    AUTO_FOCUS = "#cancel"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    HINTS: ClassVar[dict[str, str]] = {}

    def __init__(self, confirm_name: str | None) -> None:
        super().__init__(classes="dialog-screen")
        self.confirm_name = confirm_name
        self.busy = False

    @property
    def opsctl(self) -> Host:
        return self.app  # type: ignore[return-value]

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.query_one("#hint", Static).update(f"[dim]{self.HINTS.get(event.widget.id or '', '')}[/]")

    @property
    def reason(self) -> str:
        return self.query_one("#reason", Input).value.strip()

    def _show_command(self) -> None:
        raise NotImplementedError

    def _blocked(self) -> str | None:
        """A subclass's own reason to refuse Confirm (e.g. no plan yet), or None."""
        return None

    def _perform(self) -> None:
        raise NotImplementedError

    def _connectivity_problem(self) -> str | None:
        return None if self.opsctl.connected else "the daemon is unreachable; actions are disabled"

    def problem(self) -> str | None:
        """Why Confirm is not allowed yet, or None."""
        connectivity = self._connectivity_problem()
        if connectivity is not None:
            return connectivity
        if self.opsctl.read_only:
            return "read-only mode"
        blocked = self._blocked()
        if blocked is not None:
            return blocked
        if not self.reason:
            return "a reason is required"
        if self.confirm_name and self.query_one("#confirm-name", Input).value.strip() != self.confirm_name:
            return f"type {self.confirm_name!r} exactly to confirm"
        return None

    def _validate(self) -> None:
        self.query_one("#confirm", Button).disabled = self.busy or self.problem() is not None

    def connectivity_changed(self) -> None:
        self._validate()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_command()
        self.query_one("#error", Static).update("")
        self._validate()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "reason" and self.confirm_name:
            self.query_one("#confirm-name", Input).focus()
        else:
            self._try_confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._try_confirm()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _try_confirm(self) -> None:
        if self.busy:
            return
        problem = self.problem()
        if problem is not None:
            self.query_one("#error", Static).update(f"[red]refused: {escape(problem)}; nothing was changed[/]")
            return
        self.busy = True
        self._validate()
        self.query_one("#error", Static).update("working…")
        self.run_worker(self._perform, thread=True, exclusive=True, group="confirm")

    def _failed(self, message: str) -> None:
        self.busy = False
        self.query_one("#error", Static).update(f"[red]failed: {escape(message)}[/]")
        self._validate()


class ChangeDialog(_ConfirmDialog[ChangeResult | None]):
    """Confirm a production change: a reason, the model name typed out, focus on Cancel, the CLI equivalent."""

    HINTS: ClassVar[dict[str, str]] = {
        "cancel": "Enter on Cancel closes; Tab to write the reason",
        "reason": "Enter or Tab: next, the model name",
        "confirm-name": "Enter confirms when the name matches; Escape cancels",
        "confirm": "Enter performs the change",
    }

    def __init__(self, action: str, model: str, version: str | None = None) -> None:
        super().__init__(confirm_name=model)
        self.action = action
        self.model = model
        self.version = version
        self.plan: ChangePlan | None = None

    def compose(self) -> ComposeResult:
        target = f" to {self.version}" if self.version else ""
        with Vertical(id="dialog"):
            yield Static(f"[b]{TITLES[self.action]} {escape(self.model)}{escape(target)}[/b]", id="dialog-title")
            yield Static("asking the daemon for the plan…", id="plan")
            yield Label("Reason (recorded in the audit log):")
            yield Input(placeholder="why, e.g. p95 latency over SLA since 14:02", id="reason")
            yield Label(f"Type the model name to confirm: [b]{escape(self.model)}[/b]")
            yield Input(placeholder=self.model, id="confirm-name")
            yield Static("", id="command")
            yield Static("", id="hint")
            yield Static("", id="error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary", compact=True)
                yield Button(TITLES[self.action], id="confirm", variant="error", disabled=True, compact=True)

    def on_mount(self) -> None:
        self._show_command()
        self.run_worker(self._load_plan, thread=True, exclusive=True, group="plan")

    def _load_plan(self) -> None:
        try:
            plan = self.opsctl.feed.plan(self.action, self.model, self.version)
        except OpsctlError as error:
            self.app.call_from_thread(self._plan_failed, str(error))
            return
        self.app.call_from_thread(self._plan_loaded, plan)

    def _plan_loaded(self, plan: ChangePlan) -> None:
        self.plan = plan
        versions = f"{plan.from_version or '-'} -> {plan.to_version or '-'}"
        aborts = f"\n[b]aborts the canary {escape(plan.aborts_canary)}[/b]" if plan.aborts_canary else ""
        noop = "\n[yellow]nothing to do (already so)[/]" if plan.noop else ""
        self.query_one("#plan", Static).update(
            f"{escape(plan.description)}\n{escape(versions)}  (generation {plan.generation}){aborts}{noop}")
        self._validate()

    def _plan_failed(self, message: str) -> None:
        self.query_one("#plan", Static).update(f"[red]cannot plan: {escape(message)}[/]")
        self._validate()

    @property
    def typed_name(self) -> str:
        return self.query_one("#confirm-name", Input).value.strip()

    def _show_command(self) -> None:
        command = cli_command(self.action, self.model, self.version, self.reason or "...")
        self.query_one("#command", Static).update(f"CLI: [b]{escape(command)}[/b]")

    def _blocked(self) -> str | None:
        return "no plan from the daemon yet" if self.plan is None else None

    def _perform(self) -> None:
        assert self.plan is not None
        try:
            result = self.opsctl.feed.change(self.action, self.model, self.version, reason=self.reason,
                                             expected_generation=self.plan.generation)
        except OpsctlError as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self.dismiss, result)


class ActionDialog(_ConfirmDialog[tuple[Action, Any] | None]):
    """Confirm an audited action (ack, silence, canary command, retrain): a reason, focus on Cancel, the CLI
    equivalent; the dangerous ones (canary abort and promote) also want the model name typed out."""

    HINTS: ClassVar[dict[str, str]] = {
        "cancel": "Enter on Cancel closes; Tab to write the reason",
        "reason": "Enter: next",
        "confirm-name": "Enter confirms when the name matches; Escape cancels",
        "confirm": "Enter performs the action",
    }

    def __init__(self, action: Action) -> None:
        super().__init__(confirm_name=action.model if action.confirm_name and action.model else None)
        self.action_ = action

    def compose(self) -> ComposeResult:
        action = self.action_
        with Vertical(id="dialog"):
            yield Static(f"[b]{escape(action.title)}[/b]", id="dialog-title")
            yield Static(escape(action.effect), id="plan")
            yield Label("Reason (recorded in the audit log):")
            yield Input(placeholder="why, e.g. known issue, fix deploying", id="reason")
            yield from self.extra_inputs()
            if self.confirm_name:
                yield Label(f"Type the model name to confirm: [b]{escape(self.confirm_name)}[/b]")
                yield Input(placeholder=self.confirm_name, id="confirm-name")
            yield Static("", id="command")
            yield Static("", id="hint")
            yield Static("", id="error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary", compact=True)
                yield Button(action.name.split(".")[-1].capitalize(), id="confirm", variant="error", disabled=True,
                             compact=True)

    def extra_inputs(self) -> ComposeResult:
        """Fields a kind of action adds after the reason (none by default)."""
        yield from ()

    def on_mount(self) -> None:
        self._show_command()
        self._validate()

    def prepared(self) -> Action:
        """The action as it will be sent (a subclass adds what its extra fields say)."""
        return self.action_

    def _show_command(self) -> None:
        command = self.prepared().command(self.reason or "...")
        self.query_one("#command", Static).update(f"CLI: [b]{escape(command)}[/b]")

    def _perform(self) -> None:
        action = self.prepared()
        try:
            answer = self.opsctl.feed.act(action, self.reason)
        except OpsctlError as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self.dismiss, (action, answer))


class BreakGlassDialog(_ConfirmDialog[BreakGlassResult | None]):
    """Roll back with the daemon down, as `opsctl rollback MODEL` does: on the registry directly, then the honest
    result (the registry change, whether traffic followed, what the traffic check measured) stays on screen."""

    HINTS: ClassVar[dict[str, str]] = {
        "cancel": "Enter on Cancel closes; Tab to write the reason",
        "reason": "Enter or Tab: next, the model name",
        "confirm-name": "Enter confirms when the name matches; Escape cancels",
        "confirm": "Enter rolls back on the registry directly",
    }

    def __init__(self, break_glass: BreakGlass, model: str) -> None:
        super().__init__(confirm_name=model)
        self.break_glass = break_glass
        self.model = model
        self.plan: ChangePlan | None = None
        self.outcome: BreakGlassResult | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]Break-glass rollback of {escape(self.model)}[/b] (daemon unreachable)",
                         id="dialog-title")
            yield Static("reading the registry for the plan…", id="plan")
            yield Label("Reason (recorded in the audit log):")
            yield Input(placeholder="why, e.g. daemon down and 1.1.0 failing", id="reason")
            yield Label(f"Type the model name to confirm: [b]{escape(self.model)}[/b]")
            yield Input(placeholder=self.model, id="confirm-name")
            yield Static("", id="command")
            yield Static("", id="hint")
            yield Static("", id="error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary", compact=True)
                yield Button("Roll back", id="confirm", variant="error", disabled=True, compact=True)

    def on_mount(self) -> None:
        self._show_command()
        self.run_worker(self._load_plan, thread=True, exclusive=True, group="plan")

    def _load_plan(self) -> None:
        try:
            plan = self.break_glass.plan(self.model)
        except OpsctlError as error:
            self.app.call_from_thread(self._plan_failed, str(error))
            return
        self.app.call_from_thread(self._plan_loaded, plan)

    def _plan_loaded(self, plan: ChangePlan) -> None:
        self.plan = plan
        versions = f"{plan.from_version or '-'} -> {plan.to_version or '-'}"
        aborts = f"\n[b]aborts the canary {escape(plan.aborts_canary)}[/b]" if plan.aborts_canary else ""
        noop = "\n[yellow]nothing to do (already so)[/]" if plan.noop else ""
        self.query_one("#plan", Static).update(
            f"{escape(plan.description)}\n{escape(versions)}  (generation {plan.generation}){aborts}{noop}\n"
            "[dim]directly on the registry file, as `opsctl rollback` does without the daemon[/]")
        self._validate()

    def _plan_failed(self, message: str) -> None:
        self.query_one("#plan", Static).update(f"[red]cannot plan on the registry: {escape(message)}[/]")
        self._validate()

    def _show_command(self) -> None:
        command = self.break_glass.command(self.model, self.reason or "...")
        self.query_one("#command", Static).update(f"CLI: [b]{escape(command)}[/b]")

    def _connectivity_problem(self) -> str | None:
        if self.opsctl.connected:
            return "the daemon is back; close this and press r to roll back through it"
        return None

    def _blocked(self) -> str | None:
        if self.outcome is not None:
            return "done; see the result above"
        return "no plan from the registry yet" if self.plan is None else None

    def _perform(self) -> None:
        assert self.plan is not None

        def progress(text: str) -> None:
            self.app.call_from_thread(self.query_one("#error", Static).update, escape(text))

        try:
            outcome = self.break_glass.rollback(self.model, reason=self.reason,
                                                expected_generation=self.plan.generation, progress=progress)
        except OpsctlError as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self._done, outcome)

    def _done(self, outcome: BreakGlassResult) -> None:
        """The result stays on screen (it is what the on-call reads next); Cancel becomes Close."""
        self.outcome = outcome
        self.busy = False
        good = outcome.report.reached_traffic and (outcome.verification is None or outcome.verification.moved)
        colour = "green" if good else "red"
        self.query_one("#error", Static).update(
            "\n".join(f"[{colour}]{escape(line)}[/]" if i == 0 else escape(line)
                      for i, line in enumerate(outcome.lines())))
        self.query_one("#confirm", Button).display = False
        cancel = self.query_one("#cancel", Button)
        cancel.label = "Close"
        cancel.focus()
        self._validate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel" and self.outcome is not None:
            event.prevent_default()  # Textual would also run the base class's handler (dismiss with None)
            self.dismiss(self.outcome)

    def action_cancel(self) -> None:
        self.dismiss(self.outcome)


class CanaryStartDialog(ActionDialog):
    """Start a canary, with ``--set KEY=VALUE`` overrides of the ``[canary]`` policy for this canary only (the
    keys `opsctl canary start --set` takes), checked as they are typed: a bad key or value is said inline and
    Confirm stays off."""

    HINTS: ClassVar[dict[str, str]] = {
        **ActionDialog.HINTS,
        "overrides": "KEY=VALUE pairs separated by spaces; Enter starts the canary; Escape cancels",
    }

    def extra_inputs(self) -> ComposeResult:
        yield Label("Policy overrides for this canary (optional, as `--set` takes them):")
        yield Input(placeholder="e.g. stages=[10,50,100] min_stage_seconds=30", id="overrides")
        yield Static("", id="overrides-error")

    def override_pairs(self) -> list[str]:
        """The KEY=VALUE pairs typed (a leading `--set` before any of them is accepted too)."""
        import shlex

        text = self.query_one("#overrides", Input).value.strip()
        try:
            words = shlex.split(text)
        except ValueError as error:
            raise UsageError(f"overrides: {error}") from None
        return [w for w in words if w != "--set"]

    def overrides(self) -> dict[str, Any]:
        """The overrides, validated against the policy's keys and rules; UsageError says what is wrong."""
        from opsctl.core.canary.policy import CanaryPolicy, parse_overrides

        overrides = parse_overrides(self.override_pairs())
        try:
            CanaryPolicy().merged(overrides)
        except (ValueError, TypeError) as error:
            raise UsageError(f"canary policy: {error}") from None
        return overrides

    def override_problem(self) -> str | None:
        try:
            self.overrides()
        except UsageError as error:
            return str(error)
        return None

    def prepared(self) -> Action:
        try:
            pairs, overrides = self.override_pairs(), self.overrides()
        except UsageError:
            return self.action_
        if not overrides:
            return self.action_
        cli = list(self.action_.cli)
        for pair in pairs:
            cli += ["--set", pair]
        return replace(self.action_, body={**self.action_.body, "overrides": overrides}, cli=tuple(cli))

    def _blocked(self) -> str | None:
        return self.override_problem()

    def on_input_changed(self, event: Input.Changed) -> None:
        super().on_input_changed(event)
        if event.input.id == "overrides":
            problem = self.override_problem()
            self.query_one("#overrides-error", Static).update(f"[red]{escape(problem)}[/]" if problem else "")


class HelpScreen(ModalScreen[None]):
    """The keys that apply on the screen underneath, right now."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, title: str, rows: list[tuple[str, str, bool]], notes: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.rows = rows
        self.notes = notes

    def compose(self) -> ComposeResult:
        lines = [f"[b]{escape(self.title_text)}[/b] — keys", ""]
        for key, description, enabled in self.rows:
            suffix = "" if enabled else "  [dim](disabled now)[/]"
            lines.append(f"  [b]{escape(key):>8}[/b]  {escape(description)}{suffix}")
        if self.notes:
            lines += ["", self.notes]
        lines += ["", "[dim]escape closes this help[/]"]
        # Scrolls (arrows, PgUp/PgDn, Home/End) when the keys outgrow a small terminal.
        with VerticalScroll(id="help"):
            yield Static("\n".join(lines))

    def on_mount(self) -> None:
        self.query_one("#help", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)


class TooSmallScreen(ModalScreen[None]):
    """Says plainly that the terminal is too small, instead of drawing a broken layout."""

    def __init__(self, size: Any, minimum: tuple[int, int]) -> None:
        super().__init__(id="too-small")
        self.size_now = size
        self.minimum = minimum

    def compose(self) -> ComposeResult:
        yield Static(self._text(), id="too-small-text")

    def _text(self) -> str:
        width, height = self.minimum
        return (f"Terminal too small: {self.size_now.width}x{self.size_now.height}.\n"
                f"opsctl needs at least {width}x{height}. Enlarge the window (q quits).")

    def resized(self, size: Any) -> None:
        self.size_now = size
        self.query_one("#too-small-text", Static).update(self._text())
