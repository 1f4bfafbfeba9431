"""The doctor's file-system probes on real directories and files."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from opsctl.adapters.doctor_probe import deployed_versions, disk_usage, duration_seconds, log_dir_facts, socket_mode


def test_log_dir_facts_find_the_newest_prediction_log(tmp_path: Path) -> None:
    now = time.time()
    logs = tmp_path / "logs"
    assert not log_dir_facts(logs, now).exists
    logs.mkdir()
    assert log_dir_facts(logs, now).newest_age_seconds is None
    old, new = logs / "fraud.predictions.jsonl", logs / "fraud.feedback.jsonl.1"
    old.write_text("{}\n")
    new.write_text("{}\n")
    (logs / "notes.txt").write_text("not a log")
    os.utime(old, (now - 7200, now - 7200))
    os.utime(new, (now - 30, now - 30))
    facts = log_dir_facts(logs, now)
    assert facts.readable and facts.files == 2 and 29 <= (facts.newest_age_seconds or 0) <= 31
    logs.chmod(0)
    try:
        if not os.access(logs, os.R_OK):  # root reads everything
            assert not log_dir_facts(logs, now).readable
    finally:
        logs.chmod(0o755)


def test_disk_usage_measures_the_nearest_existing_folder(tmp_path: Path) -> None:
    free, total, measured = disk_usage(tmp_path / "not" / "yet")
    assert measured == str(tmp_path) and free is not None and total is not None and 0 < free <= total


def test_socket_mode_and_durations_and_an_absent_registry(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        path.chmod(0o660)
        assert socket_mode(path) == 0o660
    (tmp_path / "file").write_text("x")
    assert socket_mode(tmp_path / "file") is None and socket_mode(tmp_path / "none") is None
    assert duration_seconds("1m30s") == 90 and duration_seconds("15s") == 15 and duration_seconds("500ms") == 0.5
    assert duration_seconds("soon") is None
    assert deployed_versions(tmp_path / "registry.db") == []
