"""One story per incident, on the real demo: drift -> retrain -> decision -> canary -> result, read back in order
from ``opsctl history fraud-detector -o json``; and the TUI's event feed over the whole run, fed by the daemon's
real event stream, holds no line without a verdict or a change.

The demo runs with every job ten times faster than its own ``opsctl.toml`` (health every 0.5 s instead of 5,
drift every 3 s instead of 30, ...), so the minute or two this module runs is, in job runs, a ten-minute-plus
demo; the test counts the job runs to make sure of it rather than assuming it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from opsctl.tui.feed import Connection, DaemonFeed, EventArrived
from opsctl.tui.model import Fleet, describe_event
from tests.demo.test_demo_e2e import Demo
from tests.fixtures.cli import OPSCTL
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-story"),
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus binary")]

MODEL = "fraud-detector"
RATE = 20.0
SPEEDUP = 10.0  # the demo's own intervals (opsctl/demo/fleet.py) divided by these
EXTRA = """\
[jobs]
health_seconds = 0.5
canary_seconds = 0.25
drift_seconds = 3.0
performance_seconds = 3.0
ingest_seconds = 0.5
alerts_seconds = 0.5
housekeeping_seconds = 6.0
audit_seconds = 6.0

[window]
max_age_seconds = 30.0

# The performance check runs (and publishes) at every tick but never judges here: on the demo's few dozen
# labels it flags recall on healthy traffic now and then, and this story is the drift's. The performance
# trigger's path (numbers, via performance, joining a run) is tested in tests/services/test_retrain.py.
[performance]
min_labels = 1000000

[retrain]
cooldown_seconds = 20
schedule_check_seconds = 3.0

# The demo's 4000 fresh rows train in seconds; about one run in six lands under the 0.01 AUC margin and is
# kept, which is a story too (held by the cooldown, then a second run), so the test reads either.

# The canary of tests/demo/test_canary_retrain_e2e.py: decided within a minute at 20 req/s.
[canary]
stages = [20.0, 50.0]
min_stage_seconds = 10.0
analysis_interval_seconds = 3.0
failure_threshold = 2
inconclusive_limit = 30
error_rate_min_baseline = 0.05
error_rate_mde_relative = 4.0
accuracy_gate = true
accuracy_tolerance = 0.1
progress_deadline_seconds = 120.0
"""
ENDS = ("canary_succeeded", "canary_rolled_back", "canary_aborted", "canary_failed")
RUN_END = {"canary_succeeded": "canary_promoted", "canary_rolled_back": "canary_rolled_back",
           "canary_aborted": "canary_aborted", "canary_failed": "canary_failed"}


class Recorder:
    """The TUI's event loop (``DaemonFeed.run_events``) on a thread, keeping every message it posts."""

    def __init__(self, socket: str) -> None:
        self.feed = DaemonFeed(socket, refresh_seconds=3600)
        self.messages: list[Any] = []
        self.thread = threading.Thread(target=self.feed.run_events, args=(self.messages.append,), daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        wait_for(lambda: any(isinstance(m, Connection) and m.up for m in self.messages), 20, 0.1,
                 what="the event stream")
        return self

    def __exit__(self, *exc: object) -> None:
        self.feed.stop()
        self.thread.join(10)

    @property
    def events(self) -> list[EventArrived]:
        return [m for m in list(self.messages) if isinstance(m, EventArrived)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("story-demo")
    extra = root / "extra.toml"
    extra.write_text(EXTRA, encoding="utf-8")
    running = Demo(root / "demo-state")
    try:
        with running.log.open("wb") as log:
            running.proc = subprocess.Popen(
                [OPSCTL, "demo", "--no-tui", "--state-dir", str(running.root), "--rate", str(RATE),
                 "--config-extra", str(extra)],
                env=running.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = running.proc

        def up() -> bool:
            assert proc.poll() is None, running.output()
            return (running.root / "demo.json").exists()

        wait_for(up, 120, 0.2, what="the demo to come up", context=running.output)
        yield running
    finally:
        running.kill_everything()


def ok(demo: Demo, *args: str) -> Any:
    result = demo.opsctl(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def history(demo: Demo) -> list[dict[str, Any]]:
    return sorted(ok(demo, "history", MODEL, "-n", "1000", "-o", "json"), key=lambda e: e["id"])


def _next(events: list[dict[str, Any]], start: int, what: str, match: Any) -> int:
    """The index of the first event at or after ``start`` that ``match`` accepts."""
    for index in range(start, len(events)):
        if match(events[index]):
            return index
    raise AssertionError(f"no {what} after position {start}:\n" + "\n".join(
        f"{e['id']} {e['action']} {e['via']} {e['from_version']}->{e['to_version']}: {e['detail']}"
        for e in events[start:]))


def carries_verdict_or_change(entry: dict[str, Any], line: str) -> bool:
    """What "news" means for one feed line, by kind: the line states a verdict or a change, not a heartbeat."""
    kind, data = entry["kind"], entry.get("data") or {}
    if kind == "audit":  # an audited action or verdict, in its own words or as a version change
        return bool(data.get("action")) and (bool(data.get("detail")) or "->" in line)
    if kind in ("health", "drift", "performance"):
        verdict = data.get("status" if kind == "health" else "verdict")
        return verdict is not None and verdict != data.get("previous") and f"-> {verdict}" in line
    if kind == "alert" and "to" in data:
        return data.get("from") != data["to"] and f"-> {data['to']}" in line
    if kind == "alert":
        return bool(data.get("status")) and f" {data['status']}:" in line
    if kind == "canary":
        return bool(data.get("phase")) and f" {data['phase']} stage " in line
    if kind == "job":
        return not data.get("ok") and "FAILED" in line
    if kind == "retrain":
        return bool(data.get("status")) and f" {data['status']}" in line
    return False


def test_drift_story_reads_in_order_and_the_feed_holds_only_news(demo: Demo) -> None:
    socket = demo.state()["daemon"]["socket"]
    with Recorder(socket) as recorder:
        began = time.monotonic()
        jobs_before = {j["name"]: j["runs"] for j in ok(demo, "status", "-o", "json")["jobs"]}
        before = max(e["id"] for e in history(demo))
        wait_for(lambda: demo.opsctl("drift", MODEL, "-o", "json").returncode == 0, 30, 0.5, what="drift checks")
        ok(demo, "demo", "fault", MODEL, "drift", "--level", "2.0", "-o", "json")  # the first two features
        try:
            def ended() -> list[dict[str, Any]] | None:
                events = [e for e in history(demo) if e["id"] > before]
                return events if any(e["action"] in ENDS for e in events) else None

            events = wait_for(ended, 240, 1.0, what="drift -> retrain -> canary -> its end", context=demo.tail)
            # The run follows its canary's end (the notice comes with the finish, or at the next schedule tick).
            ending = next(e for e in events if e["action"] in ENDS)
            end = ending["action"]

            def followed() -> dict[str, Any] | None:
                runs = ok(demo, "retrain", "runs", MODEL, "-o", "json")
                run = next(r for r in runs if r["candidate_version"] == ending["to_version"])
                return run if run["status"] == RUN_END[end] else None

            ran = wait_for(followed, 15, 0.5, what=f"the run to say {RUN_END[end]}")
        finally:
            ok(demo, "demo", "clear", MODEL, "-o", "json")
        # Keep the feed running until the daemon has done what a ten-minute demo does at the demo's own
        # intervals (health every 5 s: 120 runs; drift and performance every 30 s: 20 each).
        def ten_minutes() -> dict[str, int] | None:
            jobs = ok(demo, "status", "-o", "json")["jobs"]
            runs = {j["name"]: j["runs"] - jobs_before.get(j["name"], 0) for j in jobs}
            return runs if min(runs["health"] / 120, runs["drift"] / 20, runs["performance"] / 20) >= 1 else None

        done = wait_for(ten_minutes, 600 / SPEEDUP + 30, 1.0, what="a ten-minute demo's worth of job runs")
        audit_tail = ok(demo, "history", "-n", "50", "-o", "json")
    production = "1.0.0"

    # -- the story, in order, from `opsctl history fraud-detector -o json` ---------------------------------
    for e in events:
        print(f"{e['id']:>4} {e['at'][11:19]} {e['action']:<18} {e['via']:<12} {e['detail']}")
    drift = _next(events, 0, "drift verdict", lambda e: e["action"] == "drift" and "drift detected" in e["detail"])
    assert events[drift]["detail"].startswith(f"drift detected on {production} (production): v1 (")
    assert ", v2 (" in events[drift]["detail"] and "features drifted" in events[drift]["detail"]
    assert (events[drift]["actor"], events[drift]["via"]) == ("opsctld", "drift")
    position = drift
    while True:  # every run: triggered (or held first, saying why), trained, registered, decided with numbers
        held = None
        started = _next(events, position, "retrain trigger", lambda e: e["action"] in ("retrain", "retrain-held"))
        if events[started]["action"] == "retrain-held":
            held = events[started]
            assert held["detail"].startswith("retrain held: ") and "drift asked (data drift on" in held["detail"]
            assert held["outcome"] == "noop" and held["via"] == "drift"
            started = _next(events, started, "retrain run", lambda e: e["action"] == "retrain")
        run = events[started]
        assert run["via"] == "drift" and run["outcome"] == "ok" and " (drift) started: training" in run["detail"]
        assert {"v1", "v2"} <= set(run["reason"].split(": ", 1)[1].split(", ")), run["reason"]
        trained = _next(events, started, "training", lambda e: e["action"] == "retrain-trained")
        assert "training succeeded in " in events[trained]["detail"]
        registered = _next(events, trained, "candidate", lambda e: e["action"] == "register")
        candidate = events[registered]["to_version"]
        decided = _next(events, registered, "decision", lambda e: e["action"] == "retrain-decision")
        decision = events[decided]["detail"]
        assert " < margin 0.01 (" in decision or " >= margin 0.01 (" in decision, decision
        if decision.startswith("canary for "):
            assert decision.startswith(f"canary for {candidate}: roc_auc +"), decision
            break
        assert decision.startswith(f"kept {production}: challenger {candidate} roc_auc "), decision
        position = decided + 1
    canary = _next(events, decided, "canary start", lambda e: e["action"] == "canary_start")
    assert events[canary]["to_version"] == candidate
    result = _next(events, canary, "canary result", lambda e: e["action"] in ENDS)
    assert events[result]["detail"], events[result]

    # The run says who asked and how it ended; the TUI's history tab reads the same rows, in their own words.
    assert ran["candidate_version"] == candidate and ran["status"] == RUN_END[end]
    asks = ran["triggers"]
    assert asks and all(a["kind"] == "drift" and a["actor"] == "opsctld via drift" for a in asks), asks
    assert "v1" in asks[0]["reason"] and "v2" in asks[0]["reason"]
    shown = [describe_event({"kind": "audit", "at": e["at"], "data": e}) for e in events]
    assert f"drift {MODEL}: drift detected on {production}" in shown[drift]
    assert f"retrain-decision {MODEL}: canary for {candidate}: roc_auc +" in shown[decided]
    assert not any(line.endswith(f"{production} -> {candidate} by opsctld") for line in shown
                   if "retrain-decision" in line)

    # -- the feed: every line the TUI would show carries a verdict or a change -----------------------------
    fleet = Fleet()
    arrived = recorder.events
    for message in arrived:
        fleet.apply_event(message.kind, message.event, message.at)
        if message.kind == "canary":
            fleet.apply_canary(message.event.get("data") or {})
    fleet.apply_history(audit_tail)
    entries = list(fleet.feed.values())
    lines = [describe_event(entry) for entry in entries]
    kinds: dict[str, int] = {}
    for message in arrived:
        kinds[message.kind] = kinds.get(message.kind, 0) + 1
    print(f"\n{len(arrived)} events over {time.monotonic() - began:.0f} s ({kinds}); job runs {done};"
          f" {len(lines)} feed lines:")
    print("\n".join(lines))
    noise = [line for entry, line in zip(entries, lines, strict=True) if not carries_verdict_or_change(entry, line)]
    assert not noise, noise
    # The feed is not quiet because nothing happened: the story is in it.
    assert any("drift detected" in line for line in lines) and any("retrain-decision" in line for line in lines)
    assert len(lines) < len(arrived) / 10, (len(lines), len(arrived))
