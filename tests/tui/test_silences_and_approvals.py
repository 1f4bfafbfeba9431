"""Silences listed and ended from the TUI, and a retrain run awaiting approval approved or rejected from the model
screen, each against a real daemon and checked in its audit log."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from opsctl.tui.app import OpsctlApp
from opsctl.tui.dialogs import ActionDialog
from opsctl.tui.feed import DaemonFeed
from opsctl.tui.screens import AlertsScreen, ModelScreen, SilencesScreen
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for_app
from tests.tui.helpers import screen_text, seed

ME = pwd.getpwuid(os.getuid()).pw_name
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.asyncio

HEALTH_CONFIG = """\
[jobs]
housekeeping_seconds = 60
health_seconds = 0.3
alerts_seconds = 0.3
canary_seconds = 60

[prometheus]
url = "http://127.0.0.1:9"
timeout_seconds = 0.5
"""


def _retrain_config() -> str:
    return """\
[jobs]
housekeeping_seconds = 0.5

[prometheus]
url = "http://127.0.0.1:9"
timeout_seconds = 0.5

[retrain]
timeout_seconds = 30
memory_limit_mb = 0
cooldown_seconds = 0
min_improvement = 0.02

[retrain.models.gated]
entrypoint = "tests.retrain_entrypoints:train_curve"
approval_before_canary = true
"""


@pytest.fixture
def health_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(make_opsctl_env(tmp_path / "opsctl", HEALTH_CONFIG)).start()
    try:
        seed(process)
        yield process
    finally:
        process.stop()


@pytest.fixture
def gated_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    from tests.retrain_entrypoints import write_model

    env = make_opsctl_env(tmp_path / "opsctl", _retrain_config())
    # The test models (tests.retrain_entrypoints) are unpickled by the daemon and imported by training.
    process = DaemonProcess(env, extra_env={"PYTHONPATH": str(REPO)}).start()
    try:
        champion = write_model(-0.5, tmp_path / "champion.joblib")
        assert env.run("register", "gated", "--version", "1.0.0", "--artifact", str(champion)).code == 0
        assert env.run("promote", "gated", "1.0.0", "--yes").code == 0
        yield process
    finally:
        process.stop()


def make_app(daemon: DaemonProcess) -> OpsctlApp:
    return OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                     animate=False)


def audit(daemon: DaemonProcess, model: str) -> list[dict[str, Any]]:
    return daemon.env.run("history", model, "-o", "json").json()  # type: ignore[no-any-return]


async def _confirm(pilot: Pilot[Any], reason: str) -> ActionDialog:
    app: Any = pilot.app
    dialog = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ActionDialog) else None,
                                what="the dialog")
    assert app.focused is not None and app.focused.id == "cancel"
    await pilot.press("tab", *reason, "enter")
    await wait_for_app(pilot, lambda: not isinstance(app.screen, ActionDialog), what="the dialog to close")
    return dialog  # type: ignore[no-any-return]


async def test_silence_an_alert_list_it_and_end_it(health_daemon: DaemonProcess) -> None:
    app = make_app(health_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and any(
            a.get("state") in ("pending", "firing") and (a.get("labels") or {}).get("model") == "churn"
            for a in app.fleet.alerts), timeout=15, what="churn's health alert")
        await pilot.press("a")
        alerts = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, AlertsScreen) else None,
                                    what="the alerts screen")
        table = alerts.query_one("#alerts")
        for _ in range(table.row_count):
            if (alerts.selected or {}).get("labels", {}).get("model") == "churn":
                break
            await pilot.press("down")
        await pilot.press("s")
        await _confirm(pilot, "prometheus maintenance")
        await pilot.press("S")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, SilencesScreen) else None,
                                    what="the silences screen")
        await wait_for_app(pilot, lambda: screen.silences, what="the silence listed")
        silence = screen.silences[0]
        assert 'model="churn"' in silence["matchers"] and silence["author"] == ME
        await wait_for_app(pilot, lambda: f'{silence["id"]}: alertname="ModelHealthUnknown" model="churn"'
                           in screen_text(app) and f"{ME}  prometheus maintenance" in screen_text(app),
                           what="who, why and what on screen", context=lambda: screen_text(app))
        await pilot.press("e")
        dialog = await _confirm(pilot, "maintenance over")
        assert dialog.action_.command("maintenance over") == (
            f'opsctl alerts unsilence {silence["id"]} --reason "maintenance over"')
        await wait_for_app(pilot, lambda: screen.silences == [] and "no silence in force" in screen_text(app),
                           what="the list without the ended silence")
        await pilot.press("e")  # nothing left to end: says so in one line
        await wait_for_app(pilot, lambda: any("End silence: nothing done, no silence highlighted" in n.message
                                              for n in app._notifications), what="the one-line why")

    entries = audit(health_daemon, "churn")
    silenced = next(e for e in reversed(entries) if e["action"] == "alert.silence")
    ended = next(e for e in reversed(entries) if e["action"] == "alert.unsilence")
    assert (silenced["actor"], silenced["reason"]) == (ME, "prometheus maintenance")
    assert (ended["actor"], ended["reason"]) == (ME, "maintenance over") and silence["id"] in ended["detail"]


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
async def test_a_retrain_run_awaiting_approval_is_decided_from_the_model_screen(gated_daemon: DaemonProcess,
                                                                                approve: bool) -> None:
    run = gated_daemon.env.run("retrain", "gated", "--wait", "-o", "json", timeout=60).json()
    assert run["status"] == "awaiting_approval"
    app = make_app(gated_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and "gated" in app.fleet.deployments, what="the fleet")
        app.open_model("gated")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ModelScreen)
                                    and app.screen.awaiting_run else None, what="the run awaiting approval")
        await pilot.press("5")
        await wait_for_app(pilot, lambda: "awaits approval" in screen_text(app), what="the retrain tab's hint")
        await pilot.press("y" if approve else "n")
        dialog = await _confirm(pilot, "numbers look right" if approve else "trained on the incident week")
        assert dialog.action_.cli == ("opsctl", "retrain", "approve" if approve else "reject", run["id"])
        status = "canary_started" if approve else "rejected"
        await wait_for_app(pilot, lambda: screen.runs and screen.runs[0]["status"] == status, timeout=15,
                           what=f"the run {status} on screen")
        assert screen.awaiting_run is None and not screen.check_action("retrain_approve", ())

    entry = next(e for e in reversed(audit(gated_daemon, "gated"))
                 if e["action"] == ("retrain-approve" if approve else "retrain-reject"))
    assert entry["actor"] == ME and entry["to_version"] == run["candidate_version"]
