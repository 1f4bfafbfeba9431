"""LogTailer: complete lines only, rotation, copytruncate, malformed lines, restarts."""

from __future__ import annotations

import json
import logging
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from opsctl.adapters.ingest import (
    LogTailer,
    MemoryOffsetStore,
    Offset,
    features_frame,
    outputs_frame,
)
from opsctl.adapters.offset_store import RegistryOffsetStore
from opsctl.adapters.registry import Registry
from opsctl.core.window import FeedbackRecord, PredictionRecord, WindowPolicy, WindowSet
from opsctl.sdk.predlog import FeedbackLogger, PredictionLogger, RotatingJsonLinesFile

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def durable_store(path: Path) -> RegistryOffsetStore:
    """A new store object on the registry file at ``path``: the daemon's store, as after a restart."""
    return RegistryOffsetStore(Registry(path))


def line(i: int, **over: object) -> bytes:
    obj: dict[str, object] = {
        "prediction_id": f"p{i}",
        "timestamp": "2026-01-01T00:00:00Z",
        "model": "fraud",
        "version": "v1",
        "features": {"amount": float(i), "country": "FR"},
        "prediction": i % 2,
        "score": 0.25,
        "latency_ms": 1.5,
    }
    obj.update(over)
    return (json.dumps(obj) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def ids(records: list[object]) -> list[str]:
    return [r.prediction_id for r in records]  # type: ignore[attr-defined]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "predictions.jsonl"


def test_reads_new_lines_once(log_path: Path) -> None:
    append(log_path, line(1) + line(2))
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    assert ids(tailer.read()) == ["p1", "p2"]
    assert tailer.read() == []
    append(log_path, line(3))
    assert ids(tailer.read()) == ["p3"]


def test_a_missing_file_is_not_an_error(log_path: Path) -> None:
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    assert tailer.read() == []
    append(log_path, line(1))
    assert ids(tailer.read()) == ["p1"]


def test_a_truncated_last_line_waits_for_its_newline(log_path: Path) -> None:
    full = line(2)
    append(log_path, line(1) + full[:20])
    store = MemoryOffsetStore()
    tailer = LogTailer(log_path, store, "k")
    assert ids(tailer.read()) == ["p1"]
    assert store.get("k") == Offset(os.stat(log_path).st_ino, len(line(1)), 1, store.get("k").fingerprint)  # type: ignore[union-attr]
    assert tailer.read() == []
    append(log_path, full[20:-1])
    assert tailer.read() == []  # still no newline
    append(log_path, b"\n")
    records = tailer.read()
    assert ids(records) == ["p2"] and isinstance(records[0], PredictionRecord)
    assert tailer.stats.malformed == 0


def test_malformed_lines_are_counted_skipped_and_logged(log_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad_type = line(4, latency_ms="fast")
    missing = json.dumps({"prediction_id": "p5", "timestamp": "2026-01-01T00:00:00Z"}).encode() + b"\n"
    append(log_path, line(1) + b"{not json\n" + b"\xff\xfe\n" + bad_type + missing + line(6))
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    with caplog.at_level(logging.WARNING, logger="opsctl.ingest"):
        batch = tailer.poll()
    assert ids(batch.records) == ["p1", "p6"]
    assert tailer.stats.malformed == 4
    assert [(m.line, m.problem.split(":")[0]) for m in batch.malformed] == [
        (2, "not JSON"), (3, "not UTF-8"), (4, "latency_ms"), (5, "model"),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{log_path}:2: skipped malformed line" in m for m in messages)
    assert any(f"{log_path}:4:" in m and "latency_ms" in m for m in messages)


def test_an_overlong_line_is_skipped_without_stalling(log_path: Path) -> None:
    huge = line(2, features={"blob": "x" * 5000})
    append(log_path, line(1) + huge + line(3))
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k", max_line_bytes=1000, max_bytes_per_poll=2000)
    got: list[str] = []
    for _ in range(10):
        got += ids(tailer.read())
    assert got == ["p1", "p3"]
    assert tailer.stats.malformed == 1


def test_feedback_lines_are_read_as_feedback(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    append(path, json.dumps({"prediction_id": "p1", "label": 1, "timestamp": "2026-01-01T00:00:00Z"}).encode() + b"\n")
    records = LogTailer(path, MemoryOffsetStore(), "fb").read()
    assert records == [FeedbackRecord("p1", 1, T0)]


def test_rotation_mid_read_finishes_the_old_file_then_reads_the_new_one(log_path: Path) -> None:
    append(log_path, b"".join(line(i) for i in range(10)))
    # a small budget stops the first poll in the middle of the file
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k", max_line_bytes=300, max_bytes_per_poll=600)
    first = ids(tailer.read())
    assert 0 < len(first) < 10
    append(log_path, line(10) + line(11))  # written before the rotation
    os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
    append(log_path, line(12) + line(13))
    got = list(first)
    for _ in range(20):
        got += ids(tailer.read())
    assert got == [f"p{i}" for i in range(14)]
    assert tailer.stats.rotations == 1 and tailer.stats.lost_rotations == 0


def test_two_rotations_between_polls_lose_nothing(log_path: Path) -> None:
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    append(log_path, line(0))
    assert ids(tailer.read()) == ["p0"]
    append(log_path, line(1))
    os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
    append(log_path, line(2))
    os.rename(log_path.with_name("predictions.jsonl.1"), log_path.with_name("predictions.jsonl.2"))
    os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
    append(log_path, line(3))
    assert ids(tailer.read()) == ["p1", "p2", "p3"]


def test_rotation_before_the_new_file_exists(log_path: Path) -> None:
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    append(log_path, line(0))
    tailer.read()
    append(log_path, line(1))
    os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
    assert ids(tailer.read()) == ["p1"]  # the rest of the old file, found by inode
    append(log_path, line(2))
    assert ids(tailer.read()) == ["p2"]


def test_an_unterminated_line_in_a_rotated_file_is_counted(log_path: Path) -> None:
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    append(log_path, line(0) + line(1)[:15])
    assert ids(tailer.read()) == ["p0"]
    os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
    append(log_path, line(2))
    assert ids(tailer.read()) == ["p2"]
    assert tailer.stats.malformed == 1


def test_a_rotated_file_already_gone_is_counted_and_the_new_file_read(log_path: Path) -> None:
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    append(log_path, line(0))
    tailer.read()
    append(log_path, line(1))
    log_path.unlink()
    keep = log_path.with_name("keep")  # hold an inode so the new file cannot reuse the old number
    append(keep, b"x")
    append(log_path, line(2))
    assert ids(tailer.read()) == ["p2"]
    assert tailer.stats.lost_rotations == 1


def test_copytruncate_restarts_at_zero_and_is_counted(log_path: Path) -> None:
    append(log_path, b"".join(line(i) for i in range(5)))
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    assert len(tailer.read()) == 5
    with log_path.open("r+b") as handle:
        handle.truncate(0)
    append(log_path, line(5))
    assert ids(tailer.read()) == ["p5"]
    assert tailer.stats.truncations == 1


def test_truncated_and_refilled_beyond_the_offset_is_detected_by_fingerprint(log_path: Path) -> None:
    append(log_path, line(0) + line(1))
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    assert len(tailer.read()) == 2
    with log_path.open("r+b") as handle:
        handle.truncate(0)
    append(log_path, b"".join(line(i) for i in range(10, 15)))  # now longer than before
    assert ids(tailer.read()) == [f"p{i}" for i in range(10, 15)]
    assert tailer.stats.truncations == 1


def test_restart_resumes_from_the_persisted_offset(tmp_path: Path, log_path: Path) -> None:
    state = tmp_path / "state" / "registry.db"
    append(log_path, line(0) + line(1))
    assert ids(LogTailer(log_path, durable_store(state), "k").read()) == ["p0", "p1"]
    append(log_path, line(2))
    # a new process: new store object, new tailer
    again = LogTailer(log_path, durable_store(state), "k")
    assert ids(again.read()) == ["p2"]
    assert again.read() == []


def test_a_crash_between_reading_and_persisting_redelivers_and_the_window_dedupes(
    tmp_path: Path, log_path: Path
) -> None:
    """At-least-once: lines polled but not committed come again after a restart, never skipped."""
    state = tmp_path / "registry.db"
    windows = WindowSet(WindowPolicy(mode="count"), rng=random.Random(0))
    append(log_path, line(0) + line(1))
    first = LogTailer(log_path, durable_store(state), "k")
    batch = first.poll()
    windows.add_all(batch.records, T0)
    first.commit(batch)
    append(log_path, line(2) + line(3))
    batch = first.poll()
    windows.add_all(batch.records, T0)
    # crash here: the offset of p2, p3 is never persisted
    append(log_path, line(4))
    os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
    append(log_path, line(5))
    second = LogTailer(log_path, durable_store(state), "k")
    batch = second.poll()
    assert ids(batch.records) == ["p2", "p3", "p4", "p5"]  # redelivered, then the rest, in order
    windows.add_all(batch.records, T0)
    second.commit(batch)
    assert windows.snapshot("fraud", T0).prediction_ids == tuple(f"p{i}" for i in range(6))
    assert windows.stats.duplicates == 2
    assert LogTailer(log_path, durable_store(state), "k").read() == []


def test_rewind_forgets_uncommitted_progress(log_path: Path) -> None:
    append(log_path, line(0))
    tailer = LogTailer(log_path, MemoryOffsetStore(), "k")
    tailer.poll()
    tailer.rewind()
    assert ids(tailer.read()) == ["p0"]


def test_random_writes_rotations_truncated_lines_and_restarts_lose_and_duplicate_nothing(
    tmp_path: Path, log_path: Path
) -> None:
    """A seeded soak: writer appends (sometimes half a line), rotates; the reader polls with small
    budgets and restarts (committing first), and must see every line exactly once, in order."""
    rng = random.Random(7)
    store = MemoryOffsetStore()  # restarts here are new tailers on the same store

    def new_tailer() -> LogTailer:
        return LogTailer(log_path, store, "k", max_line_bytes=400, max_bytes_per_poll=rng.choice([400, 900, 5000]))

    tailer = new_tailer()
    written: list[str] = []
    got: list[str] = []
    pending = b""  # the unwritten rest of a half-written line
    n = rotations = restarts = 0
    for _ in range(400):
        action = rng.random()
        if action < 0.45:
            data = pending
            pending = b""
            for _ in range(rng.randint(1, 4)):
                data += line(n)
                written.append(f"p{n}")
                n += 1
            if rng.random() < 0.3:
                cut = rng.randrange(1, len(data))
                data, pending = data[:cut], data[cut:]
            append(log_path, data)
        elif action < 0.55 and not pending and log_path.exists():
            for k in range(8, 0, -1):  # logrotate-style numbered rotation
                older = log_path.with_name(f"predictions.jsonl.{k}")
                if older.exists():
                    os.replace(older, log_path.with_name(f"predictions.jsonl.{k + 1}"))
            os.rename(log_path, log_path.with_name("predictions.jsonl.1"))
            rotations += 1
        elif action < 0.65:
            tailer = new_tailer()  # restart after a clean commit
            restarts += 1
        else:
            batch = tailer.poll()
            got += ids(batch.records)
            tailer.commit(batch)
    append(log_path, pending)
    for _ in range(50):
        got += ids(tailer.read())
    assert got == written
    assert tailer.stats.malformed == 0
    assert len(written) > 300 and rotations > 20 and restarts > 20  # the soak did soak


def test_frames_for_the_drift_code(log_path: Path) -> None:
    append(log_path, line(1) + line(2, features={"amount": 3.0}, score=None))
    windows = WindowSet(rng=random.Random(0))
    windows.add_all(LogTailer(log_path, MemoryOffsetStore(), "k").read(), T0)
    snap = windows.snapshot("fraud", T0)
    features = features_frame(snap)
    assert list(features.columns) == ["amount", "country"]
    assert features.loc["p2", "amount"] == 3.0 and pd.isna(features.loc["p2", "country"])
    outputs = outputs_frame(snap)
    assert outputs["score"].isna().tolist() == [False, True]
    assert list(outputs.columns) == ["timestamp", "version", "prediction", "score", "latency_ms", "label"]


# --------------------------------------------------------------------------- with the SDK


def test_follows_the_sdk_writer_through_its_rotations(tmp_path: Path) -> None:
    path = tmp_path / "fraud.predictions.jsonl"
    sink = RotatingJsonLinesFile(path, max_bytes=2000, backup_count=12)
    tailer = LogTailer(path, MemoryOffsetStore(), "fraud/predictions")
    rng = random.Random(5)
    got: list[str] = []
    n = 0
    for _ in range(60):
        batch = [line(n + k) for k in range(rng.randint(1, 6))]
        n += len(batch)
        sink.write_lines(batch)
        if rng.random() < 0.4:  # the reader sometimes falls several files behind
            got += ids(tailer.read())
    sink.close()
    got += ids(tailer.read())
    assert got == [f"p{i}" for i in range(n)]
    assert tailer.stats.rotations >= 10 and tailer.stats.lost_rotations == 0


def test_reads_what_the_sdk_loggers_write(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with PredictionLogger(tmp_path, "fraud", "1.0.0", registry=registry) as predictions:
        predictions.log("a", features={"amount": 3.5, "country": "FR"}, prediction=1, score=0.9, latency_ms=4.2)
        predictions.log("b", features={"amount": 1.0}, prediction=0)  # no score, no latency
    with FeedbackLogger(tmp_path, "fraud", registry=registry) as feedback:
        feedback.log("a", label=1)
    store = MemoryOffsetStore()
    windows = WindowSet(rng=random.Random(0))
    now = datetime.now(UTC)
    for kind in ("predictions", "feedback"):
        tailer = LogTailer(tmp_path / f"fraud.{kind}.jsonl", store, f"fraud/{kind}")
        windows.add_all(tailer.read(), now)
        assert tailer.stats.malformed == 0
    snap = windows.snapshot("fraud", now)
    assert snap.prediction_ids == ("a", "b")
    assert snap.versions == ("1.0.0", "1.0.0")
    assert snap.labels == (1, None)
    assert snap.scores == (0.9, None) and snap.latency_ms == (4.2, None)
