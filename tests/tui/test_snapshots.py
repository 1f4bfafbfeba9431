"""Snapshots of the main screens at 80x24 and 160x48, from a fixed document and a frozen clock.

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and
review the SVGs in ``__snapshots__`` like code.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from opsctl.tui.dialogs import ActionDialog, ChangeDialog
from opsctl.tui.screens import AlertsScreen, ModelScreen
from tests.fixtures.wait import wait_for_app
from tests.tui.fixed import fixed_app

SIZES = [(80, 24), (160, 48)]


async def _loaded(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for_app(pilot, lambda: app.overview.ready and app.overview.table.row_count == 3 and app.first_status
                       and (app.connected or app.connection_error), what="the fixed document")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_overview(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", SIZES)
def test_registry(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_registry(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        pilot.app.overview.select("fraud-detector")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for_app(pilot, lambda: isinstance(pilot.app.screen, ModelScreen) and pilot.app.screen.versions,
                           what="versions")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=size, run_before=open_registry)


def test_rollback_dialog(snap_compare: Any) -> None:
    async def open_dialog(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        pilot.app.overview.select("fraud-detector")  # type: ignore[attr-defined]
        await pilot.press("r")
        await wait_for_app(pilot, lambda: isinstance(pilot.app.screen, ChangeDialog) and pilot.app.screen.plan,
                           what="the plan")
        await pilot.press("tab", *"p95 over SLA")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=open_dialog)


def test_daemon_unreachable_banner(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(up=False), terminal_size=(80, 24), run_before=_loaded)


def test_read_only_non_production(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(read_only=True, production=False), terminal_size=(160, 48), run_before=_loaded)


def test_help(snap_compare: Any) -> None:
    async def help_screen(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=help_screen)


def test_terminal_too_small(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(60, 20), run_before=_loaded)


async def _model_tab(pilot: Pilot[Any], tab: str) -> None:
    await _loaded(pilot)
    pilot.app.open_model("fraud-detector")  # type: ignore[attr-defined]
    await wait_for_app(pilot, lambda: isinstance(pilot.app.screen, ModelScreen) and pilot.app.screen.versions
                       and pilot.app.screen.drift is not None and pilot.app.screen.runs is not None, what="documents")
    await pilot.press(tab)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_canary_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    async def canary(pilot: Pilot[Any]) -> None:
        await _model_tab(pilot, "3")

    assert snap_compare(fixed_app(), terminal_size=size, run_before=canary)


@pytest.mark.parametrize("size", SIZES)
def test_sla_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    async def sla(pilot: Pilot[Any]) -> None:
        await _model_tab(pilot, "2")

    assert snap_compare(fixed_app(), terminal_size=size, run_before=sla)


def test_drift_tab(snap_compare: Any) -> None:
    async def drift(pilot: Pilot[Any]) -> None:
        await _model_tab(pilot, "4")

    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=drift)


@pytest.mark.parametrize("size", SIZES)
def test_alerts(snap_compare: Any, size: tuple[int, int]) -> None:
    async def alerts(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        await pilot.press("a")
        await wait_for_app(pilot, lambda: isinstance(pilot.app.screen, AlertsScreen), what="the alerts screen")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=size, run_before=alerts)


def test_canary_abort_dialog(snap_compare: Any) -> None:
    async def abort(pilot: Pilot[Any]) -> None:
        await _model_tab(pilot, "3")
        await pilot.press("x")
        await wait_for_app(pilot, lambda: isinstance(pilot.app.screen, ActionDialog), what="the dialog")
        await pilot.press("tab", *"latency regression")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=abort)
