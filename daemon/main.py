"""The daemon process: one asyncio loop hosting the scheduler and the API server.

``opsctl daemon`` runs it in the foreground, which is what systemd's
``ExecStart`` calls (``Type=notify``). Signals: SIGTERM/SIGINT finish or cancel
running jobs, close the socket and exit 0; SIGHUP re-reads and re-validates the
config and keeps the old one when the new one is broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from opsctl import __version__
from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.daemon_roster import heartbeat, leave, read_roster, this_process
from opsctl.adapters.files import make_private_dir
from opsctl.adapters.leader_lease import LeaderLease, default_holder, read_lease
from opsctl.adapters.preflight import preflight, read_token_file
from opsctl.adapters.registry import Registry, open_registry
from opsctl.clock import Clock, SystemClock
from opsctl.config import Settings, load_settings
from opsctl.errors import ConfigError, OpsctlError
from opsctl.jsonlog import configure_logging
from opsctld.api import BearerTokenAuth, Endpoint, create_app
from opsctld.events import EventBus
from opsctld.jobs import JobRunner, JobSpec, housekeeping_job
from opsctld.metrics import DaemonMetrics
from opsctld.peercred import PeerCredH11Protocol
from opsctld.sdnotify import Notifier
from opsctld.state import DaemonState
from opsctld.wiring import build_services

if TYPE_CHECKING:
    from opsctl.adapters.registry_events import CrossDaemonEvents

log = logging.getLogger("opsctld")


class DaemonStartError(OpsctlError):
    """The daemon cannot start (socket in use, unwritable state dir, ...): exit 2, like a config error."""

    exit_code = 2


@dataclass(frozen=True)
class Subsystem:
    """What a subsystem (health, canary, drift, retrain) adds to the daemon.

    ``jobs`` builds the subsystem's scheduled jobs from the shared state;
    ``start`` runs once before the first job (e.g. to register a status
    provider or converge persisted state); ``endpoints`` join the API table.
    """

    name: str
    jobs: Callable[[DaemonState], list[JobSpec]] = lambda state: []
    endpoints: list[Endpoint] = field(default_factory=list)
    start: Callable[[DaemonState], None] | None = None


def load_subsystems() -> list[Subsystem]:
    """Every ``opsctld.subsystems.*`` module's SUBSYSTEM, in name order."""
    import importlib
    import pkgutil

    from opsctld import subsystems

    found = []
    for info in sorted(pkgutil.iter_modules(subsystems.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{subsystems.__name__}.{info.name}")
        found.append(module.SUBSYSTEM)
    return found


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The daemon owns signal handling (SIGHUP reloads, SIGTERM drains jobs first).
        yield


class Daemon:
    def __init__(self, settings: Settings, *, config_path: str | None, clock: Clock | None = None,
                 notifier: Notifier | None = None, log_level_fixed: bool = False) -> None:
        self.settings = settings
        # --log-level on the command line wins over [daemon] log_level, also across reloads.
        self.log_level_fixed = log_level_fixed
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self._stop = asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None
        self._specs: dict[str, JobSpec] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        settings = self.settings
        # Everything that can fail without side effects first; then bind (undone on failure); then create.
        try:
            preflight(settings)
        except ConfigError as error:
            raise DaemonStartError(str(error)) from None
        tokens = read_token_file(Path(settings.daemon.token_file)) if settings.daemon.tcp_listen else None
        if settings.daemon.tls_cert_file and settings.daemon.tls_key_file:
            try:  # uvicorn would load them only once serving, after the sockets are bound
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    settings.daemon.tls_cert_file, settings.daemon.tls_key_file)
            except (OSError, ssl.SSLError) as error:
                raise DaemonStartError(f"cannot use tls_cert_file {settings.daemon.tls_cert_file} with tls_key_file"
                                       f" {settings.daemon.tls_key_file}: {error}") from None
        socket_path = Path(settings.daemon.socket)
        created_socket_dir = not socket_path.parent.exists()
        unix_socket = _bind_unix_socket(socket_path, int(settings.daemon.socket_mode, 8))
        tcp: socket.socket | None = None
        try:
            if settings.daemon.tcp_listen:
                host, _, port = settings.daemon.tcp_listen.rpartition(":")
                try:
                    tcp = socket.create_server((host, int(port)), reuse_port=False)
                except OSError as error:
                    raise DaemonStartError(f"cannot listen on {settings.daemon.tcp_listen}: {error.strerror}") from None
            registry = open_registry(settings.registry, settings.daemon.registry_path)
            try:
                make_private_dir(Path(settings.daemon.state_dir))
                registry.schema_version()  # migrate now, not on the first request
                # Level-triggered: routers follow the registry as it is now, including any change made
                # while the daemon was down (a break-glass rollback), which this never undoes.
                publication = registry.publish_routing()
                if publication is not None and not publication.ok:
                    log.error("routing document not written", extra={"error": publication.error})
            except OSError as error:
                raise DaemonStartError(f"cannot use state_dir {settings.daemon.state_dir}: {error.strerror}") from None
        except BaseException:
            unix_socket.close()
            if tcp is not None:
                tcp.close()
            with contextlib.suppress(OSError):
                socket_path.unlink()
            if created_socket_dir:
                with contextlib.suppress(OSError):
                    socket_path.parent.rmdir()
            raise
        bus = EventBus(clock=self.clock)
        bus.bind(loop)
        events_listener = _listen_to_other_daemons(registry, bus)
        metrics = DaemonMetrics()
        metrics.track_sse_clients(lambda: bus.subscriber_count)
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="opsctl-job")
        artifacts = ArtifactStore(settings.daemon.artifacts_dir)
        # Partial uploads of a killed daemon or CLI. On PostgreSQL the artifact directory is shared with the
        # other daemons, whose uploads may be in progress: only a day-old partial file is surely abandoned.
        removed = artifacts.clean_incoming(older_than_seconds=86400 if settings.registry.engine == "postgresql" else 0)
        if removed:
            log.warning("removed partial uploads", extra={"files": removed})
        services = build_services(lambda: self.settings, registry, artifacts, clock=self.clock,
                                  events=bus.publish, metrics=metrics)
        swept = services.registry.sweep_unregistered_uploads()
        if swept:
            log.warning("removed uploads never registered (older than a day)", extra={"files": swept})
        lease = None
        if settings.registry.engine == "postgresql":
            # Several daemons may share this registry: the scheduled jobs run on the lease holder only.
            holder = default_holder()
            member = this_process(holder, version=__version__, api=_api_address(settings), started_at=self.clock.now())
            lease = LeaderLease(registry, ttl_seconds=settings.registry.lease_ttl_seconds, holder=holder,
                                also_on_tick=lambda tx, now: heartbeat(tx, member, now),
                                also_on_release=lambda tx: leave(tx, holder))
        runner = JobRunner(registry=registry, bus=bus, metrics=metrics, clock=self.clock, executor=executor,
                           leadership=lease.acting_epoch if lease is not None else None)
        state = DaemonState(settings=settings, registry=registry, artifacts=artifacts, services=services, bus=bus,
                            metrics=metrics, runner=runner, clock=self.clock, started_at=self.clock.now(),
                            config_path=self.config_path)
        self.state = state
        if lease is not None:
            state.status_providers["leader"] = lambda: _leader_status(registry, lease)
            state.status_providers["daemons"] = lambda: _daemons_status(registry, lease, self.clock.now())
        if events_listener is not None:
            state.status_providers["events"] = lambda: events_listener.status().to_json()
        subsystems = load_subsystems()
        app = create_app(state, [e for s in subsystems for e in s.endpoints])

        servers = [_Server(uvicorn.Config(app, http=PeerCredH11Protocol, lifespan="off", log_config=None,
                                          access_log=False, timeout_graceful_shutdown=3))]
        server_sockets = [[unix_socket]]
        if tcp is not None and tokens is not None:
            servers.append(_Server(uvicorn.Config(BearerTokenAuth(app, tokens), lifespan="off", log_config=None,
                                                  access_log=False, timeout_graceful_shutdown=3,
                                                  ssl_certfile=settings.daemon.tls_cert_file,
                                                  ssl_keyfile=settings.daemon.tls_key_file)))
            server_sockets.append([tcp])

        self._install_signal_handlers(loop)
        scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._scheduler = scheduler
        specs = [JobSpec("housekeeping", settings.jobs.housekeeping_seconds,
                         housekeeping_job(registry, metrics, self.clock,
                                          lambda: self.settings.daemon.retention_days),
                         interval_key="housekeeping_seconds")]
        for subsystem in subsystems:
            if subsystem.start is not None:
                subsystem.start(state)
            specs.extend(subsystem.jobs(state))
        for spec in specs:
            self._schedule(spec)
        metrics.up.set(1)
        metrics.start_time.set(state.started_at.timestamp())

        tasks = [asyncio.create_task(server.serve(sockets=socks)) for server, socks in
                 zip(servers, server_sockets, strict=True)]
        try:
            while not all(server.started for server in servers):
                if any(task.done() for task in tasks):
                    for task in tasks:
                        if task.done() and task.exception():
                            raise DaemonStartError(f"API server failed to start: {task.exception()}")
                    raise DaemonStartError("API server stopped during start-up")
                await asyncio.sleep(0.01)
            lease_task = (asyncio.create_task(self._hold_lease(lease, settings.registry.lease_renew_seconds))
                          if lease is not None else None)
            scheduler.start()
            # Run every job once right away: a fresh daemon should know the fleet's state now.
            first_runs = [asyncio.create_task(self._run(spec.name)) for spec in specs]
            summary = f"serving on {settings.daemon.socket}; {len(specs)} jobs"
            log.info("daemon ready", extra={"socket": settings.daemon.socket, "pid": os.getpid(),
                                            "jobs": [s.name for s in specs]})
            self.notifier.ready(summary)
            watchdog = asyncio.create_task(self._watchdog()) if self.notifier.watchdog_interval else None
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            log.info("daemon stopping")
            metrics.up.set(0)
            scheduler.shutdown(wait=False) if scheduler.running else None
            drained = await runner.drain(timeout=max(1.0, settings.daemon.shutdown_timeout_seconds - 5))
            if not drained:
                log.warning("jobs still running at shutdown; abandoning them")
            if events_listener is not None:
                events_listener.stop()
            bus.close()
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in locals().get("first_runs", []):
                task.cancel()
            if locals().get("watchdog") is not None:
                locals()["watchdog"].cancel()
            if locals().get("lease_task") is not None:
                locals()["lease_task"].cancel()
            if lease is not None:
                with contextlib.suppress(OpsctlError):
                    lease.release(self.clock.now())  # the next daemon need not wait out the TTL
            executor.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(settings.daemon.socket)
            registry.close()
            log.info("daemon stopped")
        return 0

    def stop(self) -> None:
        self._stop.set()

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, spec: JobSpec) -> None:
        assert self._scheduler is not None
        self._specs[spec.name] = spec
        self.state.runner.add(spec)
        self._scheduler.add_job(self._run, "interval", seconds=spec.interval_seconds, args=[spec.name],
                                id=spec.name, name=spec.name, coalesce=True, max_instances=1,
                                misfire_grace_time=int(max(1, self.settings.jobs.misfire_grace_seconds)),
                                replace_existing=True)

    async def _run(self, name: str) -> None:
        spec = self._specs[name]
        status = self.state.runner.statuses.get(name)
        if status is not None and status.running:
            self.state.metrics.job_skipped.labels(name).inc()
            return
        await self.state.runner.run(spec)
        job = self._scheduler.get_job(name) if self._scheduler else None
        self.state.runner.set_next_run(name, job.next_run_time if job else None)

    async def _hold_lease(self, lease: LeaderLease, renew_seconds: float) -> None:
        """Take or renew the jobs lease every ``renew_seconds`` on a thread of its own (never behind a slow job)."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsctl-lease") as own:
            leading: int | None = None
            while True:
                try:
                    held = await loop.run_in_executor(own, lease.tick, self.clock.now)
                except OpsctlError as error:
                    held = None
                    log.error("cannot renew the leader lease", extra={"error": str(error)})
                epoch = held.epoch if held is not None else None
                if epoch != leading:
                    log.warning("leadership changed", extra={"holder": lease.holder, "epoch": epoch,
                                                            "leading": epoch is not None})
                    if self.state is not None:
                        self.state.bus.publish("leader", {"holder": lease.holder, "epoch": epoch,
                                                          "leading": epoch is not None})
                    leading = epoch
                await asyncio.sleep(renew_seconds)

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        self.state.metrics.job_skipped.labels(event.job_id).inc()

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval or 1.0
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    # -- signals -------------------------------------------------------------------------------

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

    async def reload(self) -> bool:
        """Re-read and fully validate the config, then swap it in at once; a broken one is counted and the
        running one kept (settings and job schedules both)."""
        self.notifier.reloading()
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, self._load_for_reload)
        except OpsctlError as error:
            return self._reload_failed(str(error))
        old_settings, old_specs = self.settings, dict(self._specs)
        try:
            self.settings = new
            self.state.settings = new
            for spec in list(old_specs.values()):
                seconds = getattr(new.jobs, spec.interval_key) if spec.interval_key else spec.interval_seconds
                if seconds != spec.interval_seconds:
                    self._schedule(replace(spec, interval_seconds=seconds))
        except Exception as error:  # whatever broke, the running config must come back whole
            self.settings = old_settings
            self.state.settings = old_settings
            for spec in old_specs.values():
                self._schedule(spec)
            return self._reload_failed(f"{type(error).__name__}: {error}")
        _log_config_warnings(new)
        if not self.log_level_fixed:
            logging.getLogger().setLevel(new.daemon.log_level.upper())
        self.state.metrics.config_reloads.labels("ok").inc()
        log.info("config reloaded", extra={"config": self.config_path})
        self.notifier.notify("READY=1", "STATUS=config reloaded")
        return True

    def _load_for_reload(self) -> Settings:
        new = load_settings(self.config_path).validate()
        if new.daemon.socket != self.settings.daemon.socket or new.daemon.state_dir != self.settings.daemon.state_dir:
            log.warning("socket and state_dir changes need a restart; keeping the current ones")
            new = replace(new, daemon=replace(new.daemon, socket=self.settings.daemon.socket,
                                              state_dir=self.settings.daemon.state_dir))
        return new

    def _reload_failed(self, reason: str) -> bool:
        log.error("config reload failed; keeping the running config", extra={"error": reason})
        self.state.metrics.config_reloads.labels("failed").inc()
        self.notifier.status(f"config reload failed: {reason}")
        self.notifier.notify("READY=1")
        return False


def _bind_unix_socket(path: Path, mode: int) -> socket.socket:
    make_private_dir(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise DaemonStartError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: left by a daemon that was killed
        else:
            raise DaemonStartError(f"another daemon is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # never world-accessible, not even between bind and chmod
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        raise DaemonStartError(f"cannot bind {path}: {error.strerror}") from error
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _log_config_warnings(settings: Settings) -> None:
    """One line per deprecated key the config sets (it is ignored; the line says why)."""
    for warning in settings.warnings:
        log.warning("config: %s", warning, extra={"config": settings.source})


def run(config_path: str | None, log_level: str | None = None) -> int:
    """Load the config and serve until SIGTERM; returns the process exit code."""
    configure_logging(log_level or "info")
    settings = load_settings(config_path).validate()
    if log_level is None and settings.daemon.log_level != "info":
        configure_logging(settings.daemon.log_level)
    _log_config_warnings(settings)
    if config_path is None:
        from opsctl.config import find_config

        found = find_config(None)
        config_path = str(found) if found else None
    return asyncio.run(Daemon(settings, config_path=config_path, log_level_fixed=log_level is not None).serve())


def _listen_to_other_daemons(registry: Registry, bus: EventBus) -> CrossDaemonEvents | None:
    """On PostgreSQL, the changes other daemons make join this daemon's event stream (None on SQLite)."""
    if registry.postgres is None:
        return None
    from opsctl.adapters.registry_events import CrossDaemonEvents

    # What the others relay is published here without going back out.
    listener = CrossDaemonEvents(registry, lambda kind, data: bus.publish(kind, data, relay=False))
    if not listener.start():
        log.warning("not listening for other daemons' changes yet; retrying in the background")
    bus.relay = listener.relay
    return listener


def _leader_status(registry: Registry, lease: LeaderLease) -> dict[str, object]:
    """The ``leader`` section of ``/v1/status``: who holds the jobs lease, its epoch, and whether it is us."""
    with registry.read() as tx:
        current = read_lease(tx, lease.name)
    return {"this_daemon": lease.holder, "leading": lease.acting_epoch() is not None,
            "lease": current.to_json() if current is not None else None}


def _daemons_status(registry: Registry, lease: LeaderLease, now: datetime) -> list[dict[str, object]]:
    """The ``daemons`` section of ``/v1/status``: every daemon on this registry heard of lately, the leader marked."""
    seen = read_roster(registry, now=now, ttl_seconds=lease.ttl.total_seconds())
    return [{**d.to_json(), "this_daemon": d.member.holder == lease.holder} for d in seen]


def _api_address(settings: Settings) -> str:
    """Where this daemon's API answers: its socket, and its TCP listener if any."""
    tcp = settings.daemon.tcp_listen
    scheme = "https" if settings.daemon.tls_cert_file else "http"
    return settings.daemon.socket + (f" {scheme}://{tcp}" if tcp else "")
