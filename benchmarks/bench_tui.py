"""TUI: start to first complete frame, and the cost of one refresh with 10, 100 and 500 models.

Run: .venv/bin/python benchmarks/bench_tui.py [--runs N]

* first frame: a fresh interpreter (imports included) until the overview shows every model of a
  10-model document, headless at 80x24 (median of --runs processes);
* refresh: in one running app (160x48) with N models, the time the UI thread spends handling
  (a) a status document in which one model changed, (b) a status document in which every model
  changed, (c) one ``deployment`` SSE event; then a status document in which every model's row changes
  (canaries back) and one in which one model changed are each timed together with the next frame
  (``pause(0)``) as "with render". Each status document comes with ``/v1/alerts`` and
  ``/v1/health`` as the live feed fetches them: the same evaluation for (a), a new one (every model's
  sparkline moves) for (b). Targets: first frame < 1.5 s; refresh growing
  at most linearly and < 50 ms at 500 models. The data is the fixed document of the snapshot tests.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def _first_frame() -> float:
    from tests.tui.fixed import fixed_app

    app = fixed_app(models=7)  # 3 hand-made + 7 = 10 models
    async with app.run_test(size=(80, 24)) as pilot:
        while not (app.overview.ready and app.overview.table.row_count == 10):
            await pilot.pause(0.005)
        await pilot.pause()  # the frame with the rows is rendered
        return time.perf_counter() - START


def first_frame(runs: int) -> float:
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


async def _refresh(models: int, runs: int) -> dict[str, float]:
    from opsctl.tui.feed import EventArrived, StatusArrived
    from tests.tui.fixed import NOW, alerts_document, document, fixed_app, health_document

    app = fixed_app(models=models - 3)
    timings: dict[str, list[float]] = {"one_changed": [], "all_changed": [], "sse_event": [], "one_with_render": [],
                                       "all_with_render": []}
    async with app.run_test(size=(160, 48)) as pilot:
        while not (app.overview.ready and app.overview.table.row_count == models):
            await pilot.pause(0.01)
        base = document(models - 3)
        alerts = alerts_document()
        health = health_document(models - 3)
        for i in range(runs):
            one = copy.deepcopy(base)
            one["models"][5]["production_version"] = f"9.{i}.0"
            started = time.perf_counter()
            app.on_status_arrived(StatusArrived(one, [], NOW, alerts=alerts, health=health))
            timings["one_changed"].append(time.perf_counter() - started)
            await pilot.pause()

            every = copy.deepcopy(base)
            for d in every["models"]:
                d["canary_version"], d["canary_weight"] = f"8.{i}.0", float(i % 50 + 1)
            newer = copy.deepcopy(health)
            for version in newer["models"]:
                version["evaluated_at"] = f"2026-03-14T10:{i // 60:02d}:{i % 60:02d}Z"
                for check in version["checks"]:
                    check["value"] = (check["value"] or 0) + i % 5
            started = time.perf_counter()
            app.on_status_arrived(StatusArrived(every, [], NOW, alerts=alerts, health=newer))
            timings["all_changed"].append(time.perf_counter() - started)
            await pilot.pause()

            deployment = dict(base["models"][7], production_version=f"7.{i}.0")
            event = {"id": 1000 + i, "kind": "deployment", "at": "2026-03-14T09:26:53Z", "data": deployment}
            started = time.perf_counter()
            app.on_event_arrived(EventArrived("deployment", event, NOW))
            timings["sse_event"].append(time.perf_counter() - started)
            await pilot.pause()

            # Back to `one` (every row's canary changes back), then one model changes: each timed with its frame.
            started = time.perf_counter()
            app.on_status_arrived(StatusArrived(one, [], NOW, alerts=alerts, health=health))
            await pilot.pause(0)
            timings["all_with_render"].append(time.perf_counter() - started)
            await pilot.pause()
            one["models"][5]["production_version"] = f"9.{i}.1"
            started = time.perf_counter()
            app.on_status_arrived(StatusArrived(one, [], NOW, alerts=alerts, health=health))
            await pilot.pause(0)
            timings["one_with_render"].append(time.perf_counter() - started)
    return {k: statistics.median(v) * 1000 for k, v in timings.items()}


def main() -> None:
    if "--child" in sys.argv:
        print(asyncio.run(_first_frame()))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    runs = parser.parse_args().runs
    results: dict[str, object] = {"first_frame_seconds": round(first_frame(runs), 3)}
    for n in (10, 100, 500):
        results[f"refresh_ms_{n}"] = {k: round(v, 2) for k, v in asyncio.run(_refresh(n, runs * 4)).items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
