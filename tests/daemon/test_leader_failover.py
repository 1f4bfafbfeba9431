"""Three real daemons on one real PostgreSQL registry: one leads the jobs; SIGKILL it and another takes over
within the lease TTL + one renew interval; SIGSTOP it past its lease and SIGCONT it, and it comes back as a
standby without taking the lease back. All along, `opsctl status` on any daemon lists every daemon, the leader
with its epoch and since when, a killed one as stale; a cleanly stopped one leaves the list. (The refusal of a
paused leader's late writes by the fencing token: tests/daemon/test_job_fencing.py, where the pause can be
placed mid-job, and tests/daemon/test_canary_failover.py, with real daemons.)"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from opsctl.adapters.leader_lease import Lease, read_lease
from opsctl.adapters.registry import Registry, open_registry
from opsctl.adapters.registry_engine import RegistrySettings
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.wait import wait_for

TTL, RENEW = 3.0, 0.5
# What the test's own polling (every 0.05 s) and a loaded machine's scheduling add to a takeover.
POLL_SLACK = 1.0


def _lease(registry: Registry) -> Lease | None:
    with registry.read() as tx:
        return read_lease(tx)


def _pid(lease: Lease) -> int:
    return int(lease.holder.split(":")[1])  # host:pid:random


def _daemons(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """The ``daemons`` section of ``opsctl status -o json`` run against ``daemon``."""
    shown = daemon.env.run("status", "-o", "json")
    assert shown.code == 0, shown.stderr
    return shown.json()["daemons"]  # type: ignore[no-any-return]


def _host(lease: Lease) -> str:
    return lease.holder.split(":")[0]


def test_the_jobs_fail_over_to_another_daemon(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    config = (f'\n[registry]\nurl = "{url}"\nlease_ttl_seconds = {TTL}\nlease_renew_seconds = {RENEW}\n'
              '[jobs]\nhousekeeping_seconds = 1\n')
    daemons = {}
    for name in ("a", "b", "c"):
        daemon = DaemonProcess(make_opsctl_env(tmp_path / name, config)).start(timeout=90)
        daemons[daemon.pid] = daemon
    registry = open_registry(RegistrySettings(url=url), tmp_path / "observer.db", publish_routing=False)
    try:
        first = wait_for(lambda: _lease(registry), 30, what="a leader")
        assert _pid(first) in daemons
        status = daemons[_pid(first)].http().get("/v1/status").json()["leader"]
        assert status["leading"] and status["lease"]["epoch"] == first.epoch
        # `opsctl status` on any daemon lists all three, the leader with its epoch and since when.
        follower = next(d for pid, d in daemons.items() if pid != _pid(first))
        listed = wait_for(lambda: len(roster := _daemons(follower)) == 3 and roster, 10, what="three daemons listed")
        assert {d["pid"] for d in listed} == set(daemons) and not any(d["stale"] for d in listed)
        assert [(d["holder"], d["epoch"], d["leading_since"]) for d in listed if d["leading"]] == [
            (first.holder, first.epoch, status["lease"]["acquired_at"])]
        assert [d["pid"] for d in listed if d["this_daemon"]] == [follower.pid]

        # SIGKILL the leader: no release, the lease has to expire.
        killed_at = time.monotonic()
        daemons[_pid(first)].signal(signal.SIGKILL)
        second = wait_for(lambda: (lease := _lease(registry)) and lease.epoch > first.epoch and lease,
                          TTL + RENEW + POLL_SLACK + 5, what="another daemon to take over")
        takeover = time.monotonic() - killed_at
        assert _pid(second) in daemons and _pid(second) != _pid(first) and second.epoch == first.epoch + 1
        assert takeover <= TTL + RENEW + POLL_SLACK, f"takeover took {takeover:.2f} s"
        leader = daemons[_pid(second)]
        wait_for(lambda: leader.http().get("/v1/status").json()["leader"]["leading"], 10,
                 what="the new leader to say it leads")
        shown = leader.env.run("status")
        assert f"leader: {second.holder}  epoch {second.epoch}  since" in shown.stdout, shown.stdout + shown.stderr
        assert "(this daemon leads)" in shown.stdout
        # The killed daemon is still listed, marked stale; the new leader is marked with its epoch.
        listed = {d["pid"]: d for d in _daemons(leader)}
        assert set(listed) == set(daemons) and listed[_pid(first)]["stale"] and not listed[_pid(first)]["leading"]
        assert listed[_pid(second)]["leading"] and listed[_pid(second)]["epoch"] == second.epoch
        rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith(_host(first))}
        assert "STALE" in rows[first.holder] and f"leader  epoch {second.epoch}" in rows[second.holder], rows
        # On the killed daemon's host, `opsctl status` says its daemon is down and shows the others from the registry.
        down = daemons[_pid(first)].env.run("status", "-o", "json")
        assert down.code == 6 and down.json()["daemon"]["up"] is False, down.stderr
        from_registry = {d["pid"]: d for d in down.json()["daemons"]}
        assert from_registry[_pid(first)]["stale"] and from_registry[_pid(second)]["leading"]
        assert from_registry[_pid(second)]["epoch"] == second.epoch

        # SIGSTOP the new leader past its lease; the third daemon takes over; SIGCONT: it stays a standby.
        leader.signal(signal.SIGSTOP)
        try:
            third = wait_for(lambda: (lease := _lease(registry)) and lease.epoch > second.epoch and lease,
                             TTL + RENEW + POLL_SLACK + 5, what="the third daemon to take over")
        finally:
            leader.signal(signal.SIGCONT)
        assert _pid(third) not in (_pid(first), _pid(second))
        wait_for(lambda: not leader.http().get("/v1/status").json()["leader"]["leading"], 10,
                 what="the resumed daemon to stand by")
        # It did not take the lease back with its old epoch: the lease only ever moves to a new epoch.
        # (On a starved machine a later renewal can miss the TTL and the lease move on again, legitimately.)
        now = _lease(registry)
        assert (now is not None and (now.holder, now.epoch) == (third.holder, third.epoch)) or now.epoch > third.epoch

        # A cleanly stopped daemon takes itself off the list.
        daemons[_pid(third)].stop()
        wait_for(lambda: _pid(third) not in {d["pid"] for d in _daemons(leader)}, 10,
                 what="the stopped daemon to leave the list")
    finally:
        registry.close()
        for daemon in daemons.values():
            daemon.stop()  # a killed one is reaped, the others get SIGTERM
