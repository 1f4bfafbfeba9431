"""Decisions on the shipped demo over time (not in CI): healthy canaries back to back, and a quiet demo.

(1) ``--canaries N`` healthy canaries of fraud-detector, one after the other, each with no
``--set`` (the demo's own config and default traffic): every one should be promoted; a rollback
of a healthy canary is a false rollback. After each promotion the previous version is promoted
back by hand (``opsctl promote``) so the next canary has a candidate again.

(2) ``--quiet-minutes M``: a fresh demo left alone; counts ``ModelPerformanceDegraded`` alerts
and retrains started (both should be 0).

    .venv/bin/python benchmarks/bench_decisions.py --canaries 20 --quiet-minutes 15

Prints one JSON document with the figures; copy them into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPSCTL = str(ROOT / ".venv" / "bin" / "opsctl")
TERMINAL = {"succeeded", "rolled_back", "aborted", "failed"}


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
        self.env = {**env, "OPSCTL_CONFIG": str(root / "opsctl.toml"), "NO_COLOR": "1"}
        self.log = root.parent / "demo.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([OPSCTL, "demo", "--no-tui", "--state-dir", str(self.root)], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 180
        while not (self.root / "demo.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the demo did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def run(self, *args: str) -> Any:
        result = subprocess.run([OPSCTL, *args, "-o", "json"], env=self.env, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        return json.loads(result.stdout) if result.stdout.strip() else None


def canary_state(demo: Demo, model: str) -> dict[str, Any]:
    document = demo.run("canary", "status", model)
    return document[0] if isinstance(document, list) else document  # type: ignore[no-any-return]


def healthy_canaries(demo: Demo, count: int) -> dict[str, Any]:
    model, outcomes, seconds = "fraud-detector", [], []
    versions = ("1.1.0", "1.0.0")
    for i in range(count):
        candidate = versions[i % 2]
        started = time.monotonic()
        demo.run("canary", "start", model, candidate, "--reason", f"benchmark {i + 1}")
        state: dict[str, Any] = {}
        while time.monotonic() - started < 900:
            state = canary_state(demo, model)
            if state.get("state") in TERMINAL:
                break
            time.sleep(2)
        outcomes.append(state.get("state", "timeout"))
        seconds.append(round(time.monotonic() - started))
        print(f"canary {i + 1}/{count} ({candidate}): {outcomes[-1]} after {seconds[-1]}s", file=sys.stderr)
        if outcomes[-1] != "succeeded":
            demo.run("canary", "abort", model, "--reason", "benchmark")
            demo.run("promote", model, candidate, "--reason", "benchmark: next candidate", "--yes")
    return {"canaries": count, "promoted": outcomes.count("succeeded"),
            "false_rollbacks": outcomes.count("rolled_back"), "other": [o for o in outcomes if o not in
                                                                       ("succeeded", "rolled_back")],
            "seconds_median": sorted(seconds)[len(seconds) // 2] if seconds else None, "seconds": seconds}


def quiet(demo: Demo, minutes: float) -> dict[str, Any]:
    time.sleep(minutes * 60)
    alerts = demo.run("alerts", "--all") or {}
    items = alerts.get("alerts", alerts) if isinstance(alerts, dict) else alerts
    degraded = [a for a in items if "ModelPerformanceDegraded" in json.dumps(a)]
    retrains = []
    for model in ("fraud-detector", "churn-predictor"):
        retrains += [e for e in demo.run("history", model, "-n", "1000") or [] if e["action"] == "retrain"]
    return {"minutes": minutes, "performance_alerts": len(degraded), "retrains": len(retrains)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=20)
    parser.add_argument("--quiet-minutes", type=float, default=15.0)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-decisions-"))
    try:
        if args.quiet_minutes > 0:
            demo = Demo(work / "quiet" / "state")
            demo.root.parent.mkdir(parents=True)
            demo.start()
            try:
                figures["quiet"] = quiet(demo, args.quiet_minutes)
            finally:
                demo.stop()
        if args.canaries > 0:
            demo = Demo(work / "canaries" / "state")
            demo.root.parent.mkdir(parents=True)
            demo.start()
            try:
                figures["healthy_canaries"] = healthy_canaries(demo, args.canaries)
            finally:
                demo.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
