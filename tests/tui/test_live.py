"""The TUI against a real daemon subprocess, driven with Pilot (80x24 and 160x48)."""

from __future__ import annotations

import asyncio
import os
import pwd
import time

import pytest

from opsctl.tui.app import OpsctlApp, OpsctlCommands
from opsctl.tui.dialogs import ChangeDialog
from opsctl.tui.feed import DaemonFeed
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for_app
from tests.tui.helpers import cell, press_expecting_no_dialog, screen_text, seed

ME = pwd.getpwuid(os.getuid()).pw_name
SIZES = [(80, 24), (160, 48)]
pytestmark = pytest.mark.asyncio


def make_app(daemon: DaemonProcess, **kwargs: object) -> OpsctlApp:
    feed = DaemonFeed(str(daemon.env.socket), refresh_seconds=15)
    return OpsctlApp(feed, environment="test", production=False, animate=False, **kwargs)  # type: ignore[arg-type]


def binding_state(app: OpsctlApp, key: str) -> bool | None:
    """True: offered and enabled; False: offered but disabled; None: not offered at all."""
    active = app.screen.active_bindings.get(key)
    return None if active is None else active.enabled


@pytest.mark.parametrize("size", SIZES)
async def test_overview_lists_every_model(daemon: DaemonProcess, size: tuple[int, int]) -> None:
    seed(daemon)
    app = make_app(daemon)
    async with app.run_test(size=size) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="both models")
        assert cell(app, "fraud-detector", "production") == "1.1.0"
        assert cell(app, "churn", "production") == "2.0.0"
        await wait_for_app(pilot, lambda: "SLA: no data yet" in screen_text(app), what="the rendered overview")
        text = screen_text(app)
        assert "fraud-detector" in text and "churn" in text and "daemon up" in text
        assert "Terminal too small" not in text
        # Nothing has published SLA or alerts yet: the panel says so rather than inventing a value.
        assert cell(app, "fraud-detector", "sla") == "-"


async def test_a_promote_made_elsewhere_shows_within_one_second(daemon: DaemonProcess) -> None:
    seed(daemon)
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: cell(app, "fraud-detector", "production") == "1.1.0" and app.connected,
                           what="initial state")
        http = daemon.http()
        response = await asyncio.to_thread(http.post, "/v1/models/fraud-detector/promote",
                                           json={"version": "1.0.0", "reason": "from elsewhere"})
        sent = time.monotonic()
        assert response.status_code == 200, response.text
        await wait_for_app(pilot, lambda: cell(app, "fraud-detector", "production") == "1.0.0", timeout=1.0,
                           what="the promote on screen")
        assert time.monotonic() - sent < 1.0
        await wait_for_app(pilot, lambda: "from elsewhere" in screen_text(app), timeout=1.0, what="the feed line")
        http.close()


async def test_daemon_death_shows_banner_disables_actions_and_recovers(daemon: DaemonProcess) -> None:
    seed(daemon)
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="connected")
        assert binding_state(app, "r") is True
        assert "DAEMON UNREACHABLE" not in screen_text(app)

        daemon.signal(9)
        daemon.wait()
        await wait_for_app(pilot, lambda: "DAEMON UNREACHABLE" in screen_text(app), timeout=5, what="the banner")
        # What still works while the daemon is away, and how it comes back.
        assert "break-glass still works: `opsctl rollback MODEL`" in screen_text(app)
        assert "sudo systemctl start opsctl" in screen_text(app).replace("\n", " ")
        assert binding_state(app, "r") is False
        await press_expecting_no_dialog(pilot, "r")
        # The last data stays on screen, dimmed.
        assert cell(app, "fraud-detector", "production") == "1.1.0"
        assert app.overview.query_one("#models-panel").has_class("-stale")

        daemon.start()
        await wait_for_app(pilot, lambda: app.connected and "DAEMON UNREACHABLE" not in screen_text(app), timeout=10,
                           what="the banner to clear after restart")
        assert binding_state(app, "r") is True
        assert not app.overview.query_one("#models-panel").has_class("-stale")


async def test_rollback_dialog_refuses_wrong_name_then_rolls_back(daemon: DaemonProcess) -> None:
    seed(daemon)
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="connected")
        app.overview.select("fraud-detector")
        await pilot.press("r")
        dialog = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ChangeDialog) else None,
                                    what="the dialog")
        assert app.focused is not None and app.focused.id == "cancel"
        await wait_for_app(pilot, lambda: dialog.plan is not None, what="the plan")
        assert dialog.plan.generation >= 1 and dialog.plan.to_version == "1.0.0"

        await pilot.press("tab")  # Confirm is disabled, so Tab goes to the reason
        assert app.focused is not None and app.focused.id == "reason"
        await pilot.press(*"p99 over SLA", "enter")
        await pilot.press(*"fraud-detectr", "enter")
        await wait_for_app(pilot, lambda: "refused" in screen_text(app), what="the refusal")
        assert isinstance(app.screen, ChangeDialog)
        assert 'opsctl rollback fraud-detector --reason "p99 over SLA" --yes' in screen_text(app)
        history = daemon.env.run("history", "fraud-detector", "-o", "json").json()
        assert history[-1]["action"] == "promote"  # nothing was changed

        name = dialog.query_one("#confirm-name")
        name.value = ""  # type: ignore[attr-defined]
        await pilot.click("#confirm-name")
        await pilot.press(*"fraud-detector", "enter")
        await wait_for_app(pilot, lambda: not isinstance(app.screen, ChangeDialog), what="the dialog to close")
        await wait_for_app(pilot, lambda: cell(app, "fraud-detector", "production") == "1.0.0", what="rolled back")
        # The result names the traffic change, not just the registry row.
        assert "traffic: routing document updated (generation" in app.log_lines[-1]

    history = daemon.env.run("history", "fraud-detector", "-o", "json").json()
    last = history[-1]
    assert (last["action"], last["actor"], last["via"], last["reason"], last["to_version"]) == (
        "rollback", ME, "daemon", "p99 over SLA", "1.0.0")


async def test_cancel_changes_nothing(daemon: DaemonProcess) -> None:
    seed(daemon)
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="connected")
        app.overview.select("fraud-detector")
        await pilot.press("r")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ChangeDialog), what="the dialog")
        await pilot.press("enter")  # focus starts on Cancel: a stray Enter cancels
        await wait_for_app(pilot, lambda: not isinstance(app.screen, ChangeDialog), what="the dialog to close")
    assert daemon.env.run("history", "fraud-detector", "-o", "json").json()[-1]["action"] == "promote"


async def test_read_only_offers_no_action(daemon: DaemonProcess) -> None:
    seed(daemon)
    app = make_app(daemon, read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="connected")
        assert binding_state(app, "r") is None and binding_state(app, "p") is None
        await wait_for_app(pilot, lambda: "READ-ONLY" in screen_text(app), what="the read-only context bar")
        assert "Rollback" not in screen_text(app)
        await press_expecting_no_dialog(pilot, "r", "p")
        names = [name for name, _, _ in OpsctlCommands(app.screen)._commands()]
        assert "open fraud-detector" in names
        assert not [n for n in names if n.startswith(("rollback", "promote"))]
        await pilot.press("enter")  # the registry screen: no action there either
        await wait_for_app(pilot, lambda: type(app.screen).__name__ == "ModelScreen", what="registry screen")
        assert binding_state(app, "r") is None and binding_state(app, "p") is None
