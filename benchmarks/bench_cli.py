"""Time `opsctl promote` and `opsctl rollback` as whole processes against `python -c pass`.

Run: .venv/bin/python benchmarks/bench_cli.py [--runs N]
Prints median wall time per command and its ratio to a bare interpreter start in
the same run (ratios, because these machines are noisy). Target: under 5x.

`--engines`: instead, the one-shots that open the registry without the daemon (models, versions,
history, audit verify, promote, rollback) on SQLite and on a real PostgreSQL (started here, as the
test fixture does), interleaved in one run against the same `python -c pass`, with wall and CPU
(user + system of the child) medians and whether the process loaded psycopg; plus `opsctl config
check`, a one-shot that does not open the registry, with the PostgreSQL config (it must not load it).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_timing import timed

OPSCTL = str(Path(sys.executable).with_name("opsctl"))
ROOT = Path(__file__).resolve().parent.parent
# What the registry-touching one-shots run, on the direct path (no daemon socket).
ENGINE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("models", "-o", "json"),
    ("versions", "bench", "-o", "json"),
    ("history", "bench", "-o", "json"),
    ("audit", "verify", "-o", "json"),
    ("promote", "bench", "1.1.0", "--yes", "-o", "json"),
    ("rollback", "bench", "--yes", "-o", "json"),
    ("config", "check"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--engines", action="store_true", help="registry one-shots on SQLite and PostgreSQL")
    args = parser.parse_args()
    runs = args.runs
    if args.engines:
        engines(runs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "opsctl.toml"
        # No daemon socket here: this measures the direct registry path.
        config.write_text(f'[daemon]\nstate_dir = "{root / "state"}"\nsocket = "{root / "none.sock"}"\n')
        env = {**os.environ, "OPSCTL_CONFIG": str(config), "NO_COLOR": "1"}
        _setup(env, root)
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


def _engine_env(root: Path, name: str, registry_url: str) -> dict[str, str]:
    """A config on the direct path (no daemon socket) with its own state dir, on SQLite or ``registry_url``."""
    home = root / name
    home.mkdir()
    config = home / "opsctl.toml"
    text = f'[daemon]\nstate_dir = "{home / "state"}"\nsocket = "{home / "none.sock"}"\n'
    if registry_url:
        text += f'[registry]\nurl = "{registry_url}"\n'
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
    return {**env, "OPSCTL_CONFIG": str(config), "NO_COLOR": "1"}


def _setup(env: dict[str, str], root: Path) -> None:
    for version in ("1.0.0", "1.1.0"):
        artifact = root / f"m{version}.bin"
        artifact.write_bytes(version.encode() * 1000)
        subprocess.run([OPSCTL, "register", "bench", "--version", version, "--artifact", str(artifact)],
                       env=env, check=True, capture_output=True)
    subprocess.run([OPSCTL, "promote", "bench", "1.0.0", "--yes"], env=env, check=True, capture_output=True)


def _run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _loads_psycopg(args: tuple[str, ...], env: dict[str, str]) -> bool:
    """Whether the command, run in-process by a probe interpreter, left psycopg in ``sys.modules``."""
    code = (f"import sys; from opsctl.cli.main import main; code = main({list(args)!r});"
            "print('LOADED' if 'psycopg' in sys.modules else 'CLEAN', code)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    last = done.stdout.strip().splitlines()[-1].split()
    if last[1] != "0":
        raise SystemExit(f"opsctl {' '.join(args)} exited {last[1]}: {done.stderr}")
    return last[0] == "LOADED"


def engines(runs: int) -> None:
    """The registry one-shots on SQLite and PostgreSQL in one run, against the same ``python -c pass``."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.cli import make_opsctl_env
    from tests.fixtures.daemon import DaemonProcess
    from tests.fixtures.postgres import running_postgres

    with tempfile.TemporaryDirectory() as tmp, running_postgres(max_connections=50) as server:
        root = Path(tmp)
        url = server.create_database()
        # With several daemons on PostgreSQL a daemon normally answers: the one-shots then go through it.
        with_daemon = make_opsctl_env(root / "postgresql-daemon", f'[registry]\nurl = "{url}"\n')
        daemon = DaemonProcess(with_daemon).start(timeout=90)
        envs = {"sqlite": _engine_env(root, "sqlite", ""),
                "postgresql": _engine_env(root, "postgresql", url),
                "pg+daemon": with_daemon.env}
        try:
            _setup(envs["sqlite"], root)
            _setup(envs["postgresql"], root)
            _measure(envs, runs)
        finally:
            daemon.stop()


def _measure(envs: dict[str, dict[str, str]], runs: int) -> None:
    """Interleaved runs of every command on every environment; prints medians and ratios."""
    loads = {(engine, args): _loads_psycopg(args, env) for engine, env in envs.items()
             for args in ENGINE_COMMANDS}
    samples: dict[tuple[str, tuple[str, ...]], list[tuple[float, float]]] = {key: [] for key in loads}
    baseline: list[tuple[float, float]] = []
    httpx_baseline: list[tuple[float, float]] = []
    load_start = os.getloadavg()[0]
    for _ in range(runs):  # interleaved, so both engines and the baselines see the same load
        baseline.append(_run_once([sys.executable, "-c", "pass"], envs["sqlite"]))
        httpx_baseline.append(_run_once([sys.executable, "-c", "import httpx"], envs["sqlite"]))
        for engine, env in envs.items():
            for args in ENGINE_COMMANDS:
                samples[(engine, args)].append(_run_once([OPSCTL, *args], env))
    load_end = os.getloadavg()[0]
    base_wall = statistics.median(w for w, _ in baseline)
    base_cpu = statistics.median(c for _, c in baseline)
    print(f"load average (1 min) {load_start:.1f} at the start, {load_end:.1f} at the end; {runs} runs each")
    print(f"{'command':<38} {'engine':<11} {'wall':>9} {'ratio':>6} {'cpu':>9} {'ratio':>6} {'/httpx':>6}  psycopg")
    print(f"{'python -c pass':<38} {'':<11} {base_wall * 1000:7.1f}ms {1:5.2f}x {base_cpu * 1000:7.1f}ms"
          f" {1:5.2f}x")
    httpx_wall = statistics.median(w for w, _ in httpx_baseline)
    httpx_cpu = statistics.median(c for _, c in httpx_baseline)
    label = 'python -c "import httpx"'
    print(f"{label:<38} {'':<11} {httpx_wall * 1000:7.1f}ms {httpx_wall / base_wall:5.2f}x"
          f" {httpx_cpu * 1000:7.1f}ms {httpx_cpu / base_cpu:5.2f}x")
    for args in ENGINE_COMMANDS:
        for engine in envs:
            wall = statistics.median(w for w, _ in samples[(engine, args)])
            cpu = statistics.median(c for _, c in samples[(engine, args)])
            loaded = "loaded" if loads[(engine, args)] else "not loaded"
            print(f"{'opsctl ' + ' '.join(args):<38} {engine:<11} {wall * 1000:7.1f}ms {wall / base_wall:5.2f}x"
                  f" {cpu * 1000:7.1f}ms {cpu / base_cpu:5.2f}x {cpu / httpx_cpu:5.2f}x  {loaded}")


if __name__ == "__main__":
    main()
