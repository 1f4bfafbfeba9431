"""The training runner against real child processes: success, failure, timeout, memory limit."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from opsctl.adapters.training import (
    TrainingOutcome,
    TrainingProgress,
    TrainingResult,
    TrainingSpec,
    TrainingStatus,
    run_training,
)
from opsctl.clock import ManualClock
from opsctl.errors import IntegrityError
from tests.fixtures.wait import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
HELPERS = "tests.adapters.training_entrypoints"


def _spec(function: str, **overrides: object) -> TrainingSpec:
    settings: dict[str, object] = {
        "entrypoint": f"{HELPERS}:{function}",
        "timeout_seconds": 20.0,
        "memory_limit_mb": 0,
        "working_dir": str(REPO_ROOT),  # so `tests.adapters...` imports in the child
        "kill_grace_seconds": 0.5,
    }
    settings.update(overrides)
    return TrainingSpec(**settings)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie nobody reaped yet counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _assert_gone(pids: list[int], deadline_seconds: float = 2.0) -> None:
    wait_for(lambda: not any(_alive(pid) for pid in pids), deadline_seconds, 0.02,
             what="the processes to be gone", context=lambda: f"still alive: {[p for p in pids if _alive(p)]}")


def _run(spec: TrainingSpec, tmp_path: Path, params: dict[str, str] | None = None, **kwargs: object):
    lines: list[str] = []
    outcome = run_training(spec, workdir=tmp_path, params=params or {}, on_log=lines.append, **kwargs)
    return outcome, lines


def test_success_streams_logs_while_running_and_reads_the_result_back(tmp_path: Path) -> None:
    ack = tmp_path / "ack"
    lines: list[str] = []
    seen_while_running: list[str] = []
    progress: list[TrainingProgress] = []

    def on_log(line: str) -> None:
        lines.append(line)
        if line == "waiting for ack":
            # The child is blocked until this file exists: the line arrived while it runs.
            seen_while_running.extend(lines)
            ack.touch()

    outcome = run_training(
        _spec("succeed"),
        workdir=tmp_path / "runs",
        params={"ack": str(ack)},
        on_log=on_log,
        on_progress=progress.append,
        new_id=lambda: "run-1",
    )
    assert outcome.status is TrainingStatus.SUCCEEDED, outcome.error
    assert seen_while_running == ["step 0", "step 1", "step 2", "waiting for ack"]
    assert lines == [*seen_while_running, "step 3", "step 4", "step 5"]  # step 4 went to stderr
    assert outcome.log_tail.splitlines() == lines
    assert outcome.exit_code == 0 and outcome.error is None
    assert outcome.run_id == "run-1" and outcome.output_dir == tmp_path / "runs" / "run-1" / "output"

    result = outcome.result
    assert result is not None
    assert result.artifact_path == (outcome.output_dir / "model.json").resolve()
    assert json.loads(result.artifact_path.read_text()) == {"weights": [0.1, 0.2]}
    assert result.metrics == {"accuracy": 0.91, "auc": 0.95}
    assert result.reference_sample_path is not None
    assert result.reference_sample_path.read_text().startswith("amount,age")
    assert result.training_data_hash == "sha256:" + "ab" * 32
    assert result.holdout_path is None

    assert [p.fraction for p in progress] == [0.1, 0.2, 0.3, 1.0]
    assert outcome.last_progress == TrainingProgress(1.0, "done")
    data = json.loads(json.dumps(outcome.to_json()))
    assert data["status"] == "succeeded" and data["result"]["metrics"]["auc"] == 0.95


def test_mapping_result_with_relative_paths_and_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    outcome, _ = _run(_spec("return_mapping"), tmp_path, {"accuracy": "0.75"}, clock=clock)
    assert outcome.status is TrainingStatus.SUCCEEDED, outcome.error
    assert outcome.result is not None
    assert outcome.result.metrics == {"accuracy": 0.75}
    assert outcome.result.holdout_path == (outcome.output_dir / "reference.csv").resolve()
    assert outcome.started_at == clock.now() and outcome.duration_seconds == 0.0


def test_raising_function_is_recorded_with_its_traceback(tmp_path: Path) -> None:
    outcome, lines = _run(_spec("raise_error"), tmp_path)
    assert outcome.status is TrainingStatus.FAILED
    assert outcome.result is None
    assert outcome.exit_code == 1
    assert outcome.error is not None
    assert outcome.error.startswith("Traceback (most recent call last)")
    assert "in raise_error" in outcome.error
    assert outcome.error.rstrip().endswith("ValueError: bad training data: column 'amount' missing")
    assert lines[0] == "loading training data"
    assert "ValueError: bad training data: column 'amount' missing" in outcome.log_tail


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("escape_output_dir", "outside the output directory"),
        ("half_done", "not a finite number"),
    ],
)
def test_bad_result_is_refused_and_no_partial_result_returned(tmp_path: Path, function: str, message: str) -> None:
    outcome, _ = _run(_spec(function), tmp_path)
    assert outcome.status is TrainingStatus.FAILED
    assert outcome.result is None
    assert outcome.error is not None and message in outcome.error


def test_unknown_entrypoint_fails_cleanly(tmp_path: Path) -> None:
    outcome, _ = _run(_spec("no_such_function"), tmp_path)
    assert outcome.status is TrainingStatus.FAILED and outcome.result is None
    assert outcome.error is not None and "no_such_function" in outcome.error


@pytest.mark.parametrize("function", ["hang", "hang_ignoring_sigterm"])
def test_hanging_run_is_killed_at_its_timeout_with_its_whole_group(tmp_path: Path, function: str) -> None:
    pid_file = tmp_path / "pids"
    timeout = 1.5
    started = time.monotonic()
    outcome, lines = _run(
        _spec(function, timeout_seconds=timeout, kill_grace_seconds=0.5),
        tmp_path / "runs",
        {"pid_file": str(pid_file)},
    )
    elapsed = time.monotonic() - started
    assert outcome.status is TrainingStatus.TIMED_OUT
    assert outcome.result is None
    assert timeout <= elapsed < timeout + 2.0
    assert outcome.error is not None and "1.5 s" in outcome.error
    assert lines[-1].startswith("training forever")
    # Deaf to SIGTERM: SIGKILL after the grace; otherwise SIGTERM does it.
    assert outcome.exit_code == (-9 if function == "hang_ignoring_sigterm" else -15)
    trainer_pid, sleeper_pid = (int(p) for p in pid_file.read_text().split())
    assert trainer_pid == outcome.pid
    _assert_gone([trainer_pid, sleeper_pid], deadline_seconds=0.5)


def test_processes_left_behind_by_a_successful_run_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    outcome, _ = _run(_spec("leave_orphan"), tmp_path / "runs", {"pid_file": str(pid_file)})
    assert outcome.status is TrainingStatus.SUCCEEDED, outcome.error
    _trainer, sleeper_pid = (int(p) for p in pid_file.read_text().split())
    _assert_gone([sleeper_pid], deadline_seconds=0.5)


def test_memory_hog_is_stopped_by_the_limit(tmp_path: Path) -> None:
    outcome, lines = _run(_spec("eat_memory", memory_limit_mb=512), tmp_path)
    assert outcome.status is TrainingStatus.KILLED_OOM, outcome.log_tail
    assert outcome.result is None
    assert outcome.error is not None and "MemoryError" in outcome.error
    allocated = [line for line in lines if line.startswith("allocated")]
    # 8 blocks would be the whole 512 MB; Python itself needs some (measured: 7 blocks fit).
    assert 1 <= len(allocated) < 8


@pytest.mark.parametrize(
    "code",
    [
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",  # what the kernel's OOM killer does
        "raise MemoryError()",  # a Python command script hitting its limit
    ],
)
def test_command_out_of_memory_is_recognised(tmp_path: Path, code: str) -> None:
    spec = TrainingSpec(command=[sys.executable, "-c", code], timeout_seconds=20, memory_limit_mb=0)
    outcome, _ = _run(spec, tmp_path)
    assert outcome.status is TrainingStatus.KILLED_OOM and outcome.result is None


def _command_spec(*extra: str, **overrides: object) -> TrainingSpec:
    settings: dict[str, object] = {
        "command": [sys.executable, "-m", HELPERS, *extra],
        "timeout_seconds": 20.0,
        "memory_limit_mb": 1024,
        "working_dir": str(REPO_ROOT),
        "env": {"TRAINING_FLAVOUR": "test"},
    }
    settings.update(overrides)
    return TrainingSpec(**settings)  # type: ignore[arg-type]


def test_command_entrypoint_uses_the_environment_contract(tmp_path: Path) -> None:
    progress: list[TrainingProgress] = []
    outcome, lines = _run(_command_spec(), tmp_path, {"lr": "0.01"}, on_progress=progress.append)
    assert outcome.status is TrainingStatus.SUCCEEDED, outcome.error
    assert lines == ["command trainer, lr=0.01", "command trainer done"]
    assert outcome.result is not None
    assert outcome.result.metrics == {"accuracy": 0.8, "lr": 0.01}
    assert outcome.result.reference_sample_path == (outcome.output_dir / "reference.csv").resolve()
    assert progress == [TrainingProgress(0.5, "half")]


def test_failing_command_is_recorded_with_its_output(tmp_path: Path) -> None:
    outcome, _ = _run(_command_spec(), tmp_path, {"lr": "0.1", "fail": "yes"})
    assert outcome.status is TrainingStatus.FAILED and outcome.result is None
    assert outcome.exit_code == 3
    assert outcome.error == "training exited with status 3:\ncommand trainer, lr=0.1\ngiving up: no data"


def test_missing_command_fails_without_raising(tmp_path: Path) -> None:
    outcome, _ = _run(_command_spec(command=["/nonexistent/trainer"]), tmp_path)
    assert outcome.status is TrainingStatus.FAILED and outcome.result is None
    assert outcome.exit_code == 127
    assert outcome.error is not None and "/nonexistent/trainer" in outcome.error


def test_a_broken_log_consumer_does_not_stall_the_run(tmp_path: Path) -> None:
    calls = threading.Semaphore(0)

    def explode(line: str) -> None:
        calls.release()
        raise RuntimeError("SSE client went away")

    outcome = run_training(_command_spec(), workdir=tmp_path, params={"lr": "1"}, on_log=explode)
    assert outcome.status is TrainingStatus.SUCCEEDED
    assert calls.acquire(timeout=0) and calls.acquire(timeout=0)
    assert outcome.log_tail.splitlines() == ["command trainer, lr=1", "command trainer done"]


def test_log_tail_keeps_only_the_last_kilobytes(tmp_path: Path) -> None:
    code = "for i in range(5000): print(f'line {i:05d} ' + 'x' * 90)\n" + "import sys; sys.exit(4)"
    spec = TrainingSpec(command=[sys.executable, "-c", code], timeout_seconds=20, memory_limit_mb=0, log_tail_kb=8)
    outcome, lines = _run(spec, tmp_path)
    assert len(lines) == 5000
    assert len(outcome.log_tail.encode()) <= 8 * 1024
    assert outcome.log_tail.splitlines()[-1].startswith("line 04999 ")
    assert outcome.status is TrainingStatus.FAILED


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "exactly one"),
        ({"entrypoint": "a:b", "command": ["x"]}, "exactly one"),
        ({"entrypoint": "no_colon"}, "module:function"),
        ({"entrypoint": "m:not-an-identifier"}, "module:function"),
        ({"command": ["x"], "timeout_seconds": 0}, "timeout_seconds"),
        ({"command": ["x"], "memory_limit_mb": -1}, "memory_limit_mb"),
        ({"command": ["x"], "log_tail_kb": 0}, "log_tail_kb"),
        ({"command": ["x"], "env": {"A=B": "c"}}, "env"),
    ],
)
def test_spec_rejects_impossible_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingSpec(**settings)  # type: ignore[arg-type]


def test_result_validation_rejects_missing_files(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="does not exist"):
        TrainingResult.from_json(
            {"artifact_path": "model.bin", "metrics": {}, "training_data_hash": "x"}, output_dir=tmp_path
        )
    with pytest.raises(IntegrityError, match="unknown keys: pickle"):
        TrainingResult.from_json({"pickle": "x"}, output_dir=tmp_path)


def test_outcome_cannot_carry_a_result_unless_it_succeeded(tmp_path: Path) -> None:
    artifact = tmp_path / "m"
    artifact.write_text("m")
    result = TrainingResult(artifact_path=artifact, metrics={}, training_data_hash="x")
    clock = ManualClock()
    with pytest.raises(Exception, match="exactly when it succeeded"):
        TrainingOutcome(
            run_id="r",
            status=TrainingStatus.TIMED_OUT,
            exit_code=-9,
            pid=1,
            started_at=clock.now(),
            finished_at=clock.now(),
            duration_seconds=1.0,
            output_dir=tmp_path,
            log_tail="",
            error="x",
            result=result,
        )
