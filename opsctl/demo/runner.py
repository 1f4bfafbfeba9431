"""Bring the demo fleet up, keep it running, tear it down (the process that runs ``opsctl demo``).

Start order (each step waits for readiness by polling, never a fixed sleep): Prometheus (scraping
an empty target list) -> ``STATE_DIR/opsctl.toml`` (``--config-extra FILE`` laid over it) ->
registry seed -> daemon -> one model server per model (routing from the daemon's socket) ->
Prometheus targets -> traffic generator. Teardown runs in reverse through
:meth:`Supervisor.stop_all` (TERM, then KILL after a grace period) and removes ``demo.json``.
A running demo is controlled from elsewhere through :mod:`opsctl.demo.control`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from opsctl.adapters.prometheus_launcher import LocalPrometheus
from opsctl.clock import SystemClock, utc_iso
from opsctl.demo.faults import CRASH_EXIT_CODE
from opsctl.demo.fleet import (
    DemoState,
    FleetLayout,
    ServerState,
    demo_config_toml,
    merge_config,
    pid_alive,
    prometheus_config,
    prometheus_targets,
    write_state,
)
from opsctl.demo.supervisor import (
    Child,
    ChildSpec,
    RestartPolicy,
    StopEvent,
    Supervisor,
    SupervisorError,
    with_parent_death_signal,
)
from opsctl.errors import IntegrityError

STATUS_EVERY_SECONDS = 5.0
DAEMON_DOWN_HINT = ("it stays down so you can practise break-glass (`opsctl rollback MODEL` still moves traffic);"
                    " bring it back with `opsctl demo restart daemon --state-dir {state_dir}`")


@dataclass
class _Server:
    model: str
    versions: tuple[str, ...]
    child: Child
    port: int


class DemoFleet:
    """One demo run: the children it started and how to stop them."""

    def __init__(self, layout: FleetLayout, models: tuple[str, ...], *, rate: float, label_delay: float,
                 restart: RestartPolicy, stderr: TextIO, config_extra: str | None = None) -> None:
        self.layout = layout
        self.config_extra = config_extra
        self.models = models
        self.rate = rate
        self.label_delay = label_delay
        self.stderr = stderr
        self.supervisor = Supervisor(layout.logs, restart=restart, grace_seconds=8.0)
        self.prometheus: Any = None
        self.daemon: Child | None = None
        self.traffic: Child | None = None
        self.servers: list[_Server] = []
        self.seeded: list[Any] = []
        self.started_at = ""
        self.with_tui = False
        self.tui_running = False
        self._prometheus_exit_noted = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
        self.env = {**env, "OPSCTL_CONFIG": str(layout.config), "PYTHONUNBUFFERED": "1"}

    def say(self, text: str, *, end: str = "\n") -> None:
        """Progress on stderr; a vanished terminal (SIGHUP, closed SSH) must not stop a teardown."""
        with contextlib.suppress(OSError, ValueError):
            self.stderr.write(text + end)
            self.stderr.flush()

    def _note(self, text: str) -> None:
        """A supervision event: on stderr, except while the TUI owns the terminal (then only the log)."""
        with contextlib.suppress(OSError), (self.layout.logs / "supervisor.log").open("a", encoding="utf-8") as log:
            log.write(f"{utc_iso(_now())} {text}\n")
        if not self.tui_running:
            self.say(text)

    # -- start ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[list[str]]:
        """``starting X… ok (detail)`` on stderr; the body appends the detail."""
        self.say(f"{what}… ", end="")
        detail: list[str] = []
        started = time.monotonic()
        try:
            yield detail
        except BaseException:
            self.say("failed")
            raise
        took = time.monotonic() - started
        suffix = f" ({', '.join(detail)})" if detail else ""
        self.say(f"ok{suffix}{f' in {took:.1f}s' if took >= 1 else ''}")

    def start(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        _reap_stale(self.layout)
        self.started_at = utc_iso(_now())
        self.say(f"opsctl demo: state dir {self.layout.root}")
        self._start_prometheus()
        config = demo_config_toml(self.layout, self.prometheus.url)
        if self.config_extra is not None:
            config = merge_config(config, self.config_extra)
        self.layout.config.write_text(config, encoding="utf-8")
        self._seed()
        self._start_daemon()
        for model in self.models:
            self._start_server(model)
        with self._step("pointing Prometheus at the servers") as detail:
            self.prometheus.write_file("targets.json", prometheus_targets(self._server_states()))
            self.prometheus.reload()  # file_sd would notice too, but only at its next refresh
            self._wait_scraped()
            detail.append(f"{len(self.servers)} targets up, scraped every 1s")
        self._start_traffic()
        self._write_state()

    def _start_prometheus(self) -> None:
        with self._step("starting Prometheus") as detail:
            shutil.rmtree(self.layout.prometheus_dir / "data", ignore_errors=True)  # a fresh TSDB per run
            self.layout.prometheus_dir.mkdir(parents=True, exist_ok=True)
            self.prometheus = _DemoPrometheus(prometheus_config(self.layout), extra_files={"targets.json": "[]\n"},
                                              workdir=self.layout.prometheus_dir)
            self.prometheus.start()
            detail.append(f"127.0.0.1:{self.prometheus.port}")

    def _seed(self) -> None:
        from opsctl.config import load_file
        from opsctl.demo.seed import seed_registry

        with self._step("seeding the registry") as detail:
            settings = load_file(self.layout.config)
            self.seeded = seed_registry(settings, self.layout.seed_dir, self.models,
                                        progress=lambda m: self.say(f"{m}… ", end=""))
            detail.append("; ".join(f"{s.model} {s.production} production, {s.candidate} candidate"
                                    for s in self.seeded))

    def _start_daemon(self) -> None:
        socket_path = self.layout.socket
        with contextlib.suppress(FileNotFoundError):
            if not _socket_answers(socket_path):
                socket_path.unlink()  # left by a killed daemon; a live one would make us refuse below

        def ready() -> bool:
            return socket_path.exists() and _socket_answers(socket_path)

        with self._step("starting the daemon") as detail:
            if ready():
                raise SupervisorError(f"another daemon already answers on {socket_path}")
            self.daemon = self.supervisor.start(
                ChildSpec("daemon", [sys.executable, "-m", "opsctl.cli.main", "daemon", "--config",
                                     str(self.layout.config)], env=self.env, restartable=False,
                          down_hint=DAEMON_DOWN_HINT.format(state_dir=self.layout.root)),
                ready=ready, ready_timeout_seconds=30)
            detail.append(f"pid {self.daemon.pid}, socket {socket_path}")

    def _start_server(self, model: str) -> None:
        seeded = next(s for s in self.seeded if s.model == model)
        ready_file = self.layout.ready_file(model)
        ready_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "opsctl.demo.server", "--model", model,
                *(arg for v in seeded.versions for arg in ("--version", f"{v.version}={v.artifact}:{v.sha256}")),
                "--port", "0", "--ready-file", str(ready_file), "--log-dir", str(self.layout.logs / model),
                "--routing-socket", str(self.layout.socket), "--routing-ttl", "2",
                # Break-glass changes made while the daemon is down reach the server through this.
                "--routing-document", str(self.layout.daemon_state / "routing.json"),
                # A retrained candidate the daemon sends traffic to is loaded from its store.
                "--artifacts-dir", str(self.layout.daemon_state / "artifacts")]
        with self._step(f"starting model server {model}") as detail:
            spec = ChildSpec(model, argv, env=self.env,
                             exit_meanings={CRASH_EXIT_CODE: "the injected crash fault",
                                            IntegrityError.exit_code: "artifact failed verification"})
            child = self.supervisor.start(spec,
                                          ready=lambda: _server_ready(ready_file), ready_timeout_seconds=60)
            port = _read_port(ready_file)
            # A restart (--restart-crashed) reuses the port, so Prometheus and demo.json stay right.
            fixed = [*argv]
            fixed[fixed.index("--port") + 1] = str(port)
            child.spec = replace(child.spec, argv=fixed)
            versions = tuple(v.version for v in seeded.versions)
            self.servers.append(_Server(model, versions, child, port))
            detail.append(f"127.0.0.1:{port}, versions {', '.join(versions)}")

    def _wait_scraped(self) -> None:
        import httpx

        expected = {f"127.0.0.1:{s.port}" for s in self.servers}
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    body = client.get(f"{self.prometheus.url}/api/v1/targets", params={"state": "active"}).json()
                    up = {t["labels"]["instance"] for t in body["data"]["activeTargets"] if t["health"] == "up"}
                    if expected <= up:
                        return
                time.sleep(0.2)
        raise SupervisorError(f"Prometheus did not scrape {', '.join(sorted(expected))} within 30s")

    def _start_traffic(self) -> None:
        argv = [sys.executable, "-m", "opsctl.demo.traffic",
                *(arg for s in self.servers for arg in ("--target", f"{s.model}=http://127.0.0.1:{s.port}")),
                "--rate", f"{self.rate:g}", "--label-delay", f"{self.label_delay:g}"]
        with self._step("starting traffic") as detail:
            self.traffic = self.supervisor.start(ChildSpec("traffic", argv, env=self.env, restartable=False),
                                                 ready=lambda: True)
            detail.append(f"{self.rate:g} req/s per model, labels after {self.label_delay:g}s")

    def _server_states(self) -> list[ServerState]:
        return [ServerState(s.model, s.versions, s.port, s.child.pid) for s in self.servers]

    def _write_state(self) -> None:
        assert self.daemon is not None
        write_state(self.layout, DemoState(
            supervisor_pid=os.getpid(),
            state_dir=str(self.layout.root),
            config=str(self.layout.config),
            started_at=self.started_at,
            prometheus_url=self.prometheus.url,
            prometheus_pid=self.prometheus.process.pid,
            daemon_pid=self.daemon.pid,
            daemon_socket=str(self.layout.socket),
            traffic_pid=self.traffic.pid if self.traffic else None,
            servers=tuple(self._server_states()),
        ))

    def announce(self) -> None:
        config = self.layout.config
        lines = ["", "opsctl demo is up:", f"  Prometheus       {self.prometheus.url}"]
        for server, seeded in zip(self.servers, self.seeded, strict=True):
            lines.append(f"  {server.model:<16} http://127.0.0.1:{server.port}"
                         f"  ({seeded.production} production, {seeded.candidate} candidate)")
        lines += [
            f"  daemon           {self.layout.socket} (log: {self.layout.logs / 'daemon.log'})",
            "",
            "In another terminal:",
            f"  export OPSCTL_CONFIG={config}",
            "  opsctl status",
            f"  opsctl demo fault {self.models[0]} errors     # also: latency, drift, accuracy, crash",
            f"  opsctl demo clear {self.models[0]}",
            "",
            "Ctrl-C stops the demo and everything it started"
            + (" (so does quitting the TUI)." if self.with_tui else "."),
        ]
        self.say("\n".join(lines))

    # -- run -----------------------------------------------------------------------------------

    def _check_children(self) -> None:
        self._serve_restart_requests()
        events = self.supervisor.poll()
        for event in events:
            self._note(f"opsctl demo: {event.message}")
        if any(e.kind == "restarted" for e in events):
            self._write_state()
        if self.prometheus is not None and not self.prometheus.running() and not self._prometheus_exit_noted:
            self._prometheus_exit_noted = True
            self._note(f"opsctl demo: Prometheus exited; see {self.layout.prometheus_dir / 'prometheus.log'}")

    def _serve_restart_requests(self) -> None:
        """``opsctl demo restart daemon`` from another terminal: start the daemon again, say so."""
        from opsctl.demo.restart import RestartAnswer, answer, pending

        socket_path = self.layout.socket

        def ready() -> bool:
            return socket_path.exists() and _socket_answers(socket_path)

        for name in pending(self.layout):
            daemon = self.daemon
            if daemon is None:
                continue
            if daemon.running:
                answer(self.layout, RestartAnswer(name, True, daemon.pid,
                                                  f"the daemon is already running (pid {daemon.pid})"))
                continue
            socket_path.unlink(missing_ok=True)  # left by the killed daemon
            try:
                self.supervisor.restart_now(daemon, ready=ready, ready_timeout_seconds=30)
            except SupervisorError as error:
                self._note(f"opsctl demo: restarting the daemon failed: {error}")
                answer(self.layout, RestartAnswer(name, False, None, str(error)))
                continue
            self._write_state()
            message = (f"daemon restarted (pid {daemon.pid}); it converged from the registry and keeps every"
                       " change made while it was down")
            self._note(f"opsctl demo: {message}")
            answer(self.layout, RestartAnswer(name, True, daemon.pid, message))

    def run_headless(self) -> None:
        self.say("opsctl demo: running headless (--no-tui)")
        while True:
            self._check_children()
            time.sleep(0.5)

    def run_foreground_ui(self) -> None:
        """The TUI in this terminal until it quits; without a terminal, ``opsctl status`` every few seconds."""
        if terminal_for_tui():
            tui = subprocess.Popen([sys.executable, "-m", "opsctl.cli.main"], env=self.env)
            self.tui_running = True
            try:
                while tui.poll() is None:
                    self._check_children()
                    time.sleep(0.5)
            finally:
                if tui.poll() is None:
                    tui.terminate()
                    try:
                        tui.wait(5)
                    except subprocess.TimeoutExpired:
                        tui.kill()
                        tui.wait(5)
                self.tui_running = False
            self.say("opsctl demo: TUI closed, shutting down")
            return
        self.say(f"opsctl demo: no terminal for the TUI; printing `opsctl status` every {STATUS_EVERY_SECONDS:g}s"
                  " instead")
        next_status = time.monotonic()
        while True:
            self._check_children()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_EVERY_SECONDS
                subprocess.run([sys.executable, "-m", "opsctl.cli.main", "status"], env=self.env,
                               stdin=subprocess.DEVNULL, check=False)
                sys.stdout.flush()
            time.sleep(0.5)

    # -- stop ----------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Stop everything, newest first; one child failing to stop does not spare the others."""
        failures: list[str] = []

        def progress(event: StopEvent) -> None:
            if event.kind == "stopping":
                self.say(f"stopping {event.child.spec.name}… ", end="")
                return
            if event.kind == "failed":
                failures.append(event.child.spec.name)
            self.say(event.message)

        try:
            self.supervisor.stop_all(progress)
            if self.prometheus is not None:
                self.say("stopping Prometheus… ", end="")
                self.prometheus.stop()
                self.say("ok")
        finally:
            self.layout.state_file.unlink(missing_ok=True)
        if failures:
            self.say(f"opsctl demo: stopped, but {', '.join(failures)} may still be running")
        else:
            self.say("opsctl demo: stopped; nothing left running")


def _now() -> datetime:
    return SystemClock().now()


class _DemoPrometheus(LocalPrometheus):
    """LocalPrometheus whose process also dies with the supervisor (even on ``kill -9``)."""

    def _command(self, binary: str, port: int) -> list[str]:
        return with_parent_death_signal(super()._command(binary, port))


def _socket_answers(path: Path) -> bool:
    import httpx

    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://opsctl", timeout=1) as c:
            return c.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _read_port(ready_file: Path) -> int:
    import json

    return int(json.loads(ready_file.read_text(encoding="utf-8"))["port"])


def _server_ready(ready_file: Path) -> bool:
    import httpx

    if not ready_file.exists():
        return False
    try:
        return httpx.get(f"http://127.0.0.1:{_read_port(ready_file)}/healthz", timeout=1).status_code == 200
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def terminal_for_tui() -> bool:
    """Whether the TUI can run in the foreground here (stdin and stdout are a terminal)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _reap_stale(layout: FleetLayout) -> None:
    """Stop what a demo killed with -9 left behind (children whose command line names this state dir)."""
    import json

    try:
        data = json.loads(layout.state_file.read_text(encoding="utf-8"))
        stale = DemoState.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return
    if pid_alive(stale.supervisor_pid):
        return
    for pid in stale.pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(layout.root) in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
    layout.state_file.unlink(missing_ok=True)


