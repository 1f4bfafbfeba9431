"""Several worker processes logging to one prediction log while the ingest tails it: every record read once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from opsctl.adapters.ingest import LogTailer
from opsctl.adapters.offset_store import RegistryOffsetStore
from opsctl.adapters.registry import Registry
from opsctl.core.window import PredictionRecord
from tests.fixtures.wait import wait_for

WORKERS = 4
PER_WORKER = 3_000
MAX_BYTES = 32 * 1024  # ~200 records a file: dozens of rotations, raced for by four writers

# A worker as a model server runs it: its own PredictionLogger on the shared path, created in the
# process (after any fork), logging as fast as it can once every worker is ready.
_WORKER = """
import json, sys, time
from pathlib import Path
from prometheus_client import CollectorRegistry
from opsctl.sdk.predlog import PredictionLogger

directory, worker, n, max_bytes = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = PredictionLogger(directory, "fraud", "1.0.0", max_bytes=max_bytes, backup_count=10_000, queue_size=n + 1,
                       registry=CollectorRegistry())
(directory / f"ready-{worker}").touch()
while not (directory / "go").exists():
    time.sleep(0.001)
for i in range(n):
    log.log(f"{worker}-{i}", {"amount": i, "worker": worker}, i % 2, score=0.5)
    if i % 50 == 0:
        time.sleep(0.0005)  # let the writer thread take small batches, so the processes interleave
log.close()
print(json.dumps({"written": log.written, "dropped": log.dropped}))
"""


def test_four_processes_share_one_log_and_the_ingest_reads_every_record_exactly_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(logs), f"w{k}", str(PER_WORKER), str(MAX_BYTES)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k in range(WORKERS)]
    registry = Registry(tmp_path / "registry.db")
    path = logs / "fraud.predictions.jsonl"
    seen: Counter[str] = Counter()
    try:
        wait_for(lambda: all((logs / f"ready-w{k}").exists() for k in range(WORKERS)), 60,
                 what="the workers to open the log")
        tailer = LogTailer(path, RegistryOffsetStore(registry), str(path))
        (logs / "go").touch()
        while True:  # the ingest's loop: poll, apply, commit, while the writers write and rotate
            running = any(w.poll() is None for w in workers)
            batch = tailer.poll()
            assert not batch.malformed, batch.malformed[:3]
            seen.update(r.prediction_id for r in batch.records if isinstance(r, PredictionRecord))
            tailer.commit(batch)
            if not running and not batch.records:
                break
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        registry.close()

    assert reports == [{"written": PER_WORKER, "dropped": 0}] * WORKERS
    assert tailer.stats.rotations > 10  # it did rotate, under the tailer's feet
    expected = {f"w{k}-{i}" for k in range(WORKERS) for i in range(PER_WORKER)}
    assert set(seen) == expected
    assert max(seen.values()) == 1  # none twice
    # No file went over the limit: the writers rotated on the file's real size, not their own counts.
    files = [p for p in logs.iterdir() if p.name.startswith("fraud.predictions.jsonl") and not p.name.endswith(".lock")]
    assert all(p.stat().st_size <= MAX_BYTES for p in files)
