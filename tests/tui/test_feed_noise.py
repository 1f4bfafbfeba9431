"""The event feed carries news: a periodic check's event enters it only when its verdict changed, so a health
transition stays on screen while drift and performance checks keep running every 30 s."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from opsctl.clock import utc_iso
from opsctl.tui.feed import EventArrived
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import NOW, fixed_app
from tests.tui.helpers import screen_text

pytestmark = pytest.mark.asyncio


async def _loaded(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for_app(pilot, lambda: app.overview.ready and app.overview.table.row_count == 3 and app.first_status,
                       what="the fixed document")


def _event(app: Any, number: int, kind: str, data: dict[str, Any]) -> None:
    app.post_message(EventArrived(kind, {"id": number, "at": utc_iso(NOW), "data": data}, NOW))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_heartbeats_do_not_push_a_health_transition_off_the_feed(size: tuple[int, int]) -> None:
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        _event(app, 1, "health", {"model": "fraud-detector", "version": "1.1.0", "previous": "healthy",
                                  "status": "degraded"})
        for number in range(2, 42, 2):  # ten minutes of drift and performance checks finding the same thing
            _event(app, number, "drift", {"model": "fraud-detector", "version": "1.1.0", "verdict": "no_drift",
                                          "previous": "no_drift", "drifted_features": []})
            _event(app, number + 1, "performance", {"model": "churn", "version": "2.0.0", "verdict": "ok",
                                                    "previous": "ok"})
        _event(app, 50, "health", {"model": "churn", "version": "2.0.0", "previous": "healthy",
                                   "status": "healthy"})
        _event(app, 51, "drift", {"model": "fraud-detector", "version": "1.1.0", "verdict": "drift",
                                  "previous": "no_drift", "drifted_features": ["amount", "country"]})
        feed = app.overview.query_one("#feed")
        await wait_for_app(pilot, lambda: "no_drift -> drift" in str(feed.render()), what="the drift verdict change")
        await pilot.pause()
        assert "health fraud-detector 1.1.0 healthy -> degraded" in screen_text(app)  # still on screen
        assert "no_drift -> drift (2 features: amount, country)" in str(feed.render())
        lines = [str(e) for e in app.fleet.feed.values() if e["kind"] in ("drift", "performance", "health")]
        assert len(lines) == 2, lines  # the two changes; no heartbeat, no unchanged health
