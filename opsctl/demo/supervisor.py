"""Process supervision for the demo fleet: start children, wait until they are ready, watch them,
restart them when asked, and tear every one of them down.

::

    supervisor = Supervisor(log_dir)
    child = supervisor.start(ChildSpec("fraud-detector", [sys.executable, "-m", ...]),
                             ready=lambda: ready_file.exists())
    ...
    for event in supervisor.poll():     # call every half second or so
        print(event.message)
    supervisor.stop_all()               # TERM, then KILL after the grace period

Each child runs in its own session (process group), so a Ctrl-C at the terminal reaches only the
supervisor, which then stops the children in reverse start order (traffic before servers, servers
before the daemon, the daemon before Prometheus); and the whole group of a child (anything it forked)
is signalled, so nothing is left behind. Each child also asks the kernel to send it SIGTERM when the
supervisor dies (``PR_SET_PDEATHSIG``), so even a ``kill -9`` of the supervisor leaves no orphans.

Restarting a crashed child is off by default: the demo's ``crash`` fault must stay visible (the
scrape target goes down, health turns ``unknown``). With a :class:`RestartPolicy` a child that
exits unexpectedly is started again after ``backoff_seconds``, at most ``max_restarts`` times.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.errors import OpsctlError

_PR_SET_PDEATHSIG = 1


class SupervisorError(OpsctlError):
    """A child could not be started or did not become ready in time."""


@dataclass(frozen=True)
class ChildSpec:
    """What to run: a name for messages and logs, the command, its environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    # Exit codes that mean "stopped as asked" (uvicorn re-raises SIGTERM, so servers exit -15).
    clean_exit_codes: frozenset[int] = frozenset({0, -signal.SIGTERM, -signal.SIGINT})
    restartable: bool = True
    # What an exit code means for this child, shown in the exit message (e.g. 70: "injected crash").
    exit_meanings: Mapping[int, str] = field(default_factory=dict)
    # Said when the child exited and is not restarted (how to bring it back), instead of the default.
    down_hint: str = ""

    def describe(self, code: int) -> str:
        meaning = self.exit_meanings.get(code)
        return f"{describe_exit(code)} ({meaning})" if meaning else describe_exit(code)


@dataclass(frozen=True)
class RestartPolicy:
    enabled: bool = False
    max_restarts: int = 3
    backoff_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.backoff_seconds < 0:
            raise ValueError("max_restarts and backoff_seconds must be >= 0")


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    restarts: int = 0
    exit_code: int | None = None
    restart_due: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.exit_code is None and self.process.poll() is None

    def log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass(frozen=True)
class ChildEvent:
    """Something that happened to a child, for the person watching the demo."""

    name: str
    kind: str  # "exited" | "restarted" | "restart-failed"
    exit_code: int | None
    message: str


@dataclass(frozen=True)
class StopEvent:
    """Progress of :meth:`Supervisor.stop_all`: a child is being stopped, has stopped, or could not be."""

    child: Child
    kind: str  # "stopping" | "stopped" | "failed"
    exit_code: int | None = None
    error: str = ""

    @property
    def message(self) -> str:
        """``ok``, or what the exit code says when the child had stopped on its own earlier."""
        if self.kind == "failed":
            return f"failed: {self.error}"
        code, spec = self.exit_code, self.child.spec
        if code is None or code in spec.clean_exit_codes:
            return "ok"
        return f"ok (it had stopped earlier: {spec.describe(code)})"


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def with_parent_death_signal(argv: Sequence[str], sig: int = signal.SIGTERM) -> list[str]:
    """``argv`` behind a tiny Python trampoline that asks for ``sig`` when its parent dies, then
    execs ``argv`` (same pid): for children another library spawns, such as LocalPrometheus."""
    trampoline = (
        "import ctypes, ctypes.util, os, sys\n"
        "name = ctypes.util.find_library('c')\n"
        f"name and ctypes.CDLL(name).prctl({_PR_SET_PDEATHSIG}, {int(sig)}, 0, 0, 0)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    return [sys.executable, "-c", trampoline, *argv]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervisor:
    """Owns the demo's child processes; every method runs on the caller's (main) thread."""

    log_dir: Path
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    grace_seconds: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def start(
        self,
        spec: ChildSpec,
        *,
        ready: Callable[[], bool] | None = None,
        ready_timeout_seconds: float = 30.0,
    ) -> Child:
        """Start ``spec`` and wait until ``ready()`` is true (polling); raises SupervisorError."""
        child = Child(spec, self._spawn(spec), self.log_dir / f"{spec.name}.log", self.monotonic())
        self.children.append(child)
        if ready is not None:
            self.wait_ready(child, ready, ready_timeout_seconds)
        return child

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{spec.name}.log", "ab") as log:
            try:
                return subprocess.Popen(
                    list(spec.argv),
                    env=dict(spec.env) if spec.env is not None else None,
                    cwd=spec.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_set_parent_death_signal,
                )
            except OSError as error:
                raise SupervisorError(f"cannot start {spec.name}: {error}") from error

    def wait_ready(self, child: Child, ready: Callable[[], bool], timeout_seconds: float) -> None:
        deadline = self.monotonic() + timeout_seconds
        while True:
            code = child.process.poll()
            if code is not None:
                child.exit_code = code
                raise SupervisorError(
                    f"{child.spec.name} exited during start-up ({child.spec.describe(code)}); "
                    f"last lines of {child.log_path}:\n{child.log_tail()}"
                )
            try:
                if ready():
                    return
            except OSError:
                pass
            if self.monotonic() > deadline:
                raise SupervisorError(
                    f"{child.spec.name} not ready after {timeout_seconds:g}s; "
                    f"last lines of {child.log_path}:\n{child.log_tail()}"
                )
            time.sleep(0.05)

    def poll(self) -> list[ChildEvent]:
        """Notice children that exited since the last call; restart them if the policy says so."""
        events: list[ChildEvent] = []
        if self.stopping:
            return events
        now = self.monotonic()
        for child in self.children:
            if child.exit_code is None:
                code = child.process.poll()
                if code is None:
                    continue
                child.exit_code = code
                will_restart = (
                    self.restart.enabled
                    and child.spec.restartable
                    and code not in child.spec.clean_exit_codes
                    and child.restarts < self.restart.max_restarts
                )
                suffix = (
                    f"; restarting in {self.restart.backoff_seconds:g}s"
                    if will_restart
                    else f"; {child.spec.down_hint}"
                    if child.spec.down_hint
                    else "; not restarting (restart of crashed servers is off: --restart-crashed turns it on)"
                    if not self.restart.enabled
                    else ""
                )
                events.append(ChildEvent(child.spec.name, "exited", code,
                                         f"{child.spec.name} {child.spec.describe(code)}{suffix}"))
                if will_restart:
                    child.restart_due = now + self.restart.backoff_seconds
            elif child.restart_due is not None and now >= child.restart_due:
                child.restart_due = None
                try:
                    child.process = self._spawn(child.spec)
                except SupervisorError as error:
                    events.append(ChildEvent(child.spec.name, "restart-failed", child.exit_code, str(error)))
                    continue
                child.restarts += 1
                child.exit_code = None
                child.started_at = now
                events.append(ChildEvent(child.spec.name, "restarted", None,
                                         f"{child.spec.name} restarted (pid {child.pid}, restart {child.restarts})"))
        return events

    def restart_now(self, child: Child, *, ready: Callable[[], bool] | None = None,
                    ready_timeout_seconds: float = 30.0) -> Child:
        """Start a child that is down again, now, with the same spec (``opsctl demo restart``)."""
        if child.running:
            raise SupervisorError(f"{child.spec.name} is running (pid {child.pid})")
        child.restart_due = None
        child.process = self._spawn(child.spec)
        child.exit_code = None
        child.restarts += 1
        child.started_at = self.monotonic()
        if ready is not None:
            self.wait_ready(child, ready, ready_timeout_seconds)
        return child

    def stop_all(self, on_event: Callable[[StopEvent], None] | None = None) -> dict[str, int | None]:
        """Stop every child, newest first: TERM to its process group, KILL after the grace period.

        One child failing to stop does not spare the others. ``on_event`` hears about each child
        before and after it is stopped (for progress lines). Returns each child's exit code (None
        when it could not be stopped). Safe to call twice.
        """
        self.stopping = True
        report = on_event or (lambda event: None)
        codes: dict[str, int | None] = {}
        for child in reversed(self.children):
            report(StopEvent(child, "stopping"))
            try:
                code = self.stop_child(child)
            except (OSError, subprocess.SubprocessError) as error:
                codes[child.spec.name] = None
                report(StopEvent(child, "failed", error=str(error)))
                continue
            codes[child.spec.name] = code
            report(StopEvent(child, "stopped", exit_code=code))
        return codes

    def stop_child(self, child: Child) -> int | None:
        child.restart_due = None
        process = child.process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Whatever the child left in its group (a grandchild) goes too.
        _signal_group(process.pid, signal.SIGKILL)
        child.exit_code = process.returncode
        return child.exit_code


def _signal_group(pgid: int, sig: int) -> None:
    # The child is the leader of its own session, so its pid is its process group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
