"""Daemon benchmarks, both against a baseline measured in the same run.

1. Load: 20 SSE clients connected and 200 status requests per second for 30 s over
   the Unix socket while the jobs run (housekeeping every 0.5 s). Reports p50/p99
   latency and errors. Target: p99 under 50 ms, zero errors.
2. CLI through the daemon: `opsctl status` and `opsctl rollback` as whole processes,
   against `python -c "import httpx"`. Target: under 1.5x.

Run: .venv/bin/python benchmarks/bench_daemon.py [--seconds 30] [--rate 200] [--runs 15]
Loopback/Unix socket only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from process_timing import timed  # noqa: E402 (benchmarks/ is the script folder)

from tests.fixtures.cli import OPSCTL, make_opsctl_env  # noqa: E402
from tests.fixtures.daemon import DaemonProcess  # noqa: E402


async def sse_client(socket_path: str, stop: asyncio.Event, received: list[int]) -> None:
    transport = httpx.AsyncHTTPTransport(uds=socket_path)
    async with (httpx.AsyncClient(transport=transport, base_url="http://opsctl", timeout=None) as client,
                client.stream("GET", "/v1/events") as response):
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                received[0] += 1
            if stop.is_set():
                return


async def load(socket_path: str, seconds: float, rate: int) -> tuple[list[float], int, int]:
    stop = asyncio.Event()
    received = [0]
    sse = [asyncio.create_task(sse_client(socket_path, stop, received)) for _ in range(20)]
    await asyncio.sleep(0.5)
    latencies: list[float] = []
    errors = 0
    transport = httpx.AsyncHTTPTransport(uds=socket_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsctl", timeout=5) as client:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                response = await client.get("/v1/status")
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - start)

        tasks = []
        begin = time.perf_counter()
        total = int(seconds * rate)
        for i in range(total):
            target = begin + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    stop.set()
    for task in sse:
        task.cancel()
    await asyncio.gather(*sse, return_exceptions=True)
    return latencies, errors, received[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = make_opsctl_env(Path(tmp) / "opsctl", "[jobs]\nhousekeeping_seconds = 0.5\n")
        daemon = DaemonProcess(env).start()
        try:
            for version in ("1.0.0", "1.1.0"):
                artifact = env.root / f"m{version}.bin"
                artifact.write_bytes(version.encode())
                env.run("register", "bench", "--version", version, "--artifact", str(artifact))
            env.run("promote", "bench", "1.0.0", "--yes")

            latencies, errors, events = asyncio.run(load(str(env.socket), args.seconds, args.rate))
            latencies.sort()
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            print(f"load: {len(latencies)} status requests at {args.rate}/s for {args.seconds:g}s with 20 SSE clients")
            print(f"  p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms  max {latencies[-1] * 1000:.1f} ms"
                  f"  errors {errors}  SSE events received {events}")

            cli_env = {**env.env}
            baseline = timed([sys.executable, "-c", "import httpx"], cli_env, args.runs)
            status = timed([OPSCTL, "status", "-o", "json"], cli_env, args.runs)
            rollbacks = []
            for _ in range(args.runs):
                env.run("promote", "bench", "1.1.0", "--yes")
                start = time.perf_counter()
                subprocess.run([OPSCTL, "rollback", "bench", "--yes", "-o", "json"], env=cli_env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                rollbacks.append(time.perf_counter() - start)
            rollback = statistics.median(rollbacks)
            print(f'python -c "import httpx": {baseline * 1000:.1f} ms (median of {args.runs})')
            print(f"opsctl status   (daemon) {status * 1000:7.1f} ms  ratio {status / baseline:4.2f}x")
            print(f"opsctl rollback (daemon) {rollback * 1000:7.1f} ms  ratio {rollback / baseline:4.2f}x")
            assert "acting directly" not in env.run("rollback", "bench", "--to", "1.0.0", "--yes").stderr
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
