"""What the screens and dialogs use of the app that hosts them.

A protocol, not an import of :class:`opsctl.tui.app.OpsctlApp`: the app imports the screens and
dialogs, so they must not import it back (even for type checking: no import cycles).
"""

from __future__ import annotations

from typing import Protocol

from opsctl.clock import Clock
from opsctl.tui.actions import Action
from opsctl.tui.breakglass import BreakGlass
from opsctl.tui.feed import Feed
from opsctl.tui.model import Fleet


class Host(Protocol):
    """The parts of ``OpsctlApp`` a screen or dialog reads or calls."""

    connected: bool
    read_only: bool
    daemon_start_command: str
    break_glass: BreakGlass | None
    clock: Clock
    feed: Feed
    fleet: Fleet

    def update_chrome(self) -> None: ...

    def open_model(self, model: str) -> None: ...

    def open_alerts(self) -> None: ...

    def open_checklist(self) -> None: ...

    def open_doctor(self) -> None: ...

    def open_action(self, action: Action) -> None: ...

    def open_break_glass(self, model: str) -> None: ...

    def open_change(self, action: str, model: str, version: str | None = None) -> None: ...
