"""Rows updated in place must draw exactly what a fresh app would draw from the same document."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opsctl.tui.feed import StatusArrived
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import NOW, alerts_document, document, fixed_app, health_document

pytestmark = pytest.mark.asyncio

MODELS = 57  # plus the fixed document's own rows: enough to scroll at 160x48


def _changed(doc: dict[str, Any], long: bool) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    changed["models"][5]["production_version"] = "9.9.9-a-much-longer-version-string" if long else "9.9.9"
    changed["models"][40]["canary_version"], changed["models"][40]["canary_weight"] = "8.1.0", 25.0
    return changed


async def _screen(first: dict[str, Any], then: dict[str, Any] | None, scroll: bool) -> str:
    app = fixed_app(models=MODELS)
    async with app.run_test(size=(160, 48)) as pilot:
        total = len(first["models"])
        await wait_for_app(pilot, lambda: app.overview.ready and app.overview.table.row_count == total,
                           what="the overview's rows")
        alerts, health = alerts_document(), health_document(MODELS)
        app.on_status_arrived(StatusArrived(first, [], NOW, alerts=alerts, health=health))
        await pilot.pause()
        if scroll:
            app.overview.table.move_cursor(row=45)
            await pilot.pause()
        if then is not None:
            app.on_status_arrived(StatusArrived(then, [], NOW, alerts=alerts, health=health))
            await pilot.pause()
        # Settled: a widened column can bring a scrollbar one refresh later (and the cursor is scrolled back
        # into view after it), so compare only frames that no longer change.
        # Under load one quiet 50 ms is no proof of a settled screen, so ask for several in a row.
        shot, unchanged = app.export_screenshot(), 0
        for _ in range(200):
            await pilot.pause(0.05)
            again = app.export_screenshot()
            unchanged = unchanged + 1 if again == shot else 0
            if unchanged == 5:
                return shot
            shot = again
        raise AssertionError("the screen kept changing for 10 s")


@pytest.mark.parametrize("long", [False, True], ids=["fits", "wider-than-column"])
@pytest.mark.parametrize("scroll", [False, True], ids=["top", "scrolled"])
async def test_in_place_updates_draw_what_a_fresh_app_draws(long: bool, scroll: bool) -> None:
    base = document(MODELS)
    updated = await _screen(base, _changed(base, long), scroll)
    fresh = await _screen(_changed(base, long), None, scroll)
    # The changed row in view: row 5's new version at the top, row 40's new canary when scrolled.
    assert ("8.1.0" if scroll else "9.9.9") in updated
    assert updated == fresh
