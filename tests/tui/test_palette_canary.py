"""`:` `canary` on the overview starts a canary of the highlighted model's newest registered version, and the
start dialog takes `--set KEY=VALUE` policy overrides (checked as typed) that reach the daemon's canary."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.tui.app import OpsctlApp
from opsctl.tui.dialogs import CanaryStartDialog
from opsctl.tui.feed import DaemonFeed
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess, upload
from tests.fixtures.wait import wait_for_app
from tests.tui.helpers import seed

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
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(make_opsctl_env(tmp_path / "opsctl", CONFIG)).start()
    try:
        seed(process)
        http = process.http()
        artifact = process.env.root / "fraud-detector-1.2.0.bin"
        artifact.write_bytes(b"fraud-detector 1.2.0")
        response = http.post("/v1/models/fraud-detector/versions",
                             json={"version": "1.2.0", "artifact": upload(http, artifact), "metrics": {"auc": 0.91}})
        assert response.status_code == 201, response.text
        http.close()
        yield process
    finally:
        process.stop()


def _text(widget: Any) -> str:
    return " ".join(str(widget.render()).split())


async def test_canary_from_the_palette_with_set_overrides(daemon: DaemonProcess) -> None:
    app = OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                    animate=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="the fleet")
        app.overview.select("fraud-detector")
        await pilot.press("colon", *"canary")
        await pilot.pause()
        await pilot.press("enter")
        dialog = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, CanaryStartDialog) else None,
                                    what="the canary start dialog")
        assert dialog.action_.args == ("fraud-detector", "1.2.0")  # the newest registered version
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("tab", *"retrained on May data", "tab", *"stagez=1")
        error = dialog.query_one("#overrides-error")
        await wait_for_app(pilot, lambda: "unknown canary policy keys: stagez" in _text(error), what="the bad key")
        assert dialog.query_one("#confirm").disabled
        for _ in "stagez=1":
            await pilot.press("backspace")
        await pilot.press(*"--set stages=[10,50]")
        await wait_for_app(pilot, lambda: "strictly increasing" not in _text(error) and _text(error) == "",
                           what="valid overrides")
        command = _text(dialog.query_one("#command"))
        assert ("opsctl canary start fraud-detector 1.2.0 --set 'stages=[10,50]' --reason"
                ' "retrained on May data"') in command, command
        await pilot.press("enter")
        await wait_for_app(pilot, lambda: not isinstance(app.screen, CanaryStartDialog), what="the dialog to close")

    http = daemon.http()
    canary = http.get("/v1/canaries", params={"model": "fraud-detector"}).json()[0]
    http.close()
    assert canary["canary_version"] == "1.2.0" and canary["weight"] == 10.0, canary
    history = daemon.env.run("history", "fraud-detector", "-o", "json").json()
    entry = next(e for e in reversed(history) if e["action"] == "canary_start")
    assert (entry["actor"], entry["reason"], entry["to_version"]) == (ME, "retrained on May data", "1.2.0")


async def test_no_candidate_says_so(daemon: DaemonProcess) -> None:
    app = OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                    animate=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and app.overview.table.row_count == 2, what="the fleet")
        app.open_canary_candidate("churn")  # 2.0.0 only, in production
        await wait_for_app(pilot, lambda: any("no registered version waits for a canary" in n.message
                                              for n in app._notifications), what="the one-line why")
        assert not isinstance(app.screen, CanaryStartDialog)
