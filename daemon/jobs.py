"""Scheduled jobs: what runs, and the runner that times, records and reports each run.

A job's body is blocking code (SQLite, HTTP to Prometheus, statistics), so the
runner always executes it in a worker thread and hands the result back to the
event loop; the API never stalls behind a job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from opsctl.adapters.registry import Registry
from opsctl.clock import Clock, utc_iso
from opsctl.errors import OpsctlError
from opsctld.events import EventBus
from opsctld.metrics import DaemonMetrics

log = logging.getLogger("opsctld.jobs")


@dataclass(frozen=True)
class JobOutcome:
    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job; ``run`` is blocking and executes in a worker thread.

    ``interval_key`` names the ``[jobs]`` setting that holds the interval, so a
    SIGHUP reload can reschedule the job.
    """

    name: str
    interval_seconds: float
    run: Callable[[], JobOutcome]
    interval_key: str | None = None
    # With several daemons on one registry, only the leader runs it, its writes fenced by the lease epoch.
    leader_only: bool = True


@dataclass(frozen=True)
class JobStatus:
    name: str
    interval_seconds: float
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_ok: bool | None = None
    last_summary: str = ""
    last_duration_seconds: float | None = None
    last_success_at: datetime | None = None
    next_run_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return utc_iso(moment) if moment else None

        return {
            "name": self.name,
            "interval_seconds": self.interval_seconds,
            "runs": self.runs,
            "failures": self.failures,
            "running": self.running,
            "last_started_at": iso(self.last_started_at),
            "last_finished_at": iso(self.last_finished_at),
            "last_ok": self.last_ok,
            "last_summary": self.last_summary,
            "last_duration_seconds": self.last_duration_seconds,
            "last_success_at": iso(self.last_success_at),
            "next_run_at": iso(self.next_run_at),
        }


class JobRunner:
    def __init__(self, *, registry: Registry, bus: EventBus, metrics: DaemonMetrics, clock: Clock,
                 executor: Executor, leadership: Callable[[], int | None] | None = None) -> None:
        """``leadership``: this daemon's lease epoch while it leads, else None; absent, every job runs here."""
        self.registry = registry
        self.leadership = leadership
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.executor = executor
        self.statuses: dict[str, JobStatus] = {}
        self._in_flight: set[asyncio.Future[Any]] = set()

    def add(self, spec: JobSpec) -> None:
        previous = self.statuses.get(spec.name)
        self.statuses[spec.name] = (replace(previous, interval_seconds=spec.interval_seconds) if previous
                                    else JobStatus(spec.name, spec.interval_seconds))
        self.metrics.job_interval.labels(spec.name).set(spec.interval_seconds)

    async def run(self, spec: JobSpec) -> JobOutcome:
        loop = asyncio.get_running_loop()
        epoch = None
        if spec.leader_only and self.leadership is not None:
            epoch = self.leadership()
            if epoch is None:
                status = self.statuses.get(spec.name) or JobStatus(spec.name, spec.interval_seconds)
                self.statuses[spec.name] = replace(status, last_summary="standby: another daemon leads")
                return JobOutcome(True, "standby: another daemon leads")
        started = self.clock.now()
        status = self.statuses.get(spec.name) or JobStatus(spec.name, spec.interval_seconds)
        self.statuses[spec.name] = replace(status, running=True, last_started_at=started)
        t0 = time.monotonic()
        future = loop.run_in_executor(self.executor, _guarded_fenced, spec, self.registry, epoch)
        self._in_flight.add(future)
        try:
            outcome = await future
        finally:
            self._in_flight.discard(future)
        duration = time.monotonic() - t0
        finished = self.clock.now()
        self.metrics.job_runs.labels(spec.name).inc()
        self.metrics.job_duration.labels(spec.name).observe(duration)
        if outcome.ok:
            self.metrics.job_last_success.labels(spec.name).set(finished.timestamp())
        else:
            self.metrics.job_failures.labels(spec.name).inc()
            log.warning("job failed", extra={"job": spec.name, "summary": outcome.summary})
        status = self.statuses[spec.name]
        self.statuses[spec.name] = replace(
            status, running=False, runs=status.runs + 1, failures=status.failures + (0 if outcome.ok else 1),
            last_finished_at=finished, last_ok=outcome.ok, last_summary=outcome.summary,
            last_duration_seconds=round(duration, 6),
            last_success_at=finished if outcome.ok else status.last_success_at,
        )
        await loop.run_in_executor(self.executor, self._record, spec.name, started, finished, outcome)
        self.bus.publish("job", {"job": spec.name, "ok": outcome.ok, "summary": outcome.summary,
                                 "duration_seconds": round(duration, 6), **outcome.data})
        return outcome

    def _record(self, name: str, started: datetime, finished: datetime, outcome: JobOutcome) -> None:
        try:
            with self.registry.write() as tx:
                tx.record_job_run(job=name, started_at=started, finished_at=finished, ok=outcome.ok,
                                  summary=outcome.summary)
        except OpsctlError as error:
            log.error("could not record job run", extra={"job": name, "error": str(error)})

    def set_next_run(self, name: str, moment: datetime | None) -> None:
        if name in self.statuses:
            self.statuses[name] = replace(self.statuses[name], next_run_at=moment)

    async def drain(self, timeout: float) -> bool:
        """Wait for running jobs to finish; False if some were still running at the deadline."""
        pending = [f for f in self._in_flight if not f.done()]
        if not pending:
            return True
        _done, still = await asyncio.wait(pending, timeout=timeout)
        return not still


def _guarded_fenced(spec: JobSpec, registry: Registry, epoch: int | None) -> JobOutcome:
    with registry.fenced(epoch):
        return _guarded(spec)


def _guarded(spec: JobSpec) -> JobOutcome:
    try:
        return spec.run()
    except OpsctlError as error:
        return JobOutcome(False, f"{type(error).__name__}: {error}")
    except Exception as error:  # a job bug must never take the daemon down
        log.exception("job crashed", extra={"job": spec.name})
        return JobOutcome(False, f"crashed: {type(error).__name__}: {error}")


def housekeeping_job(registry: Registry, metrics: DaemonMetrics, clock: Clock,
                     retention: Callable[[], float]) -> Callable[[], JobOutcome]:
    """Prune events and job results past the retention; refresh registry gauges."""

    def run() -> JobOutcome:
        cutoff = clock.now() - timedelta(days=retention())
        with registry.write() as tx:
            removed = tx.prune(before=cutoff)
            counts = tx.counts()
        metrics.registry_models.set(counts["models"])
        metrics.registry_versions.set(counts["versions"])
        size = 0
        for suffix in ("", "-wal"):
            path = registry.path.with_name(registry.path.name + suffix)
            if path.exists():
                size += path.stat().st_size
        metrics.registry_size.set(size)
        return JobOutcome(True, f"pruned {removed} rows older than {utc_iso(cutoff)}",
                          {"pruned": removed, "models": counts["models"], "versions": counts["versions"]})

    return run
