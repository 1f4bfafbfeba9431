"""Starting a canary from the model screen: `c` (and `p`, the safe default) asks for a reason in a dialog that shows
the CLI equivalent; `P` promotes directly only behind the typed-name confirmation; the palette offers it too."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable

from opsctl.tui.app import OpsctlCommands
from opsctl.tui.dialogs import ActionDialog, ChangeDialog
from opsctl.tui.screens import ModelScreen
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import fixed_app
from tests.tui.helpers import screen_text

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_start_a_canary_from_the_model_screen(size: tuple[int, int]) -> None:
    app: Any = fixed_app()
    async with app.run_test(size=size) as pilot:
        await wait_for_app(pilot, lambda: app.overview.ready and app.first_status and app.connected,
                           what="the fixed document")
        app.open_model("fraud-detector")
        screen = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ModelScreen)
                                    and app.screen.versions else None, what="the model screen")
        table = screen.query_one("#versions", DataTable)
        assert screen.highlighted == "1.1.0"  # production: nothing to canary
        await pilot.press("c")
        await pilot.pause()
        assert app.screen is screen and any("already in production" in n.message for n in app._notifications)

        table.move_cursor(row=table.get_row_index("1.2.0"))
        await pilot.pause()
        for key in ("c", "p"):  # p goes through a canary too
            await pilot.press(key)
            dialog = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ActionDialog) else None,
                                        what="the canary dialog")
            assert dialog.action_.name == "canary.start" and dialog.action_.args == ("fraud-detector", "1.2.0")
            assert app.focused is not None and app.focused.id == "cancel"
            assert "opsctl canary start fraud-detector 1.2.0 --reason" in " ".join(screen_text(app).split())
            await pilot.press("escape")
            await wait_for_app(pilot, lambda: app.screen is screen, what="the dialog to close")

        await pilot.press("P")  # the direct promote: only behind the model name typed out
        change = await wait_for_app(pilot, lambda: app.screen if isinstance(app.screen, ChangeDialog) else None,
                                    what="the promote dialog")
        assert change.query("#confirm-name")
        await pilot.press("escape")
        await wait_for_app(pilot, lambda: app.screen is screen, what="the dialog to close")

        names = [name for name, _, _ in OpsctlCommands(app.screen)._commands()]
        assert "canary start fraud-detector 1.2.0" in names and "canary start fraud-detector 1.1.0" not in names
