"""DemoControl (and the TUI's game day on top of it) against a real demo model server.

The server is a real ``opsctl.demo.server`` process; ``demo.json`` is written by the test with this
process as the supervisor (the real supervisor, with Prometheus and the daemon, is exercised by
tests/demo/test_demo_e2e.py through ``opsctl demo fault|clear|status``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.demo.control import DemoControl
from opsctl.demo.faults import FAULT_KINDS, Fault, FaultKind
from opsctl.demo.fleet import DemoState, FleetLayout, ServerState, write_state
from opsctl.errors import NotFoundError, OpsctlError, UsageError
from opsctl.tui.gameday import GameDay
from tests.demo.test_server import MODEL, RunningServer, artifacts, start_server  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory,
            artifacts: dict[str, tuple[Path, str]]) -> Iterator[tuple[FleetLayout, RunningServer]]:  # noqa: F811
    root = tmp_path_factory.mktemp("demo")
    server = start_server(root / "server", artifacts)
    layout = FleetLayout.at(root)
    me = os.getpid()
    write_state(layout, DemoState(
        supervisor_pid=me, state_dir=str(root), config=str(layout.config), prometheus_url="http://127.0.0.1:1",
        prometheus_pid=me, daemon_pid=me, daemon_socket=str(layout.socket), traffic_pid=None,
        servers=(ServerState(MODEL, ("1.0.0", "1.1.0"), server.port, server.process.pid),)))
    yield layout, server
    server.stop()


@pytest.fixture
def demo(running: tuple[FleetLayout, RunningServer]) -> Iterator[DemoControl]:
    with DemoControl(running[0]) as control:
        yield control
        control.clear(MODEL)  # no fault leaks into the next test


def test_inject_reaches_the_server_and_status_and_clear_report_it(demo: DemoControl,
                                                                   running: tuple[FleetLayout, RunningServer]) -> None:
    injected = demo.inject(MODEL, "latency", level=0.2, versions=["1.1.0"])
    assert [(r.server.port, r.fault, r.exiting) for r in injected] == [
        (running[1].port, Fault(FaultKind.LATENCY, 0.2, ("1.1.0",)), False)]
    (server,) = demo.status().servers
    assert server.running and server.faults == (Fault(FaultKind.LATENCY, 0.2, ("1.1.0",)),)
    (cleared,) = demo.clear(MODEL, "latency")
    assert cleared.cleared == (Fault(FaultKind.LATENCY, 0.2, ("1.1.0",)),)
    (server,) = demo.status().servers
    assert server.faults == ()
    assert demo.status().to_json()["servers"][0]["faults"] == []


def test_bad_requests_are_usage_errors_and_unknown_models_not_found(demo: DemoControl) -> None:
    with pytest.raises(UsageError, match="fault kind must be one of"):
        demo.inject(MODEL, "meteor")
    with pytest.raises(UsageError, match="drift faults only"):
        demo.inject(MODEL, "errors", features=["tenure_months"])
    with pytest.raises(UsageError, match="errors level is a fraction"):
        demo.inject(MODEL, "errors", level=3.0)  # refused by the server itself
    with pytest.raises(NotFoundError, match="this demo serves churn"):
        demo.inject("fraud-detector", "errors")
    assert demo.status().servers[0].faults == ()


def test_no_running_demo_is_not_found(tmp_path: Path) -> None:
    with DemoControl(FleetLayout.at(tmp_path)) as control:
        assert control.models() == []
        with pytest.raises(NotFoundError, match="start one with `opsctl demo"):
            control.status()


def test_a_server_that_does_not_answer_is_an_error_never_no_faults(tmp_path: Path) -> None:
    layout = FleetLayout.at(tmp_path)
    me = os.getpid()
    # Port 1 refuses; the pid is ours, so the process counts as alive and the answer as missing.
    write_state(layout, DemoState(me, str(tmp_path), str(layout.config), "http://127.0.0.1:1", me, me,
                                  str(layout.socket), None, (ServerState(MODEL, ("1.0.0",), 1, me),)))
    with DemoControl(layout) as control:
        with pytest.raises(OpsctlError, match="does not answer"):
            control.inject(MODEL, "errors")
        (server,) = control.status().servers
        assert server.running and server.faults is None


def test_the_game_day_finds_the_demo_from_the_daemons_state_dir_and_injects(
        demo: DemoControl, running: tuple[FleetLayout, RunningServer]) -> None:
    layout, server = running
    game_day = GameDay.detect([None, layout.daemon_state])  # the status document names the daemon's state dir
    assert game_day is not None and game_day.models() == [MODEL]
    assert game_day.inject(MODEL, "errors") == (f"injected errors (level 0.5) into {MODEL} at"
                                                f" http://127.0.0.1:{server.port}")
    assert [f.kind for f in demo.status().servers[0].faults or ()] == ["errors"]
    assert game_day.clear(MODEL) == f"cleared errors on {MODEL} at http://127.0.0.1:{server.port}"
    assert "crash" in FAULT_KINDS and GameDay.detect([layout.root / "elsewhere" / "deeper"]) is None
