"""The doctor screen under a Textual Pilot, against a real daemon: `D` on the overview (or `:` doctor) opens
what ``opsctl doctor`` finds, worst first with the fix; `r` checks again; escape goes back. The source is
what bare ``opsctl`` gives the app; Prometheus is unreachable here, so the report has something broken."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.cli.context import CliContext
from opsctl.cli.output import Output
from opsctl.cli.tui.handlers import doctor_source
from opsctl.config import load_file
from opsctl.tui.app import OpsctlApp
from opsctl.tui.doctor import DoctorScreen
from opsctl.tui.feed import DaemonFeed
from opsctl.tui.screens import OverviewScreen
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for_app
from tests.tui.helpers import daemon_without_prometheus, screen_text, seed

pytestmark = pytest.mark.asyncio

@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    with daemon_without_prometheus(tmp_path / "opsctl") as process:
        yield process


async def test_doctor_screen_shows_the_worst_first_with_the_fix_and_checks_again(daemon: DaemonProcess) -> None:
    seed(daemon)
    settings = load_file(daemon.env.config)
    ctx = CliContext(args=argparse.Namespace(config=str(daemon.env.config)),
                     out=Output(stdout=io.StringIO(), stderr=io.StringIO()))
    app = OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                    animate=False, doctor=doctor_source(ctx, settings))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and "churn" in app.fleet.models, timeout=15,
                           what="the models on the overview")
        await pilot.press("D")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, DoctorScreen) else None,
                                    what="the doctor screen")
        await wait_for_app(pilot, lambda: screen.report is not None, timeout=30, what="the doctor's checks")
        report = screen.report
        assert report is not None
        by_check = {f.check: f for f in report.findings}
        assert by_check["daemon"].status.value == "ok"  # reached through the same client as `opsctl doctor`
        assert by_check["prometheus"].status.value == "fail" and report.exit_code == 2
        text = await wait_for_app(pilot, lambda: t if "something is broken" in (t := screen_text(app)) else None,
                                  what="the report on screen")
        # Worst first: the broken Prometheus comes before anything that is ok, with its fix.
        assert text.index("fail    prometheus") < text.index("ok      daemon")
        assert "fix:" in text and by_check["prometheus"].fix[:30] in text.replace("\n", " ")
        assert {b.action for b in screen.BINDINGS} <= {"app.pop_screen", "reload", "scroll('down')",
                                                        "scroll('up')", "scroll('home')", "scroll('end')"}
        before = screen.report
        await pilot.press("r")
        await wait_for_app(pilot, lambda: screen.report is not before, timeout=30, what="the doctor again")
        await pilot.press("escape")
        await wait_for_app(pilot, lambda: isinstance(app.screen, OverviewScreen), what="back on the overview")
