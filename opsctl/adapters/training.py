"""The retraining runner: one training run in its own process, with a timeout, a memory limit
and its logs streamed as they come.

A training entry point is either a Python function ``"package.module:function"`` or a command.
The function is called as ``function(context: TrainingContext) -> TrainingResult`` (a mapping with
the same keys is accepted too); a command finds the same contract in environment variables:

- ``OPSCTL_TRAINING_OUTPUT_DIR``: the directory it owns for this run (write the artifact here),
- ``OPSCTL_TRAINING_PARAMS``: the parameters as a JSON object of strings,
- ``OPSCTL_TRAINING_RESULT``: where to write the result, a JSON object with the keys of
  ``TrainingResult.to_json()`` (paths may be relative to the output directory),
- ``OPSCTL_TRAINING_PROGRESS_FD``: a file descriptor; write JSON lines
  ``{"fraction": 0.5, "message": "epoch 5/10"}`` to report progress.

The result crosses the process boundary as JSON, never as a pickle, and the parent checks it
again (paths inside the output directory, files present, metrics finite) before believing it.
A run that fails, times out or runs out of memory has ``result=None``: never a partial result.

Isolation, and its limits:

- the run is the leader of a new session (so of a new process group); on timeout the whole
  group gets SIGTERM, then SIGKILL after ``kill_grace_seconds``; when the leader exits on its
  own, whatever it left behind in its group is killed too. A descendant that starts its own
  session (``setsid``, a daemonising tool) escapes the group; only a cgroup would catch it.
- the memory limit is ``RLIMIT_AS`` (address space, not resident memory), set by the launcher
  ``opsctl.adapters.training_child`` before it imports the training code or ``exec``\\ s the
  command (no ``preexec_fn``, which is unsafe in the threaded daemon). Libraries that reserve
  large virtual areas (many BLAS threads, JAX, CUDA) need a generous limit.
- out-of-memory is recognised from a ``MemoryError`` reported by the launcher, the last lines of
  a command's output (``MemoryError``, ``std::bad_alloc``, ``Cannot allocate memory``) or a
  SIGKILL that the runner did not send (the kernel's OOM killer).

``run_training`` blocks until the run ends: call it from a worker thread, never an event loop.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.errors import IntegrityError, TrainingError

ENV_OUTPUT_DIR = "OPSCTL_TRAINING_OUTPUT_DIR"
ENV_PARAMS = "OPSCTL_TRAINING_PARAMS"
ENV_RESULT = "OPSCTL_TRAINING_RESULT"
ENV_PROGRESS_FD = "OPSCTL_TRAINING_PROGRESS_FD"

_MAX_LINE_BYTES = 64 * 1024
_OOM_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory")


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class TrainingSpec:
    """How to run one model's training (a settings section: field names are the TOML keys).

    Exactly one of ``entrypoint`` (``"module:function"``) and ``command`` is set.
    ``memory_limit_mb = 0`` means no limit. ``python`` is the interpreter for a function
    entry point (default: the one running opsctl).
    """

    entrypoint: str = ""
    command: list[str] = field(default_factory=list)
    timeout_seconds: float = 3600.0
    memory_limit_mb: int = 4096
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    python: str = ""
    kill_grace_seconds: float = 5.0
    log_tail_kb: int = 64

    def __post_init__(self) -> None:
        if bool(self.entrypoint) == bool(self.command):
            raise ValueError("set exactly one of entrypoint (module:function) and command")
        if self.entrypoint:
            module, sep, function = self.entrypoint.partition(":")
            if not (sep and module and function and function.isidentifier()):
                raise ValueError(f"entrypoint must look like 'package.module:function', got {self.entrypoint!r}")
        if not all(isinstance(part, str) and part for part in self.command):
            raise ValueError("command must be a list of non-empty strings")
        if not (math.isfinite(self.timeout_seconds) and self.timeout_seconds > 0):
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds!r}")
        if self.memory_limit_mb < 0:
            raise ValueError(f"memory_limit_mb must be 0 (no limit) or positive, got {self.memory_limit_mb!r}")
        if not (math.isfinite(self.kill_grace_seconds) and self.kill_grace_seconds >= 0):
            raise ValueError(f"kill_grace_seconds must be zero or positive, got {self.kill_grace_seconds!r}")
        if self.log_tail_kb <= 0:
            raise ValueError(f"log_tail_kb must be positive, got {self.log_tail_kb!r}")
        for key in self.env:
            if not key or "=" in key:
                raise ValueError(f"env key {key!r} is not a valid environment variable name")


# ---------------------------------------------------------------------------------------------
# the contract with the training code


@dataclass(frozen=True)
class TrainingResult:
    """What a training run hands back; paths are inside the run's output directory."""

    artifact_path: Path
    metrics: dict[str, float]
    training_data_hash: str
    reference_sample_path: Path | None = None  # CSV the drift checks compare live data against
    holdout_path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact_path": str(self.artifact_path),
            "metrics": dict(self.metrics),
            "training_data_hash": self.training_data_hash,
            "reference_sample_path": None if self.reference_sample_path is None else str(self.reference_sample_path),
            "holdout_path": None if self.holdout_path is None else str(self.holdout_path),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, output_dir: Path) -> TrainingResult:
        """Validate a result from the training side; raise ``IntegrityError`` on anything off.

        Relative paths are taken relative to ``output_dir``; every path must resolve inside it
        and name an existing file. Metrics must be finite numbers.
        """
        if not isinstance(data, Mapping):
            raise IntegrityError(f"training result must be a JSON object, got {type(data).__name__}")
        known = {"artifact_path", "metrics", "training_data_hash", "reference_sample_path", "holdout_path"}
        unknown = set(data) - known
        if unknown:
            raise IntegrityError(f"training result has unknown keys: {', '.join(sorted(unknown))}")
        root = output_dir.resolve()

        def path(key: str, *, required: bool) -> Path | None:
            value = data.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str | os.PathLike) or not str(value):
                raise IntegrityError(f"training result: {key} must be a path, got {value!r}")
            candidate = Path(value)
            resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
            if not resolved.is_relative_to(root):
                raise IntegrityError(f"training result: {key} {str(value)!r} is outside the output directory")
            if not resolved.is_file():
                raise IntegrityError(f"training result: {key} {str(value)!r} does not exist")
            return resolved

        metrics = data.get("metrics")
        if not isinstance(metrics, Mapping):
            raise IntegrityError("training result: metrics must be an object of name -> number")
        clean: dict[str, float] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise IntegrityError(f"training result: metric name {name!r} is not a non-empty string")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise IntegrityError(f"training result: metric {name!r} is not a finite number: {value!r}")
            clean[name] = float(value)
        data_hash = data.get("training_data_hash")
        if not isinstance(data_hash, str) or not data_hash:
            raise IntegrityError("training result: training_data_hash must be a non-empty string")
        artifact = path("artifact_path", required=True)
        assert artifact is not None
        return cls(
            artifact_path=artifact,
            metrics=clean,
            training_data_hash=data_hash,
            reference_sample_path=path("reference_sample_path", required=False),
            holdout_path=path("holdout_path", required=False),
        )


@dataclass(frozen=True)
class TrainingProgress:
    fraction: float
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "message": self.message}


class TrainingContext:
    """What a training function receives: its output directory, its parameters, a progress hook."""

    def __init__(self, output_dir: Path, params: Mapping[str, str], progress_fd: int | None = None) -> None:
        self.output_dir = output_dir
        self.params: Mapping[str, str] = dict(params)
        self._progress_fd = progress_fd

    def report_progress(self, fraction: float, message: str = "") -> None:
        """Tell the runner how far along the run is (0.0 to 1.0); shown live in the CLI and TUI."""
        if not (isinstance(fraction, int | float) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"progress fraction must be between 0 and 1, got {fraction!r}")
        if self._progress_fd is None:
            return
        line = json.dumps({"fraction": float(fraction), "message": str(message)[:1000]}) + "\n"
        # If the runner stopped listening, progress is lost, not the training.
        with contextlib.suppress(OSError):
            os.write(self._progress_fd, line.encode())


# ---------------------------------------------------------------------------------------------
# outcome


class TrainingStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    KILLED_OOM = "killed_oom"


@dataclass(frozen=True)
class TrainingOutcome:
    """How a run ended. ``result`` is set only when ``status`` is ``succeeded``."""

    run_id: str
    status: TrainingStatus
    exit_code: int | None  # negative: killed by that signal; None: never started
    pid: int | None
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    output_dir: Path
    log_tail: str
    error: str | None
    result: TrainingResult | None
    last_progress: TrainingProgress | None = None

    def __post_init__(self) -> None:
        if (self.status is TrainingStatus.SUCCEEDED) != (self.result is not None):
            raise TrainingError("a training outcome has a result exactly when it succeeded")

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "pid": self.pid,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at),
            "duration_seconds": self.duration_seconds,
            "output_dir": str(self.output_dir),
            "log_tail": self.log_tail,
            "error": self.error,
            "result": None if self.result is None else self.result.to_json(),
            "last_progress": None if self.last_progress is None else self.last_progress.to_json(),
        }


# ---------------------------------------------------------------------------------------------
# the runner


class _LogTail:
    """The last ``limit`` bytes of output, kept line by line."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        size = len(line.encode()) + 1
        with self._lock:
            self._lines.append(line)
            self._size += size
            while self._size > self._limit and len(self._lines) > 1:
                self._size -= len(self._lines.popleft().encode()) + 1

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._lines)

    def last_lines(self, count: int) -> list[str]:
        with self._lock:
            return [line for line in list(self._lines)[-count:] if line.strip()]


def _pump_lines(stream: Any, handle: Callable[[str], None]) -> None:
    # readline with a limit: a child printing megabytes without a newline cannot exhaust our memory.
    with stream:
        while chunk := stream.readline(_MAX_LINE_BYTES):
            handle(chunk.decode("utf-8", errors="replace").rstrip("\r\n"))


def _safe_call(callback: Callable[[Any], None] | None, value: Any) -> None:
    if callback is None:
        return
    # A broken consumer (a dropped SSE client) must not stop the pump: a child blocked on a
    # full pipe would hang until its timeout.
    with contextlib.suppress(Exception):
        callback(value)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_exited(pid: int, pidfd: int | None, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``pid`` to exit, without reaping it (its group id stays reserved)."""
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, math.ceil(timeout * 1000))))
    deadline = SystemClock().monotonic() + timeout
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            return True
        remaining = deadline - SystemClock().monotonic()
        if remaining <= 0:
            return False
        threading.Event().wait(min(0.02, remaining))


def _new_run_id() -> str:
    return uuid.uuid4().hex


def run_training(
    spec: TrainingSpec,
    *,
    workdir: Path,
    params: Mapping[str, str],
    on_log: Callable[[str], None] | None = None,
    on_progress: Callable[[TrainingProgress], None] | None = None,
    clock: Clock | None = None,
    new_id: Callable[[], str] = _new_run_id,
) -> TrainingOutcome:
    """Run one training to completion (or its timeout) and say how it ended.

    The run's files go to ``workdir / run_id``: ``output/`` (the training code's), the request,
    the result or error JSON. ``on_log`` gets each line of the merged stdout/stderr as it is
    printed, ``on_progress`` each progress report; both are called from reader threads.
    ``clock`` only stamps the outcome (start, end, duration); the timeout is real elapsed time.
    The child inherits this process's environment plus ``spec.env``; the interpreter in
    ``spec.python`` must be able to import opsctl. Raises ``TrainingError`` only when the run
    directory cannot be prepared; every way the run itself can end is an outcome.
    """
    clock = clock or SystemClock()
    for key, value in params.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TrainingError(f"training params must map strings to strings, got {key!r}: {value!r}")
    run_id = new_id()
    run_dir = workdir / run_id
    output_dir = run_dir / "output"
    result_path = run_dir / "result.json"
    error_path = run_dir / "error.json"
    request_path = run_dir / "request.json"
    try:
        output_dir.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise TrainingError(f"cannot prepare run directory {run_dir}: {exc}") from exc

    # Not inheritable: Popen's pass_fds hands it to this child only, so a subprocess another
    # daemon thread starts meanwhile cannot hold the pipe open.
    progress_read, progress_write = os.pipe()
    request = {
        "entrypoint": spec.entrypoint or None,
        "command": list(spec.command) or None,
        "output_dir": str(output_dir),
        "params": dict(params),
        "result_path": str(result_path),
        "error_path": str(error_path),
        "progress_fd": progress_write,
        "memory_limit_mb": spec.memory_limit_mb,
    }
    request_path.write_text(json.dumps(request, indent=2))
    env = {
        **os.environ,
        **spec.env,
        "PYTHONUNBUFFERED": "1",  # lines reach on_log as printed, not when a buffer fills
        ENV_OUTPUT_DIR: str(output_dir),
        ENV_PARAMS: json.dumps(dict(params)),
        ENV_RESULT: str(result_path),
        ENV_PROGRESS_FD: str(progress_write),
    }
    argv = [spec.python or sys.executable, "-m", "opsctl.adapters.training_child", str(request_path)]

    tail = _LogTail(spec.log_tail_kb * 1024)
    last_progress: list[TrainingProgress] = []

    def handle_log(line: str) -> None:
        tail.add(line)
        _safe_call(on_log, line)

    def handle_progress(line: str) -> None:
        try:
            data = json.loads(line)
            progress = TrainingProgress(float(min(1.0, max(0.0, data["fraction"]))), str(data.get("message", "")))
        except (ValueError, KeyError, TypeError):
            return  # garbage on the progress pipe is ignored, it is not the log
        last_progress[:] = [progress]
        _safe_call(on_progress, progress)

    started_at = clock.now()
    started = clock.monotonic()

    def finish(
        status: TrainingStatus, exit_code: int | None, pid: int | None, error: str | None, result: TrainingResult | None
    ) -> TrainingOutcome:
        return TrainingOutcome(
            run_id=run_id,
            status=status,
            exit_code=exit_code,
            pid=pid,
            started_at=started_at,
            finished_at=clock.now(),
            duration_seconds=max(0.0, clock.monotonic() - started),
            output_dir=output_dir,
            log_tail=tail.text(),
            error=error,
            result=result,
            last_progress=last_progress[0] if last_progress else None,
        )

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one pipe keeps stdout and stderr lines in their true order
            cwd=spec.working_dir,
            env=env,
            start_new_session=True,
            pass_fds=(progress_write,),
        )
    except OSError as exc:
        os.close(progress_read)
        os.close(progress_write)
        return finish(TrainingStatus.FAILED, None, None, f"cannot start training: {exc}", None)
    os.close(progress_write)

    pumps = [
        threading.Thread(target=_pump_lines, args=(proc.stdout, handle_log), name=f"training-log-{run_id}"),
        threading.Thread(
            target=_pump_lines,
            args=(os.fdopen(progress_read, "rb"), handle_progress),
            name=f"training-progress-{run_id}",
        ),
    ]
    for pump in pumps:
        pump.daemon = True
        pump.start()

    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    timed_out = False
    killed_by_us = False
    try:
        if not _wait_exited(proc.pid, pidfd, spec.timeout_seconds):
            timed_out = True
            killed_by_us = True
            _kill_group(proc.pid, signal.SIGTERM)
            if not _wait_exited(proc.pid, pidfd, spec.kill_grace_seconds):
                _kill_group(proc.pid, signal.SIGKILL)
        # The leader has exited but is not reaped yet, so its pid is still the group id: clear
        # out whatever it left running in the group before letting the id go.
        _kill_group(proc.pid, signal.SIGKILL)
        exit_code = proc.wait()
    finally:
        if pidfd is not None:
            os.close(pidfd)
        if proc.poll() is None:  # only on an exception above (e.g. KeyboardInterrupt)
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    for pump in pumps:
        # The group is gone, so the pipes are at EOF; the bound is a safety net only.
        pump.join(timeout=5.0)

    child_error = _read_child_error(error_path)
    if timed_out:
        return finish(
            TrainingStatus.TIMED_OUT,
            exit_code,
            proc.pid,
            f"training did not finish within {spec.timeout_seconds:g} s and was killed",
            None,
        )
    if exit_code != 0:
        oom = (
            (child_error is not None and child_error.get("type") == "MemoryError")
            or (exit_code == -signal.SIGKILL and not killed_by_us)
            or any(marker in line for line in tail.last_lines(3) for marker in _OOM_MARKERS)
        )
        return finish(
            TrainingStatus.KILLED_OOM if oom else TrainingStatus.FAILED,
            exit_code,
            proc.pid,
            _describe_failure(exit_code, child_error, tail),
            None,
        )
    try:
        raw = json.loads(result_path.read_text())
        result = TrainingResult.from_json(raw, output_dir=output_dir)
    except FileNotFoundError:
        return finish(TrainingStatus.FAILED, exit_code, proc.pid, "training exited 0 but wrote no result", None)
    except (ValueError, OSError, IntegrityError) as exc:
        return finish(TrainingStatus.FAILED, exit_code, proc.pid, f"training result rejected: {exc}", None)
    return finish(TrainingStatus.SUCCEEDED, exit_code, proc.pid, None, result)


def _read_child_error(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe_failure(exit_code: int, child_error: Mapping[str, Any] | None, tail: _LogTail) -> str:
    if child_error is not None and isinstance(child_error.get("traceback"), str):
        return child_error["traceback"]
    if child_error is not None and isinstance(child_error.get("message"), str):
        return child_error["message"]
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        reason = f"training was killed by {name}"
    else:
        reason = f"training exited with status {exit_code}"
    last = tail.last_lines(20)
    return reason + (":\n" + "\n".join(last) if last else "")


def training_pids(output_dir: Path) -> list[int]:
    """Processes of a training run: those whose environment names its output directory (Linux /proc).

    The environment survives ``exec`` and is inherited, so this finds a command-line trainer and
    whatever it started, even a child that left the process group.
    """
    marker = f"{ENV_OUTPUT_DIR}={output_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class TrainingProcesses:
    """The processes of training runs on this host, found through ``/proc`` (see :func:`training_pids`)."""

    def pids(self, output_dir: Path) -> list[int]:
        """Processes of the run whose output directory is ``output_dir``."""
        return training_pids(output_dir)

    def kill(self, output_dir: Path) -> list[int]:
        """SIGKILL every process of the run (its whole group when it leads one); returns the pids signalled."""
        killed = []
        for pid in training_pids(output_dir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return killed
