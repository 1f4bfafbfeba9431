"""A canary survives the loss of its leader: three real daemons on one real PostgreSQL, a real Prometheus fed
healthy metrics by the ControlledExporter, a canary going through [10, 50, 100] % with 2 s stages.

* SIGKILL the leader at stage 2: another daemon takes the lease and runs the canary job within the lease
  TTL + one renew interval + one job interval (measured from the registry's own timestamps and printed);
  the canary goes on from its persisted state (same canary, stage 2) to ``succeeded``, and the audit log
  holds every stage and every weight move exactly once, in order, its hash chain intact
  (``opsctl audit verify`` on the PostgreSQL registry).
* At the last stage the canary waits in ``promoting`` for its ``confirm_promotion`` hook, a command that
  blocks until the test lets it go. That is how a write is put in flight deterministically: the leader is
  SIGSTOPped while its canary job sits in the hook, the third daemon takes over and approves, then the old
  leader is SIGCONTed and its job goes on to save the approval it computed. The fencing token refuses that
  write (its log says which epoch it carried), and no audit entry carries the stale epoch after the
  takeover: the approval is audited once, under the new leader's epoch.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.leader_lease import Lease, read_lease
from opsctl.adapters.registry import Registry, open_registry
from opsctl.adapters.registry_engine import RegistrySettings
from opsctl.clock import parse_utc
from opsctl.domain import Actor
from opsctl.services.registry import RegisterRequest, RegistryService
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.prometheus import ControlledExporter, PrometheusStack
from tests.fixtures.wait import wait_for

TTL, RENEW, CANARY_JOB = 3.0, 0.5, 0.25
STAGES = (10, 50, 100)
# What a loaded 2-core machine's scheduling adds to a takeover (the same allowance as test_leader_failover).
SCHED_SLACK = 1.0
HEALTHY = {"request_rate": 2000.0, "error_ratio": 0.005}
MODEL = "fraud-ha"


def config(url: str, prometheus_url: str, hook_dir: Path) -> str:
    # The hook records which daemon ran it ($PPID) and blocks until the test creates `go`.
    hook = f"echo $PPID >> {hook_dir}/started; while [ ! -e {hook_dir}/go ]; do sleep 0.05; done"
    return f"""
[registry]
url = "{url}"
lease_ttl_seconds = {TTL}
lease_renew_seconds = {RENEW}
[jobs]
canary_seconds = {CANARY_JOB}
housekeeping_seconds = 60
[prometheus]
url = "{prometheus_url}"
window = "30s"
staleness_seconds = 3
[sla]
require_accuracy = false
error_rate_percent = 5
[canary]
stages = {list(STAGES)}
min_stage_seconds = 2
analysis_interval_seconds = 1
failure_threshold = 2
inconclusive_limit = 10
metrics_error_limit = 3
accuracy_gate = false
error_rate_mde_relative = 2.0
error_rate_min_baseline = 0.005
progress_deadline_seconds = 120
manual_approval = true
[actuators.confirm_promotion]
command = ["sh", "-c", "{hook}"]
timeout_seconds = 60
"""


def _lease(registry: Registry) -> Lease | None:
    with registry.read() as tx:
        return read_lease(tx)


def _pid(lease: Lease) -> int:
    return int(lease.holder.split(":")[1])  # host:pid:random


def _seed(registry: Registry, root: Path) -> None:
    service = RegistryService(registry, ArtifactStore(root / "artifacts"))
    actor = Actor("test", None, "test")
    for version in ("v1", "v2"):
        artifact = root / f"{MODEL}-{version}.bin"
        artifact.write_bytes(f"{MODEL}{version}".encode())
        service.register(RegisterRequest(MODEL, version, artifact), actor=actor)
    service.promote(MODEL, "v1", actor=actor)


def _hook_runs(hook_dir: Path) -> list[int]:
    path = hook_dir / "started"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _first_job_run_after(registry: Registry, moment: datetime) -> datetime | None:
    with registry.read() as tx:
        rows = tx.conn.execute("SELECT started_at FROM job_runs WHERE job = 'canary' ORDER BY id").fetchall()
    after = [parse_utc(row["started_at"]) for row in rows if parse_utc(row["started_at"]) > moment]
    return min(after) if after else None


def _epoch_of(detail: str) -> int | None:
    found = re.search(r"lease epoch (\d+)$", detail)
    return int(found.group(1)) if found else None


def test_a_canary_goes_on_after_its_leader_is_killed_and_a_paused_leaders_late_write_is_fenced(
        tmp_path: Path, postgres_server: PostgresServer, prometheus_stack: PrometheusStack,
        exporter: ControlledExporter) -> None:
    url = postgres_server.create_database()
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    registry = open_registry(RegistrySettings(url=url), tmp_path / "observer.db", publish_routing=False)
    _seed(registry, tmp_path)
    exporter.set(MODEL, "v1", **HEALTHY)
    exporter.set(MODEL, "v2", **HEALTHY)
    text = config(url, prometheus_stack.url, hook_dir)
    processes = [DaemonProcess(make_opsctl_env(tmp_path / name, text)) for name in ("a", "b", "c")]
    daemons: dict[int, DaemonProcess] = {}
    out: set[int] = set()  # killed or stopped: not asked anything

    def alive() -> DaemonProcess:
        return next(d for pid, d in daemons.items() if pid not in out)

    def canary() -> dict[str, Any]:
        return alive().http().get("/v1/canaries", params={"model": MODEL}).json()[0]  # type: ignore[no-any-return]

    try:
        with ThreadPoolExecutor(len(processes)) as starting:  # side by side: a start is seconds on a busy machine
            daemons = {d.pid: d for d in starting.map(lambda d: d.start(timeout=90), processes)}
        first = wait_for(lambda: _lease(registry), 30, what="a leader")
        follower = next(d for pid, d in daemons.items() if pid != _pid(first))
        started = follower.http().post("/v1/canaries", json={"model": MODEL, "version": "v2", "reason": "ha test"})
        assert started.status_code == 201, started.text  # any daemon serves the API
        canary_id = started.json()["id"]

        # SIGKILL the leader once the canary is at stage 2.
        wait_for(lambda: canary()["stage"] == 2, 30, what="the canary to reach stage 2")
        leader = _lease(registry)
        assert leader is not None
        killed_wall = datetime.now(UTC)
        killed_at = time.monotonic()
        daemons[_pid(leader)].signal(signal.SIGKILL)
        out.add(_pid(leader))
        second = wait_for(lambda: (lease := _lease(registry)) and lease.epoch > leader.epoch and lease,
                          TTL + RENEW + SCHED_SLACK + 10, what="another daemon to take over")
        first_run = wait_for(lambda: _first_job_run_after(registry, killed_wall), 10,
                             what="the new leader's first canary job")
        lease_takeover = (second.acquired_at - killed_wall).total_seconds()
        job_takeover = (first_run - killed_wall).total_seconds()
        print(f"\ntakeover after SIGKILL: lease taken {lease_takeover:.2f} s, first canary job {job_takeover:.2f} s"
              f" (bound {TTL + RENEW + CANARY_JOB + SCHED_SLACK:.2f} s; test saw it after"
              f" {time.monotonic() - killed_at:.2f} s)", file=sys.stderr)
        assert _pid(second) in daemons and _pid(second) not in out and second.epoch == leader.epoch + 1
        assert job_takeover <= TTL + RENEW + CANARY_JOB + SCHED_SLACK, f"first job after {job_takeover:.2f} s"

        # The canary goes on from stage 2 to the last stage, then waits in its confirm_promotion hook.
        wait_for(lambda: _hook_runs(hook_dir), 60, what="the confirm_promotion hook to run")
        holding = _lease(registry)  # `second` unless a starved renewal moved the lease on again meanwhile
        assert holding is not None and _hook_runs(hook_dir) == [_pid(holding)]
        assert canary()["id"] == canary_id and canary()["state"] == "promoting"

        # SIGSTOP the leader while its job is inside the hook; the third daemon takes over and runs the hook too.
        paused = daemons[_pid(holding)]
        paused.signal(signal.SIGSTOP)
        out.add(_pid(holding))
        try:
            third = wait_for(lambda: (lease := _lease(registry)) and lease.epoch > holding.epoch and lease,
                             TTL + RENEW + SCHED_SLACK + 15, what="another daemon to take over")
            assert _pid(third) not in (_pid(leader), _pid(holding))
            wait_for(lambda: _pid(third) in _hook_runs(hook_dir), 10, what="the new leader's hook")
            (hook_dir / "go").touch()  # both hooks return; only the new leader's job may act on it
            final = wait_for(lambda: (doc := canary())["state"] == "succeeded" and doc, 30,
                             what="the canary to succeed")
        finally:
            paused.signal(signal.SIGCONT)
            out.discard(_pid(holding))
        assert final["id"] == canary_id and final["stage"] == len(STAGES)
        # The resumed daemon's job saves the approval it computed before the pause: refused by the token.
        refused = f"this write carried epoch {holding.epoch} and was refused"
        wait_for(lambda: refused in paused.log(), 20, what="the paused leader's refused write in its log",
                 context=paused.log)
        wait_for(lambda: not paused.http().get("/v1/status").json()["leader"]["leading"], 10,
                 what="the resumed daemon to stand by")

        events = registry.audit(MODEL, limit=1000)
        moves = [(e.action, e.detail.split(": ", 1)[1].split(";")[0] if e.action == "canary_weight"
                  else re.search(r"stage (\d+/\d+):", e.detail).group(1))  # type: ignore[union-attr]
                 for e in events if e.action in ("canary_weight", "canary_stage") and e.outcome.value == "ok"]
        assert moves == [("canary_weight", "0% -> 10%"), ("canary_stage", "2/3"), ("canary_weight", "10% -> 50%"),
                         ("canary_stage", "3/3"), ("canary_weight", "50% -> 100%")], moves
        approvals = [e for e in events if e.action == "canary_approve"]
        assert len(approvals) == 1 and _epoch_of(approvals[0].detail) == third.epoch, approvals
        assert [e.action for e in events].count("canary_promote") == 1
        # Every entry a job made names its epoch; none carries the paused leader's after the takeover, and
        # epochs never go back in the log (a stale leader's write would be an older epoch after a newer one).
        stale = [e for e in events if e.at >= third.acquired_at and _epoch_of(e.detail) == holding.epoch]
        assert stale == [], stale
        start_weight = next(e for e in events if e.action == "canary_weight")  # by the API's start: unfenced
        epochs = [_epoch_of(e.detail) for e in events if e.via == "canary-job" and e.id > start_weight.id]
        assert epochs and None not in epochs and epochs == sorted(epochs), epochs  # type: ignore[type-var]
        assert {leader.epoch, holding.epoch, third.epoch} <= set(epochs), epochs
        verified = alive().env.run("audit", "verify")
        assert verified.code == 0, verified.stdout + verified.stderr
        deployment = registry.get_deployment(MODEL)
        assert deployment is not None and deployment.production_version == "v2"
    finally:
        registry.close()
        for daemon in processes:
            daemon.stop()
