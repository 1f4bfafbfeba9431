"""Alert ack and canary abort from the keyboard against a real daemon, and read-only mode offering none of it.

The daemon's Prometheus URL points at a closed port, so every deployed version is ``unknown`` after the first
health cycle and ``ModelHealthUnknown`` goes pending: a real alert to acknowledge, without a Prometheus.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.tui.app import OpsctlApp, OpsctlCommands
from opsctl.tui.dialogs import ActionDialog
from opsctl.tui.feed import DaemonFeed
from opsctl.tui.screens import AlertsScreen, ModelScreen
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess, upload
from tests.fixtures.wait import wait_for_app
from tests.tui.helpers import press_expecting_no_dialog, screen_text, seed

ME = pwd.getpwuid(os.getuid()).pw_name
pytestmark = pytest.mark.asyncio

CONFIG = """\
[jobs]
housekeeping_seconds = 60
health_seconds = 0.3
alerts_seconds = 0.3
canary_seconds = 60

[prometheus]
url = "http://127.0.0.1:9"
timeout_seconds = 0.5
"""


@pytest.fixture
def busy_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(make_opsctl_env(tmp_path / "opsctl", CONFIG)).start()
    try:
        yield process
    finally:
        process.stop()


def start_canary(daemon: DaemonProcess) -> None:
    http = daemon.http()
    artifact = daemon.env.root / "fraud-detector-1.2.0.bin"
    artifact.write_bytes(b"fraud-detector 1.2.0")
    response = http.post("/v1/models/fraud-detector/versions",
                         json={"version": "1.2.0", "artifact": upload(http, artifact), "metrics": {"auc": 0.91}})
    assert response.status_code == 201, response.text
    response = http.post("/v1/canaries", json={"model": "fraud-detector", "version": "1.2.0", "reason": "test"})
    assert response.status_code == 201, response.text
    http.close()


def make_app(daemon: DaemonProcess, **kwargs: Any) -> OpsctlApp:
    return OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                     animate=False, **kwargs)


def text_of(screen: Any, selector: str) -> str:
    """A widget's text without the line wrapping of the terminal."""
    return str(screen.query_one(selector).render().plain)


def audit(daemon: DaemonProcess, model: str) -> list[dict[str, Any]]:
    return daemon.env.run("history", model, "-o", "json").json()  # type: ignore[no-any-return]


async def test_ack_an_alert_from_the_alerts_screen_is_audited_with_the_user(busy_daemon: DaemonProcess) -> None:
    seed(busy_daemon)
    app = make_app(busy_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.fleet.alert_counts is not None and any(
            a.get("state") in ("pending", "firing") and (a.get("labels") or {}).get("model") == "churn"
            for a in app.fleet.alerts), timeout=15, what="churn's health alert in the TUI (SSE + /v1/alerts)")
        await pilot.press("a")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, AlertsScreen) else None,
                                    what="the alerts screen")
        await wait_for_app(pilot, lambda: "ModelHealthUnknown" in screen_text(app), what="the alert row")
        # Put the cursor on churn's alert.
        table = screen.query_one("#alerts")
        for _ in range(table.row_count):
            if (screen.selected or {}).get("labels", {}).get("model") == "churn":
                break
            await pilot.press("down")
        alert = screen.selected
        assert alert is not None and alert["labels"]["model"] == "churn"

        await pilot.press("a")
        dialog = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ActionDialog) else None,
                                    what="the ack dialog")
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("tab", *"known: prometheus maintenance")
        await wait_for_app(pilot, lambda: f'opsctl alerts ack {alert["id"]} --reason "known: prometheus maintenance"'
                           in text_of(dialog, "#command"), what="the CLI command")
        await pilot.press("enter")
        await wait_for_app(pilot, lambda: not isinstance(app.screen, ActionDialog), what="the dialog to close")
        assert dialog.busy
        await wait_for_app(pilot, lambda: (next((a for a in app.fleet.alerts if a["id"] == alert["id"]), {})
                                       .get("ack") or {}).get("by") == ME, what="the ack on screen")

    entry = next(e for e in reversed(audit(busy_daemon, "churn")) if e["action"] == "alert.ack")
    assert (entry["actor"], entry["reason"]) == (ME, "known: prometheus maintenance")
    assert alert["id"] in entry["detail"]


async def test_abort_a_canary_from_the_model_screen(busy_daemon: DaemonProcess) -> None:
    seed(busy_daemon)
    start_canary(busy_daemon)
    app = make_app(busy_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and (app.fleet.canaries or {}).get("fraud-detector"),
                           what="the canary in the status document")
        app.open_model("fraud-detector")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ModelScreen)
                                    and app.screen.versions else None, what="the model screen")
        await pilot.press("3")
        await wait_for_app(pilot, lambda: "canary: 1.2.0" in screen_text(app) and "stage 1/" in screen_text(app),
                           what="the canary tab")
        await pilot.press("x")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ActionDialog), what="the abort dialog")
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("tab", *"latency regression", "enter")
        await pilot.press(*"fraud-detectr", "enter")  # a wrong name is refused
        await wait_for_app(pilot, lambda: "refused" in screen_text(app), what="the refusal")
        assert audit(busy_daemon, "fraud-detector")[-1]["action"] != "canary.abort"
        assert 'opsctl canary abort fraud-detector --reason "latency regression"' in text_of(app.screen, "#command")
        await pilot.press("backspace", "backspace", *"tor", "enter")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen), what="back on the model screen")
        await wait_for_app(pilot, lambda: "aborted" in text_of(screen, "#canary-detail"),
                           what="the aborted canary on screen")
        # No canary action is offered once it is over.
        assert app.screen.active_bindings.get("x") is None or not app.screen.check_action("canary_abort", ())

    http = busy_daemon.http()
    canary = http.get("/v1/canaries", params={"model": "fraud-detector"}).json()[0]
    http.close()
    assert canary["phase"] == "aborted" and canary["weight"] == 0.0
    entry = next(e for e in reversed(audit(busy_daemon, "fraud-detector")) if "abort" in e["action"])
    assert (entry["actor"], entry["reason"]) == (ME, "latency regression")


async def test_read_only_offers_none_of_the_new_actions(busy_daemon: DaemonProcess) -> None:
    seed(busy_daemon)
    start_canary(busy_daemon)
    app = make_app(busy_daemon, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and (app.fleet.canaries or {}).get("fraud-detector")
                           and app.fleet.alerts, timeout=15, what="a canary and an alert")
        names = [name for name, _, _ in OpsctlCommands(app.screen)._commands()]
        assert "alerts" in names and "open fraud-detector" in names
        offered = [n for n in names if n.split(" ")[0] in ("pause", "resume", "abort", "promote", "retrain",
                                                           "rollback", "game")]
        assert offered == []
        await pilot.press("a")
        await wait_for_app(pilot, lambda: isinstance(app.screen, AlertsScreen), what="the alerts screen")
        for key in ("a", "s"):
            assert app.screen.active_bindings.get(key) is None
        await press_expecting_no_dialog(pilot, "a", "s")
        app.open_model("fraud-detector")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen), what="the model screen")
        for key in ("z", "u", "x", "g", "t", "r", "p"):
            assert app.screen.active_bindings.get(key) is None, key
        await press_expecting_no_dialog(pilot, "z", "u", "x", "g", "t", "r", "p")
        assert "Abort canary" not in screen_text(app) and "Retrain" not in screen_text(app)
