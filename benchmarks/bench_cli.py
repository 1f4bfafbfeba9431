"""Time `opsctl promote` and `opsctl rollback` as whole processes against `python -c pass`.

Run: .venv/bin/python benchmarks/bench_cli.py [--runs N]
Prints median wall time per command and its ratio to a bare interpreter start in
the same run (ratios, because these machines are noisy). Target: under 5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_timing import timed

OPSCTL = str(Path(sys.executable).with_name("opsctl"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "opsctl.toml"
        # No daemon socket here: this measures the direct registry path.
        config.write_text(f'[daemon]\nstate_dir = "{root / "state"}"\nsocket = "{root / "none.sock"}"\n')
        env = {**os.environ, "OPSCTL_CONFIG": str(config), "NO_COLOR": "1"}
        for version in ("1.0.0", "1.1.0"):
            artifact = root / f"m{version}.bin"
            artifact.write_bytes(version.encode() * 1000)
            subprocess.run([OPSCTL, "register", "bench", "--version", version, "--artifact", str(artifact)],
                           env=env, check=True, capture_output=True)
        subprocess.run([OPSCTL, "promote", "bench", "1.0.0", "--yes"], env=env, check=True, capture_output=True)
        baseline = timed([sys.executable, "-c", "pass"], env, runs)
        results: dict[str, float] = {}
        for fmt in ("table", "json"):
            promote, rollback = [], []
            for _ in range(runs):
                start = time.perf_counter()
                subprocess.run([OPSCTL, "promote", "bench", "1.1.0", "--yes", "-o", fmt], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                promote.append(time.perf_counter() - start)
                start = time.perf_counter()
                subprocess.run([OPSCTL, "rollback", "bench", "--yes", "-o", fmt], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                rollback.append(time.perf_counter() - start)
            results[f"promote -o {fmt}"] = statistics.median(promote)
            results[f"rollback -o {fmt}"] = statistics.median(rollback)
        print(f"python -c pass: {baseline * 1000:.1f} ms (median of {runs})")
        for name, value in results.items():
            print(f"opsctl {name:<18} {value * 1000:7.1f} ms  ratio {value / baseline:4.2f}x")


if __name__ == "__main__":
    main()
