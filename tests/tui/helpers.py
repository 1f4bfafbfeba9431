"""Helpers for the TUI tests: seed a daemon over its API, wait inside a Pilot session, read the screen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.screen import ModalScreen

from opsctl.tui.dialogs import HelpScreen
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess, upload
from tests.fixtures.wait import wait_for_app

MODELS = {"fraud-detector": ("1.0.0", "1.1.0"), "churn": ("2.0.0",)}


def seed(daemon: DaemonProcess) -> None:
    """fraud-detector: 1.0.0 then 1.1.0 in production (so a rollback has somewhere to go); churn: 2.0.0."""
    http = daemon.http()
    for model, versions in MODELS.items():
        for version in versions:
            artifact = daemon.env.root / f"{model}-{version}.bin"
            artifact.write_bytes(f"{model} {version}".encode())
            response = http.post(f"/v1/models/{model}/versions",
                                 json={"version": version, "artifact": upload(http, artifact),
                                       "metrics": {"auc": 0.9}, "lineage": {"code_version": "abc123"}})
            assert response.status_code == 201, response.text
            response = http.post(f"/v1/models/{model}/promote", json={"version": version, "reason": "seed"})
            assert response.status_code == 200, response.text
    http.close()


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (for assertions about what a person would read)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def cell(app: Any, model: str, column: str) -> str:
    table = app.overview.table
    if model not in table.rows:
        return ""
    return str(table.get_cell(model, column))


async def press_expecting_no_dialog(pilot: Pilot[Any], *keys: str) -> None:
    """Press ``keys``, then ``?``, and check that none of the keys opened a dialog.

    Keys are handled in order: once the help screen that ``?`` opens is up, every key before it has
    been handled, so no fixed pause is needed to be sure a dialog would have appeared by then.
    """
    app = pilot.app
    before = app.screen
    await pilot.press(*keys, "question_mark")
    await wait_for_app(pilot, lambda: app.screen is not before, what="the help screen (or a dialog)")
    opened = [type(s).__name__ for s in app.screen_stack
              if isinstance(s, ModalScreen) and not isinstance(s, HelpScreen)]
    assert isinstance(app.screen, HelpScreen) and not opened, f"{keys} opened {opened or type(app.screen).__name__}"
    await pilot.press("escape")
    await wait_for_app(pilot, lambda: app.screen is before, what="the help screen to close")


UNREACHABLE_PROMETHEUS = """\
[jobs]
health_seconds = 60
canary_seconds = 60

[prometheus]
url = "http://127.0.0.1:9"
timeout_seconds = 0.5
"""


@contextmanager
def daemon_without_prometheus(root: Path) -> Iterator[DaemonProcess]:
    """A real daemon whose Prometheus does not answer (slow jobs, so the screens under test stay still)."""
    process = DaemonProcess(make_opsctl_env(root, UNREACHABLE_PROMETHEUS)).start()
    try:
        yield process
    finally:
        process.stop()
