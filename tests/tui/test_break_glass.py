"""`r` with the daemon down: the CLI's direct rollback (registry file, routing document), behind the typed-name
confirmation, with its honest result on screen and in the audit log; keys that cannot act say why in one line.

A real daemon is seeded, then stopped (SIGTERM); the TUI notices through its SSE stream. The traffic check
measures a real closed port as Prometheus, so it honestly reports traffic as unknown ("NOT verified").
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.backends import DirectBackend
from opsctl.config import load_settings
from opsctl.rollout_verify import PrometheusTrafficMeter
from opsctl.tui.app import OpsctlApp
from opsctl.tui.breakglass import BreakGlass
from opsctl.tui.dialogs import BreakGlassDialog
from opsctl.tui.feed import DaemonFeed
from opsctl.tui.screens import ModelScreen
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for_app
from tests.tui.helpers import screen_text, seed

ME = pwd.getpwuid(os.getuid()).pw_name
pytestmark = pytest.mark.asyncio

CONFIG = """\
[jobs]
housekeeping_seconds = 60
health_seconds = 60
alerts_seconds = 60
canary_seconds = 60

[prometheus]
url = "http://127.0.0.1:9"
timeout_seconds = 0.5
"""


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(make_opsctl_env(tmp_path / "opsctl", CONFIG)).start()
    try:
        seed(process)
        yield process
    finally:
        process.stop()


def make_app(daemon: DaemonProcess, *, within: float = 2.0) -> OpsctlApp:
    settings = load_settings(str(daemon.env.config))
    glass = BreakGlass(lambda: DirectBackend(settings, via="direct (daemon down)"), start_command="opsctl daemon",
                       meter=PrometheusTrafficMeter(settings.prometheus), window_seconds=1.0, within_seconds=within)
    return OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                     animate=False, break_glass=glass, daemon_start_command="opsctl daemon")


def _flat(app: Any) -> str:
    return " ".join(screen_text(app).split())


async def test_r_with_the_daemon_down_rolls_back_on_the_registry_and_says_what_happened(
        seeded: DaemonProcess) -> None:
    app = make_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and "fraud-detector" in app.fleet.deployments,
                           what="the seeded fleet")
        seeded.stop()
        await wait_for_app(pilot, lambda: not app.connected, what="the daemon-down banner")
        assert "r rolls back on the registry directly" in _flat(app)
        app.open_model("fraud-detector")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen), what="the model screen")
        await pilot.press("r")
        dialog = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, BreakGlassDialog) else None,
                                    what="the break-glass dialog")
        await wait_for_app(pilot, lambda: dialog.plan is not None, what="the plan read from the registry")
        assert app.focused is not None and app.focused.id == "cancel"
        assert "1.1.0 -> 1.0.0" in _flat(app)
        await pilot.press("tab", *"daemon down, 1.1.0 failing", "enter", *"fraud-detectr", "enter")
        await wait_for_app(pilot, lambda: "refused" in _flat(app), what="a wrong name refused")
        assert dialog.outcome is None
        await pilot.press("backspace", "backspace", *"tor")
        command = str(dialog.query_one("#command").render())
        assert 'opsctl rollback fraud-detector --verify --reason "daemon down, 1.1.0 failing"' in command
        await pilot.press("enter")
        await wait_for_app(pilot, lambda: dialog.outcome is not None, timeout=30, what="the rollback's result")
        result = " ".join(str(dialog.query_one("#error").render()).split())
        # What changed, where, and what is known about traffic: nothing claimed that was not measured.
        assert "directly on the registry: the daemon is down" in result, result
        assert "traffic:" in result and "verify (NOT verified): traffic on 1.1.0: unknown" in result, result
        assert str(dialog.query_one("#cancel").label) == "Close"
        await pilot.press("enter")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen), what="back on the model screen")

    history = seeded.env.run("history", "fraud-detector", "-o", "json").json()
    rollback = next(e for e in reversed(history) if e["action"] == "rollback")
    assert (rollback["actor"], rollback["reason"], rollback["to_version"]) == (ME, "daemon down, 1.1.0 failing",
                                                                             "1.0.0")
    assert "direct" in rollback["via"]
    checked = history[-1]
    assert checked["action"] != "rollback" and "unknown" in str(checked.get("detail")), checked


async def test_a_key_that_cannot_act_says_why_in_one_line(seeded: DaemonProcess) -> None:
    app = make_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and "fraud-detector" in app.fleet.deployments,
                           what="the seeded fleet")
        app.open_model("fraud-detector")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen), what="the model screen")
        await pilot.press("x")  # no canary: abort cannot act
        await wait_for_app(pilot, lambda: any("Abort: nothing done, fraud-detector has no running canary"
                                              in n.message for n in app._notifications), what="the one-line why")
        assert not isinstance(app.screen, BreakGlassDialog)
