"""A paused canary says what to do next on the canary tab: wait for the samples its gates still need, or resume,
promote or abort, each with its key here and the equivalent CLI command."""

from __future__ import annotations

from typing import Any

import pytest

from opsctl.tui.screens import ModelScreen
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import fixed_app
from tests.tui.helpers import screen_text

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_paused_canary_shows_next_steps_with_cli_commands(size: tuple[int, int]) -> None:
    app: Any = fixed_app()  # fraud-detector's canary 1.2.0: paused, latency gate at 412 of 600 samples
    async with app.run_test(size=size) as pilot:
        await wait_for_app(pilot, lambda: app.overview.ready and app.first_status, what="the fixed document")
        app.open_model("fraud-detector")
        await wait_for_app(pilot, lambda: isinstance(app.screen, ModelScreen) and app.screen.versions,
                           what="the model screen")
        await pilot.press("3")
        text = await wait_for_app(pilot, lambda: (screen_text(app) if "canary: 1.2.0 paused" in screen_text(app)
                                                  else None), what="the canary tab")
        assert "next: wait until the samples arrive (latency_p95 412/600 samples)" in text
        for key, command in (("u", "resume"), ("g", "promote"), ("x", "abort")):
            assert f"{key} " in text and f"opsctl canary {command} fraud-detector --reason TEXT" in text, command
        assert "opsctl canary pause" not in text  # already paused: not offered
