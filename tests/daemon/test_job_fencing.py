"""The job runner with a leader lease, on SQLite and a real PostgreSQL: standbys skip the scheduled jobs, and a
leader paused mid-job past its lease has its late writes refused by the fencing token."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from opsctl.adapters.leader_lease import LeaderLease
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.domain import Actor, Outcome
from opsctld.events import EventBus
from opsctld.jobs import JobOutcome, JobRunner, JobSpec
from opsctld.metrics import DaemonMetrics

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
TTL = 10.0
Make = Callable[..., Registry]


def _runner(registry: Registry, lease: LeaderLease | None, executor: ThreadPoolExecutor) -> JobRunner:
    return JobRunner(registry=registry, bus=EventBus(clock=ManualClock(T0)), metrics=DaemonMetrics(),
                     clock=ManualClock(T0), executor=executor,
                     leadership=lease.acting_epoch if lease is not None else None)


def _write(registry: Registry, what: str) -> None:
    with registry.write() as tx:
        tx.append_audit(actor=Actor("opsctld", None, "job"), action=what, model="fraud", from_version=None,
                        to_version=None, reason="", outcome=Outcome.OK, now=T0)


def test_a_standby_skips_the_jobs_and_the_leader_runs_them(make_registry: Make) -> None:
    leader_registry, standby_registry = make_registry(), make_registry()
    leader = LeaderLease(leader_registry, ttl_seconds=TTL, holder="leader")
    standby = LeaderLease(standby_registry, ttl_seconds=TTL, holder="standby")
    assert leader.tick(T0) is not None and standby.tick(T0) is None
    ran: list[str] = []

    def job(name: str) -> JobSpec:
        return JobSpec("canary", 10, lambda: (ran.append(name), JobOutcome(True, "ok"))[1])

    with ThreadPoolExecutor(2) as executor:
        skipped = asyncio.run(_runner(standby_registry, standby, executor).run(job("standby")))
        done = asyncio.run(_runner(leader_registry, leader, executor).run(job("leader")))
    assert ran == ["leader"] and done.ok and skipped.summary == "standby: another daemon leads"


def test_a_paused_leaders_late_write_is_refused_after_a_takeover(make_registry: Make) -> None:
    old_registry, new_registry = make_registry(), make_registry()
    old = LeaderLease(old_registry, ttl_seconds=TTL, holder="old")
    new = LeaderLease(new_registry, ttl_seconds=TTL, holder="new")
    assert old.tick(T0) is not None
    in_job, resume = threading.Event(), threading.Event()

    def transition() -> JobOutcome:
        _write(old_registry, "stage-1")   # before the pause: fenced with epoch 1, which still holds
        in_job.set()
        resume.wait(30)                    # SIGSTOP'd here, past the lease
        _write(old_registry, "stage-2")   # a transition computed before the pause
        return JobOutcome(True, "advanced")

    async def scenario() -> JobOutcome:
        with ThreadPoolExecutor(2) as executor:
            running = asyncio.ensure_future(_runner(old_registry, old, executor).run(JobSpec("canary", 10, transition)))
            await asyncio.get_running_loop().run_in_executor(None, in_job.wait, 30)
            taken = new.tick(T0 + timedelta(seconds=TTL))  # the other daemon takes over and acts
            assert taken is not None and taken.epoch == 2
            with new_registry.fenced(taken.epoch):
                _write(new_registry, "stage-2 by the new leader")
            resume.set()
            return await running

    outcome = asyncio.run(scenario())
    assert not outcome.ok and "FencedError" in outcome.summary and "carried epoch 1" in outcome.summary
    assert [e.action for e in new_registry.audit()] == ["stage-1", "stage-2 by the new leader"]
    # Each entry names the epoch it was written under (a postmortem can tell the leaders apart).
    assert [e.detail for e in new_registry.audit()] == ["lease epoch 1", "lease epoch 2"]
    with new_registry.read() as tx:
        assert tx.verify_audit_chain().ok


def test_without_a_lease_every_job_runs_unfenced(make_registry: Make) -> None:
    registry = make_registry()  # one daemon on SQLite: no leadership, as before
    with ThreadPoolExecutor(1) as executor:
        outcome = asyncio.run(_runner(registry, None, executor).run(
            JobSpec("canary", 10, lambda: (_write(registry, "x"), JobOutcome(True, "ok"))[1])))
    assert outcome.ok and [(e.action, e.detail) for e in registry.audit()] == [("x", "")]
