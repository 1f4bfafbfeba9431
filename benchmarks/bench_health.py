"""One health cycle for 1,000 model versions against a real Prometheus.

A real Prometheus (temp storage, scrape interval 5 s: a Python exporter needs about 1 s to render
16,000 series) scrapes one exporter serving 1,000
(model, version) label sets with the standard metric names; the benchmark then runs health cycles
(PrometheusSource.fetch_fleet + evaluate_fleet) and reports PromQL queries per cycle and cycle time.

    .venv/bin/python benchmarks/bench_health.py [--versions 1000] [--cycles 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opsctl.adapters.prometheus import PrometheusSettings, PrometheusSource
from opsctl.adapters.prometheus_launcher import LocalPrometheus
from opsctl.core.sla import HealthStatus, SlaThresholds, evaluate_fleet
from tests.fixtures.prometheus import ControlledExporter, prometheus_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()

    exporter = ControlledExporter()
    deployed = [(f"model-{i // 4:03d}", f"v{i % 4}") for i in range(args.versions)]
    for model, version in deployed:
        exporter.set(model, version, request_rate=20, error_ratio=0.001)
    exporter.start()
    targets = json.dumps([{"targets": [exporter.target]}])
    config = prometheus_config("targets.json", scrape_interval="5s")
    prom = LocalPrometheus(config, extra_files={"targets.json": targets})
    try:
        started = time.monotonic()
        prom.start()
        source = PrometheusSource(PrometheusSettings(url=prom.url, window="30s", staleness_seconds=15,
                                                     timeout_seconds=30))
        baselines = dict.fromkeys(deployed, 0.95)
        thresholds = SlaThresholds()

        def cycle():
            before = source.queries_sent
            t0 = time.perf_counter()
            fleet = source.fetch_fleet(datetime.now(UTC))
            results = evaluate_fleet(fleet, deployed, thresholds, baselines, datetime.now(UTC))
            return results, time.perf_counter() - t0, source.queries_sent - before

        deadline = time.monotonic() + 90
        while True:
            results, _, _ = cycle()
            healthy = sum(r.status is HealthStatus.HEALTHY for r in results)
            if healthy == len(deployed):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {healthy}/{len(deployed)} healthy after 90 s")
            time.sleep(0.5)
        ready = time.monotonic() - started
        timings, queries = [], []
        for _ in range(args.cycles):
            results, seconds, sent = cycle()
            timings.append(seconds)
            queries.append(sent)
        series = source.query("count({__name__=~\"model_.*\"})")[0][1]
        print(f"versions:                {len(deployed)}")
        print(f"series scraped:          {series:.0f}")
        print(f"PromQL queries/cycle:    {statistics.mode(queries)} (min {min(queries)}, max {max(queries)})")
        print(f"cycle time median:       {statistics.median(timings) * 1000:.0f} ms")
        print(f"cycle time max:          {max(timings) * 1000:.0f} ms")
        print(f"all healthy after start: {ready:.1f} s")
        counts = {s.value: sum(r.status is s for r in results) for s in HealthStatus}
        print(f"statuses (last cycle):   {counts}")
    finally:
        prom.stop()
        exporter.stop()


if __name__ == "__main__":
    main()
