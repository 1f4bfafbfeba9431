"""The demo's process supervisor, with real child processes (small Python scripts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opsctl.demo.fleet import pid_alive
from opsctl.demo.supervisor import ChildSpec, RestartPolicy, Supervisor, SupervisorError
from tests.fixtures.wait import wait_for

PY = sys.executable


def script(body: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(body)]


@pytest.fixture
def supervisor(tmp_path: Path):  # type: ignore[no-untyped-def]
    sup = Supervisor(tmp_path / "logs", grace_seconds=2.0)
    try:
        yield sup
    finally:
        sup.stop_all()


def test_start_waits_for_readiness_and_stop_takes_the_whole_process_group(supervisor: Supervisor,
                                                                           tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    grandchild_pid = tmp_path / "grandchild.pid"
    child = supervisor.start(
        ChildSpec("parent", script(f"""
            import pathlib, subprocess, sys, time
            time.sleep(0.3)
            g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            pathlib.Path({str(grandchild_pid)!r}).write_text(str(g.pid))
            pathlib.Path({str(ready)!r}).write_text("ok")
            time.sleep(60)
        """)),
        ready=ready.exists,
        ready_timeout_seconds=20,
    )
    assert ready.exists() and child.running
    grandchild = int(grandchild_pid.read_text())
    assert pid_alive(grandchild)
    codes = supervisor.stop_all()
    assert codes == {"parent": -signal.SIGTERM}
    # The grandchild was in the child's process group: it is gone too, nothing is orphaned.
    wait_for(lambda: not pid_alive(grandchild), timeout=5, what="grandchild to be gone")


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs", grace_seconds=0.5)
    started = tmp_path / "started"
    sup.start(ChildSpec("stubborn", script(f"""
        import pathlib, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path({str(started)!r}).write_text("x")
        time.sleep(60)
    """)), ready=started.exists)
    before = time.monotonic()
    assert sup.stop_all() == {"stubborn": -signal.SIGKILL}
    assert 0.4 < time.monotonic() - before < 5


class SteppedClock:
    """The supervisor's monotonic clock, moved by the test: backoffs pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("enabled", [False, True], ids=["default-policy", "restart-on"])
def test_a_crashed_child_is_restarted_only_when_the_policy_says_so(tmp_path: Path, enabled: bool) -> None:
    # The default backoff, passed on the supervisor's clock: with restarts off nothing happens, and
    # the same steps with restarts on do restart the child (so the check can see a restart).
    backoff = RestartPolicy().backoff_seconds
    clock = SteppedClock()
    sup = Supervisor(tmp_path / "logs", restart=RestartPolicy(enabled=enabled), grace_seconds=2.0, monotonic=clock)
    try:
        child = sup.start(ChildSpec("server", script("import sys, time; time.sleep(0.2); sys.exit(70)"),
                                    exit_meanings={70: "the injected crash fault"}))
        first_pid = child.pid
        events = wait_for(sup.poll, timeout=10, what="the exit to be noticed")
        assert [(e.name, e.kind, e.exit_code) for e in events] == [("server", "exited", 70)]
        assert "the injected crash fault" in events[0].message
        assert ("not restarting" in events[0].message) is not enabled
        clock.now += backoff * 0.99
        assert sup.poll() == []  # inside the backoff: never a restart
        clock.now += backoff * 0.02
        events = sup.poll()
        if enabled:
            assert [(e.name, e.kind) for e in events] == [("server", "restarted")]
            assert child.restarts == 1 and child.pid != first_pid
        else:
            assert events == [] and child.restarts == 0 and not child.running and child.pid == first_pid
    finally:
        sup.stop_all()


def test_restart_policy_restarts_a_crashed_child_up_to_its_limit(tmp_path: Path) -> None:
    clock = SteppedClock()
    sup = Supervisor(tmp_path / "logs", restart=RestartPolicy(enabled=True, max_restarts=2, backoff_seconds=1.0),
                     monotonic=clock)
    try:
        child = sup.start(ChildSpec("flaky", script("import sys; sys.exit(3)")))
        seen: list[str] = []

        def settled() -> bool:
            clock.now += 1.0  # every backoff is over at the next poll
            seen.extend(f"{e.kind}:{e.exit_code}" for e in sup.poll())
            return seen.count("exited:3") == 3

        wait_for(settled, timeout=20, what="three exits")
        clock.now += 100.0  # long past any backoff: a third restart would be due now
        seen.extend(f"{e.kind}:{e.exit_code}" for e in sup.poll())
        assert seen == ["exited:3", "restarted:None", "exited:3", "restarted:None", "exited:3"]
        assert child.restarts == 2
    finally:
        sup.stop_all()


def test_restart_policy_leaves_a_clean_exit_alone(tmp_path: Path) -> None:
    clock = SteppedClock()
    sup = Supervisor(tmp_path / "logs", restart=RestartPolicy(enabled=True, backoff_seconds=0.0), monotonic=clock)
    try:
        child = sup.start(ChildSpec("done", script("pass")))
        events = wait_for(sup.poll, timeout=10, what="the exit")
        assert [e.kind for e in events] == ["exited"]
        clock.now += 100.0
        assert sup.poll() == [] and child.restarts == 0
    finally:
        sup.stop_all()


def test_a_child_dying_during_start_up_raises_with_its_log(supervisor: Supervisor) -> None:
    with pytest.raises(SupervisorError, match=r"(?s)broken exited during start-up \(exit code 5\).*cannot load model"):
        supervisor.start(ChildSpec("broken", script("import sys; print('cannot load model'); sys.exit(5)")),
                         ready=lambda: False)


def test_readiness_has_a_deadline(supervisor: Supervisor) -> None:
    started = time.monotonic()
    with pytest.raises(SupervisorError, match=r"slow not ready after 0\.5s"):
        supervisor.start(ChildSpec("slow", script("import time; time.sleep(60)")), ready=lambda: False,
                         ready_timeout_seconds=0.5)
    assert time.monotonic() - started < 5


def test_children_die_with_a_supervisor_killed_by_sigkill(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: no orphans even when the supervisor gets no chance to tear down."""
    pid_file = tmp_path / "child.pid"
    runner = subprocess.Popen(script(f"""
        import pathlib, sys, time
        from opsctl.demo.supervisor import ChildSpec, Supervisor
        sup = Supervisor(pathlib.Path({str(tmp_path / "logs")!r}))
        child = sup.start(ChildSpec("worker", [sys.executable, "-c", "import time; time.sleep(60)"]))
        pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(60)
    """), cwd=Path(__file__).resolve().parents[2])
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, what="the child's pid")
        child_pid = int(pid_file.read_text())
        assert pid_alive(child_pid)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
        wait_for(lambda: not pid_alive(child_pid), timeout=5, what="the orphan to die")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)


def test_the_trampoline_gives_a_foreign_child_the_parent_death_signal(tmp_path: Path) -> None:
    """What LocalPrometheus runs under in the demo: exec'd in place, so the pid is the real program's."""
    pid_file = tmp_path / "child.pid"
    runner = subprocess.Popen(script(f"""
        import pathlib, subprocess, sys, time
        from opsctl.demo.supervisor import with_parent_death_signal
        child = subprocess.Popen(with_parent_death_signal(["/bin/sleep", "60"]))
        pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(60)
    """), cwd=Path(__file__).resolve().parents[2])
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, what="the child's pid")
        child_pid = int(pid_file.read_text())
        wait_for(lambda: Path(f"/proc/{child_pid}/cmdline").read_bytes().startswith(b"/bin/sleep"),
                 timeout=10, what="the exec into sleep")
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
        wait_for(lambda: not pid_alive(child_pid), timeout=5, what="the orphan to die")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)


def test_stop_all_reports_each_child_newest_first(supervisor: Supervisor, tmp_path: Path) -> None:
    for name in ("first", "second"):
        ready = tmp_path / name
        supervisor.start(ChildSpec(name, script(f"import pathlib, time; pathlib.Path({str(ready)!r}).touch();"
                                                " time.sleep(60)")), ready=ready.exists)
    done = supervisor.start(ChildSpec("done", script("import sys; sys.exit(3)")))
    wait_for(lambda: done.process.poll() is not None, 10, what="the short child to exit")
    heard: list[tuple[str, str]] = []
    codes = supervisor.stop_all(lambda e: heard.append((e.child.spec.name, e.kind if e.kind == "stopping"
                                                        else e.message)))
    assert codes == {"done": 3, "second": -signal.SIGTERM, "first": -signal.SIGTERM}
    assert heard == [("done", "stopping"), ("done", "ok (it had stopped earlier: exit code 3)"),
                     ("second", "stopping"), ("second", "ok"), ("first", "stopping"), ("first", "ok")]
