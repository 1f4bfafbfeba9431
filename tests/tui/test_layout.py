"""The layout follows the terminal: resizes through pushed screens, footers at 80 columns, keyboard scrolling.

Each test drives the real app (Textual Pilot) on the fixed document with a frozen clock, so a screen can be
compared with a fresh app's screen at the same size line by line.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Footer

from opsctl.tui.dialogs import HelpScreen
from opsctl.tui.screens import AlertsScreen, ModelScreen
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import fixed_app
from tests.tui.helpers import screen_text

pytestmark = pytest.mark.asyncio

SIZES = [(80, 24), (120, 40)]


async def _loaded(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for_app(pilot, lambda: app.overview.ready and app.overview.table.row_count == 3 and app.first_status,
                       what="the fixed document")
    await pilot.pause()


async def _open_model(pilot: Pilot[Any]) -> ModelScreen:
    app: Any = pilot.app
    app.open_model("fraud-detector")
    return await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ModelScreen)
                              and app.screen.versions and app.screen.history else None, what="the model screen")


async def _fresh_overview(size: tuple[int, int]) -> str:
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        app.overview.select("fraud-detector")  # as opening it does
        await pilot.pause()
        return screen_text(app)


def _footer_now(app: Any) -> str:
    footer = app.screen.query_one(Footer)
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips()[footer.region.y:
                                                                                    footer.region.bottom])


async def _footer_text(pilot: Pilot[Any]) -> str:
    """The footer once it has drawn its keys (it fills in after the screen's first frame)."""
    return await wait_for_app(pilot, lambda: _footer_now(pilot.app) if "Help" in _footer_now(pilot.app) else None,
                              what="the footer's keys")


@pytest.mark.parametrize(("first", "then"), [((120, 40), (80, 24)), ((80, 24), (160, 48)), ((160, 48), (80, 24))])
async def test_overview_relays_out_after_a_resize_under_the_model_screen(first: tuple[int, int],
                                                                        then: tuple[int, int]) -> None:
    """120x40 -> open a model -> 80x24 -> esc: the overview is the one a fresh app draws at 80x24."""
    expected = await _fresh_overview(then)
    app = fixed_app()
    async with app.run_test(size=first) as pilot:
        await _loaded(pilot)
        await _open_model(pilot)
        await pilot.resize_terminal(*then)
        await pilot.pause()
        await pilot.press("escape")
        await wait_for_app(pilot, lambda: app.screen is app.overview, what="the overview")
        await pilot.pause()
        shown = screen_text(app)
    assert shown == expected
    header = next(line for line in shown.splitlines() if "model" in line and "production" in line)
    assert "SLA" in header and "alerts" in header, header


@pytest.mark.parametrize("size", SIZES)
async def test_footers_fit_the_terminal(size: tuple[int, int]) -> None:
    """Every screen's footer shows its keys whole: `? Help` and the screen's actions, none cut mid-word."""
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        footers = {"overview": await _footer_text(pilot)}
        await _open_model(pilot)
        await pilot.pause()
        footers["model"] = await _footer_text(pilot)
        await pilot.press("escape", "a")
        await wait_for_app(pilot, lambda: isinstance(app.screen, AlertsScreen), what="the alerts screen")
        await pilot.pause()
        footers["alerts"] = await _footer_text(pilot)
    for screen, text in footers.items():
        words = text.split()
        assert "Help" in words and "Quit" in words, f"{screen} at {size}: {text!r}"
        assert text.rstrip().endswith(": Cmds"), f"{screen} at {size}, cut: {text!r}"  # the last key is whole
    for key in ("Rollback", "Promote", "Alerts", "Filter"):
        assert key in footers["overview"].split(), footers["overview"]
    for key in ("Back", "Rollback", "Canary", "Abort", "Finish"):  # the fixed document has a running canary
        assert key in footers["model"].split(), footers["model"]
    for key in ("Back", "Ack"):
        assert key in footers["alerts"].split(), footers["alerts"]


async def test_model_help_scrolls_to_its_last_line_at_80x24() -> None:
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        await _open_model(pilot)
        await pilot.press("question_mark")
        help_screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, HelpScreen) else None,
                                         what="the help screen")
        await pilot.pause()
        box = help_screen.query_one("#help", VerticalScroll)
        assert box.max_scroll_y > 0, "the help fits: this test would prove nothing"
        assert "escape closes this help" not in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y
        assert "escape closes this help" in screen_text(app)


@pytest.mark.parametrize("size", SIZES)
async def test_history_tab_scrolls_to_its_last_audit_row_by_keyboard(size: tuple[int, int]) -> None:
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        screen = await _open_model(pilot)
        await pilot.press("6")
        await pilot.pause()
        scroll = screen.query_one("#model-panels VerticalScroll", VerticalScroll)
        assert app.focused is scroll
        last = screen.history[-1]
        last_line = next(line for line in str(screen.query_one("#model-state").render()).splitlines()
                         if str(last.get("action", "")) in line and line.strip())
        if size[1] >= 40:  # a tall terminal shows the whole history: the last row is on screen as it is
            assert scroll.max_scroll_y == 0 and last_line.strip()[:40] in screen_text(app)
            return
        assert last_line.strip() not in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y
        assert last_line.strip()[:40] in screen_text(app)
        await pilot.press("home", "pagedown")
        await pilot.pause()
        assert scroll.scroll_y > 0


@pytest.mark.parametrize("size", SIZES)
async def test_alerts_table_shows_version_and_ack_whole(size: tuple[int, int]) -> None:
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        await pilot.press("a")
        await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, AlertsScreen) else None,
                                    what="the alerts screen")
        await pilot.pause()
        acked = [a for a in app.fleet.alerts if a.get("ack")]
        assert acked, "the fixed document has an acked alert"
        text = screen_text(app)
        header = next(line for line in text.splitlines() if "rule" in line and "model" in line)
        assert "version" in header and "acked by" in header, header
        for alert in acked:
            row = next(line for line in text.splitlines() if alert["rule"] in line and alert["state"] in line)
            assert f" {alert['ack']['by']} " in row and alert["labels"]["model_version"] in row, row
