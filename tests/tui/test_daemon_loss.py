"""With the daemon away: the banner counts down to the next try, action keys say what happened (and what still
works) instead of doing nothing, the footer offers no action, and relative times keep counting.

The fixed document's feed (no daemon: it reports the daemon down once, with a 1 s retry) and a manual clock make
every second explicit; tests/tui/test_live.py kills a real daemon for the retries themselves.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from opsctl.tui.screens import ModelScreen
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import fixed_app
from tests.tui.helpers import press_expecting_no_dialog, screen_text

pytestmark = pytest.mark.asyncio

SIZES = [(80, 24), (120, 40)]


async def _loaded(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for_app(pilot, lambda: app.overview.ready and app.overview.table.row_count == 3 and app.first_status
                       and app.connection_error, what="the fixed document, daemon down")
    await pilot.pause()


def _flat(app: Any) -> str:
    return " ".join(screen_text(app).split())


@pytest.mark.parametrize("size", SIZES)
async def test_banner_counts_down_to_the_next_try(size: tuple[int, int]) -> None:
    app = fixed_app(up=False)
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        app.tick()
        await pilot.pause()
        assert "retry in 1s" in _flat(app)
        app.clock.advance(1.5)
        app.tick()
        await pilot.pause()
        assert "retry in" not in _flat(app) and "retrying now" in _flat(app)


@pytest.mark.parametrize("size", SIZES)
async def test_rollback_key_with_the_daemon_down_says_what_happened(size: tuple[int, int]) -> None:
    app = fixed_app(up=False)
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        app.overview.select("fraud-detector")
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "Rollback" not in footer and "Promote" not in footer, footer  # nothing offered that cannot act
        await press_expecting_no_dialog(pilot, "r")
        messages = [n.message for n in app._notifications]
        assert any("nothing done, the daemon is unreachable" in m and "`opsctl rollback fraud-detector`" in m
                   and "sudo systemctl start opsctl" in m for m in messages), messages

        app.open_model("fraud-detector")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen), what="the model screen")
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "Rollback" not in footer and "Abort" not in footer, footer


async def test_the_clock_ticking_while_the_app_quits_over_a_model_screen_raises_nothing() -> None:
    # Quitting removes the model screen's widgets before the screen itself is unmounted, and the
    # once-a-second tick may land in between: that once crashed the TUI on the way out.
    app = fixed_app(up=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        app.open_model("fraud-detector")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ModelScreen) else None,
                                    what="the model screen")
        await wait_for_app(pilot, lambda: screen.ready, what="the model screen mounted")
        await screen.query_one("#model-title").remove()
        app.tick()
        await pilot.pause()
        assert app.screen is screen and app.return_code is None


@pytest.mark.parametrize("size", SIZES)
async def test_relative_times_keep_counting_without_new_documents(size: tuple[int, int]) -> None:
    app = fixed_app(up=False)
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        app.open_model("fraud-detector")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ModelScreen) else None,
                                    what="the model screen")
        await pilot.press("3")
        await pilot.pause()
        before = str(screen.query_one("#canary-detail").render())
        assert "30s ago" in before, before
        app.clock.advance(5)
        app.tick()
        await pilot.pause()
        after = str(screen.query_one("#canary-detail").render())
        assert "35s ago" in after and "30s ago" not in after, after
