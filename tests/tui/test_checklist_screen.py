"""The checklist screen under a Textual Pilot, against a real daemon and registry: `l` on the overview opens
it, every item shows its coloured status, evidence and fix, it scrolls, `r` evaluates the live state again,
escape goes back. The source is what bare ``opsctl`` gives the app (``opsctl checklist`` on the settings)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.cli.tui.handlers import checklist_source
from opsctl.config import load_file
from opsctl.core.checklist import ITEMS
from opsctl.tui.app import OpsctlApp
from opsctl.tui.checklist import ChecklistScreen
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


def coloured(app: Any, word: str) -> set[tuple[int, int, int]]:
    """The colours (RGB) the screen paints ``word`` in, where it stands as a segment of its own."""
    return {tuple(segment.style.color.get_truecolor())  # type: ignore[misc]
            for strip in app.screen._compositor.render_strips() for segment in strip
            if segment.text.strip() == word and segment.style is not None and segment.style.color is not None}


async def test_checklist_screen_from_the_overview_scrolls_and_re_evaluates(daemon: DaemonProcess) -> None:
    seed(daemon)  # fraud-detector 1.0.0 then 1.1.0 in production, churn 2.0.0
    settings = load_file(daemon.env.config)
    app = OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=15), environment="test", production=False,
                    animate=False, checklist=checklist_source(settings))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_app(pilot, lambda: app.connected and "churn" in app.fleet.models, timeout=15,
                           what="the models on the overview")
        await pilot.press("l")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ChecklistScreen) else None,
                                    what="the checklist screen")
        await wait_for_app(pilot, lambda: screen.report is not None, timeout=20, what="the checklist evaluated")
        report = screen.report
        assert report is not None
        per_model = sum(2 if per else 1 for *_, per in ITEMS)  # two models deployed
        assert len(report.items) == per_model
        # Read-only: the screen offers no action key.
        assert {b.action for b in screen.BINDINGS} <= {"app.pop_screen", "reload", "scroll('down')",
                                                        "scroll('up')", "scroll('home')", "scroll('end')"}

        top = screen_text(app)
        assert "pre-deployment" in top and "Model accuracy exceeds baseline" in top
        assert "evidence:" in top and "fix:" in top
        by_key = {(i.id, i.model): i for i in report.items}
        rollback = by_key[("rollback_procedure", "fraud-detector")]
        assert rollback.status.value == "pass" and "goes to 1.0.0" in rollback.evidence
        assert "goes to 1.0.0" in top  # its evidence on screen
        # Statuses are coloured by what they say (all three occur: Prometheus is unreachable here).
        statuses = {i.status.value for i in report.items}
        assert statuses == {"pass", "fail", "unknown"}
        scroll = screen.query_one("#checklist-scroll")
        seen: dict[str, set[str]] = {s: set() for s in statuses}
        for _ in range(40):
            for status in seen:
                seen[status] |= coloured(app, status)
            if scroll.scroll_y >= scroll.max_scroll_y:
                break
            await pilot.press("pagedown")
            await pilot.pause()
        assert scroll.max_scroll_y > 0 and scroll.scroll_y == scroll.max_scroll_y  # it scrolled to the end
        assert "Data backup runs regularly" in screen_text(app) and "Data backup" not in top
        greens, reds, yellows = (seen[s] for s in ("pass", "fail", "unknown"))
        assert greens and reds and yellows, seen
        assert all(g > r and g > b for r, g, b in greens), greens
        assert all(r > g and r > b for r, g, b in reds), reds
        assert all(r > b and g > b for r, g, b in yellows), yellows
        await pilot.press("g")
        await pilot.pause()
        assert scroll.scroll_y == 0

        # The live state changes (a rollback): `r` evaluates again and the item follows.
        assert by_key[("postmortems", "fraud-detector")].status.value == "pass"
        assert daemon.env.run("rollback", "fraud-detector", "--yes", "--reason", "test").code == 0
        before = screen.report
        await pilot.press("r")
        await wait_for_app(pilot, lambda: screen.report is not before, timeout=20, what="the re-evaluation")
        after = {(i.id, i.model): i for i in screen.report.items}  # type: ignore[union-attr]
        assert after[("postmortems", "fraud-detector")].status.value == "unknown"
        assert after[("postmortems", "fraud-detector")].evidence.startswith("1 rollback(s) in 30 days")

        await pilot.press("escape")
        await wait_for_app(pilot, lambda: isinstance(app.screen, OverviewScreen), what="back on the overview")
