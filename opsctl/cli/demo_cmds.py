"""``opsctl demo`` handlers: bring the fleet up, keep it running, tear it down; faults and status.

Start order (each step waits for readiness by polling, never a fixed sleep): Prometheus (scraping
an empty target list) -> ``STATE_DIR/opsctl.toml`` (``--config-extra FILE`` laid over it) ->
registry seed -> daemon -> one model server per model (routing from the daemon's socket) ->
Prometheus targets -> traffic generator. Teardown runs in reverse, TERM then KILL after a grace
period, and removes ``demo.json``.
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
from pathlib import Path
from types import FrameType
from typing import Any

from opsctl.adapters.prometheus_launcher import LocalPrometheus
from opsctl.cli.commands.demo import DEFAULT_STATE_DIR
from opsctl.cli.context import CliContext
from opsctl.cli.output import Output
from opsctl.clock import utc_iso
from opsctl.demo.faults import CRASH_EXIT_CODE
from opsctl.demo.fleet import (
    DemoState,
    FleetLayout,
    ServerState,
    demo_config_toml,
    merge_config,
    parse_models,
    pid_alive,
    prometheus_config,
    prometheus_targets,
    read_state,
    write_state,
)
from opsctl.demo.supervisor import (
    Child,
    ChildSpec,
    RestartPolicy,
    Supervisor,
    SupervisorError,
    with_parent_death_signal,
)
from opsctl.errors import ConflictError, IntegrityError, NotFoundError, OpsctlError, UsageError

DAEMON_DOWN_HINT = ("it stays down so you can practise break-glass (`opsctl rollback MODEL` still moves traffic);"
                    " bring it back with `opsctl demo restart daemon --state-dir {state_dir}`")
PROMETHEUS_INSTALL = "sudo apt-get install -y --no-install-recommends prometheus"
_STATUS_EVERY_SECONDS = 5.0


class _Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: stop starting, tear down."""


# --------------------------------------------------------------------------- state dir lookup


def _layout(ctx: CliContext, *, follow_config: bool) -> FleetLayout:
    explicit = getattr(ctx.args, "state_dir", None)
    if explicit:
        return FleetLayout.at(explicit)
    if follow_config:  # a terminal pointed at the demo with OPSCTL_CONFIG finds it from anywhere
        config = os.environ.get("OPSCTL_CONFIG")
        if config and (Path(config).parent / "demo.json").exists():
            return FleetLayout.at(Path(config).parent)
    return FleetLayout.at(DEFAULT_STATE_DIR)


def _running(layout: FleetLayout) -> DemoState:
    state = read_state(layout)
    if state is None:
        raise NotFoundError("running demo", str(layout.root),
                            f"start one with `opsctl demo --state-dir {layout.root}` (or pass --state-dir)")
    return state


# --------------------------------------------------------------------------- opsctl demo


def run(ctx: CliContext) -> int:
    args = ctx.args
    layout = FleetLayout.at(getattr(args, "state_dir", None) or DEFAULT_STATE_DIR)
    try:
        models = parse_models(args.models)
    except ValueError as error:
        raise UsageError(f"--models: {error}") from None
    if not args.rate > 0:
        raise UsageError("--rate must be positive")
    if shutil.which("prometheus") is None:
        raise OpsctlError(f"the `prometheus` binary is not installed; install it with: {PROMETHEUS_INSTALL}"
                          " (`./dev demo` does this for you)")
    running = read_state(layout)
    if running is not None:
        raise ConflictError(f"a demo is already running from {layout.root} (pid {running.supervisor_pid});"
                            " stop it with Ctrl-C there, or use another --state-dir")
    extra = None
    if getattr(args, "config_extra", None):
        try:
            extra = Path(args.config_extra).read_text(encoding="utf-8")
            merge_config("", extra)
        except OSError as error:
            raise UsageError(f"--config-extra {args.config_extra}: {error.strerror}") from None
        except ValueError as error:
            raise UsageError(f"--config-extra {args.config_extra}: {error}") from None
    fleet = DemoFleet(layout, models, rate=args.rate, label_delay=args.label_delay,
                      restart=RestartPolicy(enabled=args.restart_crashed), out=ctx.out, config_extra=extra)
    # SIGHUP too: a closed terminal or a dropped SSH session must not leave the fleet running.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only the first signal interrupts; a second Ctrl-C during teardown must not cut it short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise _Shutdown(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, on_signal)
    fleet.with_tui = not args.no_tui and _tui_unavailable() is None
    try:
        fleet.start()
        fleet.announce()
        if args.no_tui:
            fleet.run_headless()
        else:
            fleet.run_foreground_ui()
    except _Shutdown as stop:
        fleet._say(f"\nopsctl demo: {stop.args[0] if stop.args else 'stop'} received, shutting down")
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        fleet.teardown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


@dataclass
class _Server:
    model: str
    versions: tuple[str, ...]
    child: Child
    port: int


class DemoFleet:
    """One demo run: the children it started and how to stop them."""

    def __init__(self, layout: FleetLayout, models: tuple[str, ...], *, rate: float, label_delay: float,
                 restart: RestartPolicy, out: Output, config_extra: str | None = None) -> None:
        self.layout = layout
        self.config_extra = config_extra
        self.models = models
        self.rate = rate
        self.label_delay = label_delay
        self.out = out
        self.supervisor = Supervisor(layout.logs, restart=restart, grace_seconds=8.0)
        self.prometheus: Any = None
        self.daemon: Child | None = None
        self.traffic: Child | None = None
        self.servers: list[_Server] = []
        self.seeded: list[Any] = []
        self.started_at = ""
        self.with_tui = False
        self.tui_running = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
        self.env = {**env, "OPSCTL_CONFIG": str(layout.config), "PYTHONUNBUFFERED": "1"}

    def _say(self, text: str, *, end: str = "\n") -> None:
        """Progress on stderr; a vanished terminal (SIGHUP, closed SSH) must not stop a teardown."""
        with contextlib.suppress(OSError, ValueError):
            self.out.stderr.write(text + end)
            self.out.stderr.flush()

    def _note(self, text: str) -> None:
        """A supervision event: on stderr, except while the TUI owns the terminal (then only the log)."""
        with contextlib.suppress(OSError), (self.layout.logs / "supervisor.log").open("a", encoding="utf-8") as log:
            log.write(f"{utc_iso(_now())} {text}\n")
        if not self.tui_running:
            self._say(text)

    # -- start ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[list[str]]:
        """``starting X… ok (detail)`` on stderr; the body appends the detail."""
        self._say(f"{what}… ", end="")
        detail: list[str] = []
        started = time.monotonic()
        try:
            yield detail
        except BaseException:
            self._say("failed")
            raise
        took = time.monotonic() - started
        suffix = f" ({', '.join(detail)})" if detail else ""
        self._say(f"ok{suffix}{f' in {took:.1f}s' if took >= 1 else ''}")

    def start(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        _reap_stale(self.layout)
        self.started_at = utc_iso(_now())
        self._say(f"opsctl demo: state dir {self.layout.root}")
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
                                        progress=lambda m: self._say(f"{m}… ", end=""))
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
        self._say("\n".join(lines))

    # -- run -----------------------------------------------------------------------------------

    def _check_children(self) -> None:
        self._serve_restart_requests()
        events = self.supervisor.poll()
        for event in events:
            self._note(f"opsctl demo: {event.message}")
        if any(e.kind == "restarted" for e in events):
            self._write_state()
        if self.prometheus is not None and not self.prometheus.running() and not getattr(self, "_prom_noted", False):
            self._prom_noted = True
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
        self._say("opsctl demo: running headless (--no-tui)")
        while True:
            self._check_children()
            time.sleep(0.5)

    def run_foreground_ui(self) -> None:
        reason = _tui_unavailable()
        if reason is None:
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
            self._say("opsctl demo: TUI closed, shutting down")
            return
        self._say(f"opsctl demo: {reason}; printing `opsctl status` every {_STATUS_EVERY_SECONDS:g}s instead")
        next_status = time.monotonic()
        while True:
            self._check_children()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + _STATUS_EVERY_SECONDS
                subprocess.run([sys.executable, "-m", "opsctl.cli.main", "status"], env=self.env,
                               stdin=subprocess.DEVNULL, check=False)
                sys.stdout.flush()
            time.sleep(0.5)

    # -- stop ----------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Stop everything, newest first; one child failing to stop does not spare the others."""
        self.supervisor.stopping = True
        failures = []
        try:
            for child in reversed(self.supervisor.children):
                self._say(f"stopping {child.spec.name}… ", end="")
                try:
                    code = self.supervisor.stop_child(child)
                except (OSError, subprocess.SubprocessError) as error:
                    failures.append(child.spec.name)
                    self._say(f"failed: {error}")
                    continue
                self._say("ok" if code in child.spec.clean_exit_codes or code is None
                          else f"ok (it had stopped earlier: {child.spec.describe(code)})")
            if self.prometheus is not None:
                self._say("stopping Prometheus… ", end="")
                self.prometheus.stop()
                self._say("ok")
        finally:
            self.layout.state_file.unlink(missing_ok=True)
        if failures:
            self._say(f"opsctl demo: stopped, but {', '.join(failures)} may still be running")
        else:
            self._say("opsctl demo: stopped; nothing left running")


def _now() -> Any:
    from opsctl.clock import SystemClock

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


def _tui_unavailable() -> str | None:
    """Why the TUI cannot run in the foreground here, or None when it can."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "no terminal for the TUI"
    try:
        import opsctl.cli.tui_cmd
        import opsctl.tui.app
        import opsctl.tui.feed  # noqa: F401
    except ImportError as error:
        return f"the TUI is not available yet ({error})"
    return None


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


# --------------------------------------------------------------------------- faults and status


def _http() -> Any:
    import httpx

    return httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0))


def _servers(state: DemoState, model: str) -> list[ServerState]:
    servers = state.servers_of(model)
    if not servers:
        raise NotFoundError("demo model", model, f"this demo serves {', '.join(s.model for s in state.servers)}")
    return servers


def _call(client: Any, method: str, server: ServerState, path: str, **kwargs: Any) -> dict[str, Any]:
    import httpx

    try:
        response = client.request(method, f"{server.url}{path}", **kwargs)
    except httpx.TransportError as error:
        hint = ("its process is gone (a crash fault cannot be cleared: restart the demo, or run it with"
                " --restart-crashed)" if not pid_alive(server.pid) else "see `opsctl demo status`")
        raise OpsctlError(f"{server.model}'s server at {server.url} does not answer ({type(error).__name__});"
                          f" {hint}") from error
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400:
        raise UsageError(f"{server.model}: {body.get('error') or response.text.strip()}")
    return body  # type: ignore[no-any-return]


def fault(ctx: CliContext) -> int:
    args = ctx.args
    state = _running(_layout(ctx, follow_config=True))
    body: dict[str, Any] = {"kind": args.kind}
    if args.level is not None:
        body["level"] = args.level
    if args.model_version:
        body["versions"] = list(args.model_version)
    if args.feature:
        if args.kind != "drift":
            raise UsageError("--feature applies to drift faults only")
        body["features"] = list(args.feature)
    results = []
    with _http() as client:
        for server in _servers(state, args.model):
            answer = _call(client, "POST", server, "/fault", json=body)
            results.append({"model": server.model, "url": server.url, **answer})
    if ctx.out.json:
        ctx.out.emit_json(results)
        return 0
    for result in results:
        applied = result["fault"]
        versions = ", ".join(applied["versions"]) or "all versions"
        extra = " (the server exits now)" if result.get("exiting") else ""
        features = f", features {', '.join(applied['features'])}" if applied.get("features") else ""
        ctx.out.line(f"injected {applied['kind']} (level {applied['level']:g}{features}) into {result['model']}"
                     f" [{versions}] at {result['url']}{extra}")
    return 0


def clear(ctx: CliContext) -> int:
    args = ctx.args
    state = _running(_layout(ctx, follow_config=True))
    params = {"kind": args.kind} if args.kind else {}
    results = []
    with _http() as client:
        for server in _servers(state, args.model):
            answer = _call(client, "DELETE", server, "/fault", params=params)
            results.append({"model": server.model, "url": server.url, "cleared": answer.get("cleared", [])})
    if ctx.out.json:
        ctx.out.emit_json(results)
        return 0
    for result in results:
        kinds = ", ".join(f["kind"] for f in result["cleared"]) or "nothing (no fault was active)"
        ctx.out.line(f"cleared {kinds} on {result['model']} at {result['url']}")
    return 0


def status(ctx: CliContext) -> int:
    state = _running(_layout(ctx, follow_config=True))
    servers = []
    with _http() as client:
        for server in state.servers:
            alive = pid_alive(server.pid)
            faults: list[dict[str, Any]] | None = None
            if alive:
                with contextlib.suppress(OpsctlError):
                    faults = _call(client, "GET", server, "/fault").get("faults", [])
            servers.append({**server.to_json(), "running": alive, "faults": faults})
    document = {**state.to_json(), "servers": servers,
                "daemon": {**state.to_json()["daemon"], "running": pid_alive(state.daemon_pid)},
                "prometheus": {**state.to_json()["prometheus"], "running": pid_alive(state.prometheus_pid)}}
    if ctx.out.json:
        ctx.out.emit_json(document)
        return 0
    ctx.out.line(f"demo in {state.state_dir} (supervisor pid {state.supervisor_pid}, since {state.started_at})")
    ctx.out.line(f"config: OPSCTL_CONFIG={state.config}")
    rows: list[list[Any]] = [
        ["prometheus", state.prometheus_url, state.prometheus_pid, _running_text(pid_alive(state.prometheus_pid)), "-"],
        ["daemon", state.daemon_socket, state.daemon_pid, _running_text(pid_alive(state.daemon_pid)), "-"],
    ]
    for server in servers:
        active = ("none" if not server["faults"] else
                  ", ".join(f"{f['kind']}={f['level']:g}" for f in server["faults"])) if server["faults"] is not None \
            else "-"
        rows.append([server["model"], server["url"], server["pid"], _running_text(server["running"]), active])
    ctx.out.table(["process", "address", "pid", "state", "faults"], rows)
    return 0


def _running_text(alive: bool) -> str:
    return "running" if alive else "down"
