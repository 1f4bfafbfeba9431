"""The on-call drill of issue 15, by keyboard: the real `opsctl` TUI in tmux against `opsctl demo` (a real
Prometheus, model servers, traffic, the daemon). From the TUI: start a canary (`:` canary, with `--set`
overrides), watch it promote; silence an alert and end the silence; approve a retrain run awaiting approval.
Each is then checked in the audit log (`opsctl history -o json`).

Faster than the demo's defaults only where the demo documents it: `--rate 20` (requests per second per
model) and, for this canary, `--set stages=[50,100] min_stage_seconds=10` (the gates and their margins are the
demo's own). The retrain is the demo's fraud-detector training on 12000 rows (as
tests/demo/test_canary_retrain_e2e.py does, so the candidate clears the 0.01 AUC margin), with
`approval_before_canary` so the run waits for a person.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.demo.test_canary_retrain_e2e import _start
from tests.demo.test_demo_e2e import Demo
from tests.fixtures.cli import OPSCTL
from tests.fixtures.wait import wait_for
from tests.tui.test_tmux import Tmux, tmux

__all__ = ["tmux"]  # the fixture from test_tmux

ME = pwd.getpwuid(os.getuid()).pw_name
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-tui-drill"),
              pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("prometheus") is None,
                                 reason="needs tmux and Debian's prometheus binary")]

EXTRA = """\
[retrain.models.fraud-detector]
approval_before_canary = true

[retrain.models.fraud-detector.params]
n_samples = "12000"
"""


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    extra = tmp_path / "extra.toml"
    extra.write_text(EXTRA, encoding="utf-8")
    running = Demo(tmp_path / "demo-state")
    running.start_args = ["--rate", "20", "--config-extra", str(extra)]  # type: ignore[attr-defined]
    try:
        _start(running)
        yield running
    finally:
        running.kill_everything()


def _json(demo: Demo, *args: str) -> Any:
    result = demo.opsctl(*args, "-o", "json")
    return json.loads(result.stdout)


def _canary(demo: Demo) -> dict[str, Any]:
    document = _json(demo, "canary", "status", "fraud-detector")
    return document[0] if isinstance(document, list) else document  # type: ignore[no-any-return]


def test_canary_silence_and_approval_from_the_tui_on_the_demo(demo: Demo, tmux: Tmux) -> None:
    started = time.monotonic()
    # An alert to silence: churn-predictor's production answers errors, so its SLA degrades.
    assert demo.opsctl("demo", "fault", "churn-predictor", "errors").returncode == 0
    script = demo.root.parent / "tui.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in demo.env.items()
                      if k in ("OPSCTL_CONFIG", "NO_COLOR", "PATH", "HOME", "LANG", "LC_ALL"))
    # COLUMNS/LINES from the test runner's environment would pin Textual to 80x24 whatever the pane's size.
    script.write_text(f"{exports}unset COLUMNS LINES\nexec {shlex.quote(OPSCTL)}\n")
    tmux("new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", f"sh {shlex.quote(str(script))}")
    # No client is attached: keep the size asked for (tmux may otherwise fall back to 80x24).
    tmux("set-option", "-g", "window-size", "manual")
    tmux("resize-window", "-t", "tui", "-x", "120", "-y", "40")
    tmux.wait_for_screen("churn-predictor", "fraud-detector", "daemon up", timeout=30)

    # 1. `:` canary on the overview, with --set overrides, for the highlighted model's candidate.
    tmux.keys("Down")  # rows are sorted: churn-predictor, fraud-detector
    tmux.wait_for_screen("─ fraud-detector ─")
    tmux.keys(":")
    tmux.type("canary")
    tmux.wait_for_screen("start a canary of fraud-detector")
    tmux.keys("Enter")
    tmux.wait_for_screen("Start a canary of fraud-detector 1.1.0", "Enter on Cancel closes", timeout=15)
    tmux.keys("Tab")
    tmux.wait_for_screen("Enter: next")  # the reason field has the focus
    tmux.type("drill: healthy candidate")
    tmux.wait_for_screen('--reason "drill: healthy')
    tmux.keys("Tab")
    # Keys typed before the focus moved would land in the reason: wait until the overrides field has it.
    tmux.wait_for_screen("KEY=VALUE pairs separated by spaces")
    tmux.type("--set stages=[50,100] min_stage_seconds=10")  # (typos refused inline: test_palette_canary.py)
    screen = tmux.wait_for_screen("--set 'stages=[50,100]'", "min_stage_seconds=10")
    assert "opsctl canary start fraud-detector 1.1.0 --set 'stages=[50,100]'" in screen, screen
    tmux.keys("Enter")
    wait_for(lambda: _canary(demo).get("canary_version") == "1.1.0", 15, 0.5, what="the canary started",
             context=demo.tail)
    assert _canary(demo)["weight"] == 50.0

    # 2. While it runs: silence churn-predictor's alert from the alerts screen, list the silence, end it.
    tmux.keys("a")
    tmux.wait_for_screen("─ alerts", "ModelSlaDegraded", timeout=60)
    for _ in range(6):
        if "model=churn-predictor" in tmux.screen():
            break
        tmux.keys("Down")
        time.sleep(0.2)  # the detail panel follows the cursor; a person would glance too
    tmux.wait_for_screen("model=churn-predictor")
    tmux.keys("s")
    tmux.wait_for_screen("Silence alertname=ModelSlaDegraded", "Enter on Cancel closes")
    tmux.keys("Tab")
    tmux.wait_for_screen("Enter: next")
    tmux.type("drill: known errors fault")
    tmux.wait_for_screen('"drill: known errors')
    tmux.keys("Enter")
    tmux.wait_for_screen("alert.silence")
    tmux.keys("S")
    tmux.wait_for_screen("silences in force", "drill: known errors fault", "model=churn-predictor")
    tmux.keys("e")
    tmux.wait_for_screen("End silence", "Enter on Cancel closes")
    tmux.keys("Tab")
    tmux.wait_for_screen("Enter: next")
    tmux.type("drill: fault cleared")
    tmux.wait_for_screen('--reason "drill: fault')
    tmux.keys("Enter")
    tmux.wait_for_screen("no silence in force")
    assert demo.opsctl("demo", "clear", "churn-predictor").returncode == 0
    tmux.keys("Escape")
    tmux.keys("Escape")
    tmux.wait_for_screen("─ events ─")

    # 3. The canary promotes on its own (its gates pass on the demo's healthy traffic).
    final = wait_for(lambda: (lambda c: c if c.get("state") in ("succeeded", "rolled_back", "aborted", "failed")
                              else None)(_canary(demo)), 120, 1.0, what="the canary's decision", context=demo.tail)
    assert final["state"] == "succeeded", final
    tmux.wait_for_screen("─ fraud-detector ─", "production 1.1.0", timeout=15)  # the detail panel

    # 4. A retrain run awaiting approval, approved from the model screen.
    run = _json(demo, "retrain", "fraud-detector", "--wait", "--timeout", "90")
    assert run["status"] == "awaiting_approval", run
    tmux.keys("Enter")  # open fraud-detector (still highlighted)
    tmux.wait_for_screen("1 registry", "previous")
    tmux.keys("5")
    tmux.wait_for_screen("awaits approval", timeout=20)
    tmux.keys("y")
    tmux.wait_for_screen(f"Approve retrain run {run['id']}", "Enter on Cancel closes")
    tmux.keys("Tab")
    tmux.wait_for_screen("Enter: next")
    tmux.type("drill: numbers look right")
    tmux.wait_for_screen('--reason "drill: numbers')
    tmux.keys("Enter")
    tmux.wait_for_screen("canary_started", timeout=20)
    tmux.keys("q")
    elapsed = time.monotonic() - started

    history = _json(demo, "history", "-n", "500")
    mine = [e for e in history if e["actor"] == ME]
    def entry(action: str, reason: str) -> dict[str, Any]:
        return next(e for e in mine if e["action"] == action and e["reason"] == reason)

    assert entry("canary_start", "drill: healthy candidate")["to_version"] == "1.1.0"
    assert any(e["action"] == "canary_succeeded" and e["model"] == "fraud-detector" for e in history)
    assert entry("alert.silence", "drill: known errors fault")["model"] == "churn-predictor"
    assert entry("alert.unsilence", "drill: fault cleared")["model"] == "churn-predictor"
    assert entry("retrain-approve", "drill: numbers look right")["to_version"] == run["candidate_version"]
    print(f"\ndrill from the TUI: {elapsed:.0f} s after the demo came up")
