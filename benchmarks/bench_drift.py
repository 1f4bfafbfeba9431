"""Drift benchmark: opsctl vs a per-column scipy loop vs Evidently's DataDriftPreset.

    .venv/bin/python benchmarks/bench_drift.py                 # 10k, 100k, 1M rows per frame
    .venv/bin/python benchmarks/bench_drift.py --sizes 10000 --repeat 1 --no-evidently

20 numerical + 5 categorical columns per frame, one numerical and one categorical column
shifted. Every method runs in its own subprocess on the same Parquet files, so peak RSS
(``VmHWM``) is its own. opsctl runs as in production: the reference summary is computed
ahead (timed separately) and loaded from its ``.npz`` file; the timed check only processes the
current window. Evidently runs from ``benchmarks/.venv-evidently`` (``bash
benchmarks/evidently_env.sh``); without it that column is skipped. Results go to stdout and, as
JSON, to ``benchmarks/results/drift.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EVIDENTLY_PYTHON = HERE / ".venv-evidently" / "bin" / "python"
NUMERICAL = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB. Not ru_maxrss: Linux carries the
    parent's peak over fork+exec into it, and the driver holds the generated frames."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _rss_mb() -> float:
    return _status_mb("VmHWM")


def _base_mb() -> float:
    return _status_mb("VmRSS")


def _reset_peak() -> float:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5) so the next peak is the check's own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def make_frames(rows: int, directory: Path) -> tuple[Path, Path, int]:
    """Write reference and current Parquet files; return their paths and in-memory size in bytes."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    levels = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    mix = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])

    def frame(shift: bool) -> pd.DataFrame:
        data = {}
        for i, name in enumerate(NUMERICAL):
            values = rng.normal(loc=i, scale=1.0 + i / 10, size=rows)
            if shift and i == 0:
                values += 0.3 * (1.0 + i / 10)
            data[name] = values
        for i, name in enumerate(CATEGORICAL):
            p = np.array([0.2, 0.3, 0.15, 0.15, 0.1, 0.1]) if shift and i == 0 else mix
            data[name] = rng.choice(levels, size=rows, p=p)
        return pd.DataFrame(data)

    ref, cur = frame(False), frame(True)
    size = int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum())
    ref_path, cur_path = directory / f"ref_{rows}.parquet", directory / f"cur_{rows}.parquet"
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)
    return ref_path, cur_path, size


# --- workers (each runs in its own process) -------------------------------------------------


def worker_summarize(ref_path: str, out_path: str) -> dict:
    import pandas as pd

    from opsctl.core.drift import summarize_reference

    ref = pd.read_parquet(ref_path)
    start = time.perf_counter()
    summary = summarize_reference(ref, CATEGORICAL)
    seconds = time.perf_counter() - start
    summary.save(out_path)
    return {"seconds": seconds, "summary_bytes": os.path.getsize(out_path)}


def worker_opsctl(summary_path: str, cur_path: str, repeat: int, threads: int) -> dict:
    import tracemalloc

    import pandas as pd

    from opsctl.core.drift import DriftPolicy, ReferenceSummary, detect_drift

    base_rss = _base_mb()
    summary = ReferenceSummary.load(summary_path)
    cur = pd.read_parquet(cur_path)
    policy = DriftPolicy(threads=threads)
    loaded_rss = _reset_peak()
    times = []
    report = None
    for _ in range(repeat):
        start = time.perf_counter()
        report = detect_drift(summary, cur, policy)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    detect_drift(summary, cur, policy)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report is not None
    return {
        "loaded_rss_mb": loaded_rss,
        "seconds": statistics.median(times),
        "first_seconds": times[0],
        "rss_mb": _rss_mb(),
        "base_rss_mb": base_rss,
        "traced_peak_mb": traced_peak / 2**20,
        "drifted": sorted(f.name for f in report.features if f.drifted),
    }


def worker_scipy(ref_path: str, cur_path: str, repeat: int) -> dict:
    import numpy as np
    import pandas as pd
    from scipy import stats

    base_rss = _base_mb()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)

    def run() -> list[str]:
        drifted = []
        for name in NUMERICAL:
            if stats.ks_2samp(ref[name].to_numpy(), cur[name].to_numpy()).pvalue < 0.05:
                drifted.append(name)
        for name in CATEGORICAL:
            table = pd.concat([ref[name].value_counts(), cur[name].value_counts()], axis=1).fillna(0)
            if stats.chi2_contingency(table.to_numpy(dtype=np.int64).T).pvalue < 0.05:
                drifted.append(name)
        return drifted

    times = []
    drifted: list[str] = []
    for _ in range(repeat):
        start = time.perf_counter()
        drifted = run()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "first_seconds": times[0], "rss_mb": _rss_mb(),
            "base_rss_mb": base_rss, "drifted": sorted(drifted)}


def worker_evidently(ref_path: str, cur_path: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    base_rss = _base_mb()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    start = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
    ref_ds = Dataset.from_pandas(ref, data_definition=definition)
    cur_ds = Dataset.from_pandas(cur, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
    seconds = time.perf_counter() - start
    drifted_count = None
    for metric in snapshot.dict().get("metrics", []):
        value = metric.get("value")
        if isinstance(value, dict) and "count" in value and "DriftedColumnsCount" in str(metric.get("metric_id")):
            drifted_count = value["count"]
    import evidently

    return {"seconds": seconds, "rss_mb": _rss_mb(), "base_rss_mb": base_rss,
            "drifted_count": drifted_count, "version": evidently.__version__}


# --- driver ---------------------------------------------------------------------------------


def _run_worker(python: Path | str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([str(python), str(Path(__file__).resolve()), "--worker", *args],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = {
            "summarize": lambda: worker_summarize(*rest),
            "opsctl": lambda: worker_opsctl(rest[0], rest[1], int(rest[2]), int(rest[3])),
            "scipy": lambda: worker_scipy(rest[0], rest[1], int(rest[2])),
            "evidently": lambda: worker_evidently(*rest),
        }[kind]()
        print(json.dumps(result))
        return

    use_evidently = not args.no_evidently and EVIDENTLY_PYTHON.exists()
    if not use_evidently:
        print("Evidently skipped (run `bash benchmarks/evidently_env.sh` to include it)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in [int(s) for s in args.sizes.split(",")]:
            ref_path, cur_path, size = make_frames(rows, Path(tmp))
            summary_path = Path(tmp) / f"summary_{rows}.npz"
            row: dict = {"rows": rows, "frames_mb": size / 2**20, "load_before": os.getloadavg()[0]}
            row["summarize"] = _run_worker(sys.executable, "summarize", str(ref_path), str(summary_path))
            for threads in (1, 2):
                row[f"opsctl_t{threads}"] = _run_worker(sys.executable, "opsctl", str(summary_path), str(cur_path),
                                                        str(args.repeat), str(threads))
            row["scipy"] = _run_worker(sys.executable, "scipy", str(ref_path), str(cur_path), str(args.repeat))
            if use_evidently:
                row["evidently"] = _run_worker(EVIDENTLY_PYTHON, "evidently", str(ref_path), str(cur_path))
            row["load_after"] = os.getloadavg()[0]
            results.append(row)
            _print_row(row)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "drift.json").write_text(json.dumps(results, indent=2))


def _print_row(row: dict) -> None:
    ours = row["opsctl_t1"]
    two = row["opsctl_t2"]
    lines = [
        f"rows={row['rows']:,}  frames={row['frames_mb']:.1f} MB  summarize ahead={row['summarize']['seconds']:.3f}s"
        f"  (1-min load average {row['load_before']:.1f} before, {row['load_after']:.1f} after)",
        f"  opsctl (1 thread) {ours['seconds']:.3f}s (first {ours['first_seconds']:.3f}s)   "
        f"opsctl (2 threads) {two['seconds']:.3f}s   scipy loop {row['scipy']['seconds']:.3f}s",
        f"  speed-up vs scipy: {row['scipy']['seconds'] / ours['seconds']:.1f}x "
        f"(2 threads {row['scipy']['seconds'] / two['seconds']:.1f}x)",
    ]
    if "evidently" in row:
        ev = row["evidently"]["seconds"]
        lines.append(f"  evidently {ev:.3f}s -> speed-up {ev / ours['seconds']:.0f}x "
                     f"(2 threads {ev / two['seconds']:.0f}x)")
    for name in ("opsctl_t1", "scipy", "evidently"):
        if name in row:
            r = row[name]
            grown = r["rss_mb"] - r["base_rss_mb"]
            traced = f", traced peak in the check {r['traced_peak_mb']:.1f} MB" if "traced_peak_mb" in r else ""
            if "loaded_rss_mb" in r:
                check = r["rss_mb"] - r["loaded_rss_mb"]
                held = r["loaded_rss_mb"] - r["base_rss_mb"]
                lines.append(f"  {name}: summary + current frame held {held:.0f} MB, the check's peak "
                             f"{check:.0f} MB more = {(held + check) / row['frames_mb']:.2f}x frames{traced}")
            else:
                lines.append(f"  {name}: peak RSS {r['rss_mb']:.0f} MB, {grown:.0f} MB above the interpreter "
                             f"(reading included) = {grown / row['frames_mb']:.2f}x frames")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
