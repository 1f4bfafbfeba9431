"""Timing whole processes for the benchmarks (imported by the benchmark scripts beside it)."""

from __future__ import annotations

import statistics
import subprocess
import time


def timed(cmd: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of ``runs`` runs of ``cmd``, output discarded."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
