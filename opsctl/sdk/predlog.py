"""Prediction and feedback logs: JSON lines written off the request path.

Usage::

    log = PredictionLogger("/var/log/models", "fraud-detector", "1.0.0")
    log.log(prediction_id, features={"v1": 0.3}, prediction=1, score=0.91, latency_ms=4.2)
    ...
    log.close()                   # flushes what is queued

Contract
--------
* ``log()`` never blocks and never raises for a full queue: it builds a small dict and
  ``put_nowait``\\s it on a bounded queue. When the queue is full (slow disk, stuck
  writer) the record is dropped and counted, both in ``dropped`` and in the
  ``opsctl_sdk_prediction_log_dropped_total{model,log}`` counter. Memory is bounded by
  ``queue_size`` records. ``logged + dropped == offered`` once ``close()`` returns.
* One background thread serialises and writes. Each record is one line ending in
  ``\\n``; a batch of whole lines goes out in one ``write`` on an unbuffered file, so a
  reader never sees half a record except, briefly, the tail of the line being
  written: readers treat a last line without ``\\n`` as not yet complete.
* Rotation is rename-based, like logrotate's default: when the next batch would take
  the file past ``max_bytes``, ``NAME.jsonl.(k)`` becomes ``NAME.jsonl.(k+1)`` (the
  oldest beyond ``backup_count`` is deleted), ``NAME.jsonl`` becomes ``NAME.jsonl.1``
  and a new ``NAME.jsonl`` is created. A reader that tails ``NAME.jsonl`` by inode
  finishes the renamed file (drains it once more after seeing a new inode at the
  path: the old file is final by then), then reopens the path; the daemon's ingestion
  follows the files that way. A follower that falls more than one file behind must
  look for the inodes it missed among ``NAME.jsonl.1 .. .N``; files rotated past
  ``backup_count`` are gone.
* Several processes (gunicorn/uvicorn workers) may log to the same file: every batch is
  written under an exclusive ``flock`` on ``NAME.jsonl.lock`` next to it, and under that
  lock the writer reopens the path if another process rotated it, takes the file's size
  from ``fstat`` (not its own count), rotates if needed and appends. So whole batches never
  interleave, rotation happens once for everyone, and nobody writes to a file after it was
  rotated (the reader's "the old file is final" holds). A lock is per open file
  description: create the logger in each worker after the fork (in the app's startup or
  lifespan), never in a parent that forks. Local file systems only (flock over NFS is not
  reliable).

File names: ``{model}.predictions.jsonl`` and ``{model}.feedback.jsonl`` in ``directory``.
Prediction records: ``prediction_id, timestamp (UTC ISO-8601, Z), model, version,
features, prediction, score, latency_ms``. Feedback records: ``prediction_id, model,
label, timestamp``; join them to predictions on ``prediction_id``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from opsctl.clock import Clock, SystemClock, utc_iso

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STOP = object()
# Lines written per write() call at most; bounds the size of one batch in memory.
_MAX_BATCH = 512


class LineSink(Protocol):
    """Where the writer thread puts complete lines (each ends in b"\\n")."""

    def write_lines(self, lines: list[bytes]) -> None: ...

    def close(self) -> None: ...


class RotatingJsonLinesFile:
    """An append-only file rotated by rename; see the module docstring for the reader contract."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, backup_count: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if backup_count < 0:
            raise ValueError(f"backup_count must be >= 0, got {backup_count}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f"{self.path.name}.lock")
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the logger's life
        except OSError:
            os.close(self._lock_fd)
            raise
        self._size = self._file.tell()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the lock shared with every other process writing this path; follow its rotations."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            try:
                rotated = os.stat(self.path).st_ino != os.fstat(self._file.fileno()).st_ino
            except FileNotFoundError:
                rotated = True
            if rotated:  # another process rotated it: write to the new file, never the rotated one
                self._file.close()
                self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
            self._size = os.fstat(self._file.fileno()).st_size
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def write_lines(self, lines: list[bytes]) -> None:
        """Append whole lines, rotating between lines so no file exceeds max_bytes
        (unless one line alone does); under the lock other processes writing this path share."""
        with self._exclusive():
            self._write_lines(lines)

    def _write_lines(self, lines: list[bytes]) -> None:
        chunk: list[bytes] = []
        chunk_size = 0
        for line in lines:
            if self._size + chunk_size + len(line) > self.max_bytes and (self._size or chunk_size):
                self._write(b"".join(chunk))
                chunk, chunk_size = [], 0
                self._rotate()
            chunk.append(line)
            chunk_size += len(line)
        if chunk:
            self._write(b"".join(chunk))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        if self.backup_count == 0:
            self.path.unlink(missing_ok=True)
        else:
            oldest = self._backup(self.backup_count)
            oldest.unlink(missing_ok=True)
            for index in range(self.backup_count - 1, 0, -1):
                source = self._backup(index)
                if source.exists():
                    source.rename(self._backup(index + 1))
            self.path.rename(self._backup(1))
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._size = 0

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        self._file.close()
        os.close(self._lock_fd)


_dropped_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_dropped_lock = threading.Lock()


def _dropped_counter(registry: CollectorRegistry) -> Counter:
    with _dropped_lock:
        counter = _dropped_by_registry.get(registry)
        if counter is None:
            counter = Counter(
                "opsctl_sdk_prediction_log_dropped_total",
                "Log records dropped because the writer could not keep up",
                ["model", "log"],
                registry=registry,
            )
            _dropped_by_registry[registry] = counter
        return counter


class JsonLinesLogger:
    """Bounded queue + one writer thread + a line sink; the base of both loggers."""

    kind = "records"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        model: str,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        backup_count: int = 5,
        queue_size: int = 10_000,
        registry: CollectorRegistry = REGISTRY,
        sink: LineSink | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not _SAFE_NAME.fullmatch(model):
            raise ValueError(f"model name {model!r} is not usable in a file name")
        if queue_size <= 0:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.model = model
        self.path = Path(directory) / f"{model}.{self.kind}.jsonl"
        self._sink: LineSink = sink or RotatingJsonLinesFile(self.path, max_bytes, backup_count)
        self._clock = clock or SystemClock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._count_lock = threading.Lock()
        self._offered = 0
        self._dropped = 0
        self._written = 0
        self._closed = False
        self._dropped_metric = _dropped_counter(registry).labels(model, self.kind)
        self._dropped_metric.inc(0)
        self.write_errors = 0
        self._thread = threading.Thread(target=self._run, name=f"opsctl-{self.kind}-log-{model}", daemon=True)
        self._thread.start()

    @property
    def offered(self) -> int:
        return self._offered

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def written(self) -> int:
        """Records handed to the sink so far."""
        return self._written

    def _offer(self, record: dict[str, Any]) -> bool:
        accepted = False
        # Under the lock so that no record can slip in behind close()'s stop marker unseen.
        with self._count_lock:
            self._offered += 1
            if not self._closed:
                try:
                    self._queue.put_nowait(record)
                    accepted = True
                except queue.Full:
                    pass
            if not accepted:
                self._dropped += 1
        if not accepted:
            self._dropped_metric.inc()
        return accepted

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[Any] = [item]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines: list[bytes] = []
            for record in batch:
                if record is _STOP:
                    stop = True
                    continue
                lines.append(_encode(record))
            if lines:
                try:
                    self._sink.write_lines(lines)
                    self._written += len(lines)
                except OSError:
                    # A full or failing disk must not kill the writer: count the loss and go on.
                    with self._count_lock:
                        self._dropped += len(lines)
                        self.write_errors += 1
                    self._dropped_metric.inc(len(lines))
        self._sink.close()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting records, write everything queued, close the file."""
        with self._count_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)  # blocks only while the queue is full, i.e. until the writer drains
        self._thread.join(timeout)

    def __enter__(self) -> JsonLinesLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _timestamp(self, timestamp: datetime | None) -> str:
        return utc_iso(timestamp or self._clock.now())


def _encode(record: dict[str, Any]) -> bytes:
    # default=str: a numpy scalar or Decimal in features must not kill the writer thread.
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")


class PredictionLogger(JsonLinesLogger):
    """One JSON line per prediction (see the module docstring)."""

    kind = "predictions"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        model: str,
        version: str,
        max_bytes: int = 16 * 1024 * 1024,
        backup_count: int = 5,
        queue_size: int = 10_000,
        *,
        registry: CollectorRegistry = REGISTRY,
        sink: LineSink | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            directory,
            model,
            max_bytes=max_bytes,
            backup_count=backup_count,
            queue_size=queue_size,
            registry=registry,
            sink=sink,
            clock=clock,
        )
        self.version = version

    def log(
        self,
        prediction_id: str,
        features: Mapping[str, Any],
        prediction: Any,
        score: float | None = None,
        latency_ms: float | None = None,
        *,
        version: str | None = None,
        timestamp: datetime | None = None,
    ) -> bool:
        """Queue one record; False if it was dropped. Never blocks."""
        return self._offer(
            {
                "prediction_id": prediction_id,
                "timestamp": self._timestamp(timestamp),
                "model": self.model,
                "version": version or self.version,
                "features": dict(features),  # a copy: the caller may reuse its dict
                "prediction": prediction,
                "score": score,
                "latency_ms": latency_ms,
            }
        )


class FeedbackLogger(JsonLinesLogger):
    """One JSON line per ground-truth label, joined to predictions later by prediction_id."""

    kind = "feedback"

    def log(self, prediction_id: str, label: Any, *, timestamp: datetime | None = None) -> bool:
        """Queue one label; False if it was dropped. Never blocks."""
        return self._offer(
            {
                "prediction_id": prediction_id,
                "model": self.model,
                "label": label,
                "timestamp": self._timestamp(timestamp),
            }
        )


__all__ = [
    "FeedbackLogger",
    "JsonLinesLogger",
    "LineSink",
    "PredictionLogger",
    "RotatingJsonLinesFile",
]
