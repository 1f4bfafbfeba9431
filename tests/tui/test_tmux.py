"""A person at a terminal: the real `opsctl` in tmux against a real daemon, keys sent, screens captured."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.cli import OPSCTL
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for
from tests.tui.helpers import seed
from tests.tui.test_actions import busy_daemon, start_canary

__all__ = ["busy_daemon"]  # a fixture shared with test_actions

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self) -> None:
        self.base = ["tmux", "-L", f"opsctl-test-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=check, timeout=10)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui").stdout

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "tui", *keys)

    def type(self, text: str) -> None:
        self("send-keys", "-t", "tui", "-l", "--", text)

    def wait_for_screen(self, *needles: str, timeout: float = 10) -> str:
        def shown() -> str | None:
            screen = self.screen()
            return screen if all(n in screen for n in needles) else None

        return wait_for(shown, timeout=timeout, what=f"{needles} on screen",
                        context=lambda: f"the screen was:\n{self.screen()}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    try:
        yield session
    finally:
        session("kill-server", check=False)


def test_open_pick_a_model_roll_it_back(daemon: DaemonProcess, tmux: Tmux) -> None:
    seed(daemon)
    script = daemon.env.root / "tui.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in daemon.env.env.items()
                      if k in ("OPSCTL_CONFIG", "NO_COLOR", "PATH", "HOME", "LANG", "LC_ALL"))
    script.write_text(f"{exports}exec {shlex.quote(OPSCTL)}\n")
    tmux("new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", f"sh {shlex.quote(str(script))}")

    screen = tmux.wait_for_screen("fraud-detector", "churn", "daemon up")
    assert "PRODUCTION" in screen  # [ui] production defaults to true: the context says so

    tmux.keys("Down")  # rows are sorted: churn, fraud-detector
    tmux.wait_for_screen("─ fraud-detector ─")
    tmux.keys("Enter")  # the registry for the model
    screen = tmux.wait_for_screen("versions", "previous 1.0.0")
    assert "1.1.0" in screen and "production" in screen
    tmux.keys("Escape")
    tmux.wait_for_screen("─ events ─")

    tmux.keys("r")
    screen = tmux.wait_for_screen("Roll back fraud-detector", "1.1.0 -> 1.0.0")
    assert 'CLI: opsctl rollback fraud-detector --reason "..." --yes' in screen
    tmux.wait_for_screen("Enter on Cancel closes")  # focus starts on Cancel
    tmux.keys("Tab")
    tmux.wait_for_screen("next, the model name")
    tmux.type("tmux drill")
    tmux.wait_for_screen('--reason "tmux drill" --yes')
    tmux.keys("Enter")
    tmux.wait_for_screen("Enter confirms when the name matches")
    tmux.type("fraud-detector")
    tmux.wait_for_screen('--reason "tmux drill" --yes')
    tmux.keys("Enter")
    screen = tmux.wait_for_screen("rollback fraud-detector 1.1.0 -> 1.0.0 by", "(tmux drill)")  # the live audit feed
    assert "Roll back fraud-detector" not in screen  # the dialog closed
    assert "fraud-detector  1.0.0" in screen  # the overview row, updated in place

    history = daemon.env.run("history", "fraud-detector", "-o", "json").json()
    assert (history[-1]["action"], history[-1]["reason"], history[-1]["to_version"]) == (
        "rollback", "tmux drill", "1.0.0")

    tmux.keys("q")
    wait_for(lambda: tmux("has-session", "-t", "tui", check=False).returncode != 0, timeout=10,
             what="opsctl to quit on q")


def test_open_pick_a_model_see_its_canary_abort_it(busy_daemon: DaemonProcess, tmux: Tmux) -> None:
    seed(busy_daemon)
    start_canary(busy_daemon)
    script = busy_daemon.env.root / "tui.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in busy_daemon.env.env.items()
                      if k in ("OPSCTL_CONFIG", "NO_COLOR", "PATH", "HOME", "LANG", "LC_ALL"))
    script.write_text(f"{exports}exec {shlex.quote(OPSCTL)}\n")
    tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", f"sh {shlex.quote(str(script))}")

    tmux.wait_for_screen("fraud-detector", "churn", "daemon up", "1.2.0 5%")  # the canary's weight in the row
    tmux.keys("Down")  # rows are sorted: churn, fraud-detector
    tmux.wait_for_screen("─ fraud-detector ─")
    tmux.keys("Enter")
    tmux.wait_for_screen("1 registry", "3 canary")
    tmux.keys("3")
    # The footer offers the abort while it runs (the footer repaints a frame after the panel).
    screen = tmux.wait_for_screen("canary: 1.2.0 progressing", "stage 1/", "x Abort")

    tmux.keys("x")
    screen = tmux.wait_for_screen("Abort the canary of fraud-detector", "Enter on Cancel closes")
    assert "CLI: opsctl canary abort fraud-detector" in screen
    tmux.keys("Tab")
    tmux.wait_for_screen("Enter: next")
    tmux.type("tmux drill")
    tmux.wait_for_screen('--reason "tmux drill"')
    tmux.keys("Enter")
    tmux.wait_for_screen("Enter confirms when the name matches")
    tmux.type("fraud-detector")
    tmux.wait_for_screen('--reason "tmux drill"')
    tmux.keys("Enter")
    screen = tmux.wait_for_screen("canary: 1.2.0 aborted")
    assert "Abort the canary" not in screen  # the dialog closed
    wait_for(lambda: "x Abort" not in tmux.screen(), timeout=5,
             what="the footer to stop offering the abort")

    canary = busy_daemon.http().get("/v1/canaries", params={"model": "fraud-detector"}).json()[0]
    assert (canary["phase"], canary["weight"]) == ("aborted", 0.0)
    history = busy_daemon.env.run("history", "fraud-detector", "-o", "json").json()
    aborted = [e for e in history if "abort" in e["action"]]
    assert aborted and aborted[-1]["reason"] == "tmux drill"

    tmux.keys("q")
    wait_for(lambda: tmux("has-session", "-t", "tui", check=False).returncode != 0, timeout=10,
             what="opsctl to quit on q")
