"""The overview's drift column against a real daemon: the verdicts its drift job computed from logged traffic.

Versions registered with a reference CSV through the CLI, traffic written with the real SDK logger into the
folder the daemon ingests; the TUI (Pilot) reads the status document's ``drift`` section and the ``drift``
events that follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.client import DaemonClient
from opsctl.tui.app import OpsctlApp
from opsctl.tui.feed import DaemonFeed
from tests.daemon.test_drift_subsystem import CONFIG, deploy, log_predictions, traffic
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for, wait_for_app
from tests.tui.helpers import cell, screen_text

pytestmark = pytest.mark.asyncio


@pytest.fixture
def env(tmp_path: Path) -> OpsctlEnv:
    env = make_opsctl_env(tmp_path / "opsctl", CONFIG)
    (env.root / "logs").mkdir()
    return env


@pytest.fixture
def daemon(env: OpsctlEnv) -> Iterator[DaemonProcess]:
    process = DaemonProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


def model_verdict(daemon: DaemonProcess, model: str) -> str | None:
    """The ``drift`` section of ``/v1/status``, read through the typed client."""
    client = DaemonClient(socket_path=str(daemon.env.socket))
    try:
        section = client.status().drift
    finally:
        client.close()
    assert section is not None, "the daemon publishes no drift section"
    found = section.by_model().get(model)
    return None if found is None else found.verdict


async def test_overview_shows_each_models_drift_verdict(env: OpsctlEnv, daemon: DaemonProcess) -> None:
    logs = env.root / "logs"
    deploy(env, "stable")
    deploy(env, "shifted")
    # No traffic yet: the check has nothing to compare, which is "unknown", never "ok".
    wait_for(lambda: model_verdict(daemon, "shifted") == "insufficient_data", timeout=20,
             what="a first drift check without traffic")

    app = OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=60), environment="test", production=False,
                    animate=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for_app(pilot, lambda: app.overview.table.row_count == 2, what="both models")
        assert cell(app, "shifted", "drift") == "unknown"
        assert cell(app, "stable", "drift") == "unknown"

        # Traffic arrives while the TUI is open: the drift job's events move the cells (the next status
        # fetch is a minute away, so only the events can).
        log_predictions(logs, "stable", traffic(600, seed=3))
        log_predictions(logs, "shifted", traffic(600, shift=1.0, seed=4))
        await wait_for_app(pilot, lambda: cell(app, "shifted", "drift") == "DRIFT", timeout=30,
                       what="the shifted model's drift verdict")
        await wait_for_app(pilot, lambda: cell(app, "stable", "drift") == "ok", timeout=30,
                       what="the stable model's verdict")
        app.overview.table.move_cursor(row=app.overview.table.get_row_index("shifted"))
        await wait_for_app(pilot, lambda: "drift: v1 drift (x1, prediction_score, predicted_class)" in screen_text(app),
                       what="the detail panel's drifted features")

    # A TUI started now reads the same verdicts from the status document alone.
    assert model_verdict(daemon, "shifted") == "drift"
    fresh = OpsctlApp(DaemonFeed(str(daemon.env.socket), refresh_seconds=60), environment="test",
                      production=False, animate=False)
    async with fresh.run_test(size=(80, 24)) as pilot:
        await wait_for_app(pilot, lambda: fresh.overview.table.row_count == 2, what="both models")
        await wait_for_app(pilot, lambda: cell(fresh, "shifted", "drift") == "DRIFT", what="drift from the status")
        assert cell(fresh, "stable", "drift") == "ok"
