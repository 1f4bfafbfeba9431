"""Soak: 3 daemons on one PostgreSQL, 1,000 models, 50 canaries kept running, the leader SIGKILLed every 30 s.

Run: .venv/bin/python benchmarks/soak_failover.py [--minutes 10] [--models 1000] [--canaries 50]

Everything is real: a PostgreSQL server (started as the test fixture does), three `opsctl daemon`
processes with the same config and one shared artifact directory, a Prometheus scraping two
in-process exporters that serve healthy counters and latency histograms (one for the canary models,
scraped every 2 s; one for the production versions of the other models, every 10 s). Every
`--kill-every` seconds the current lease holder is SIGKILLed and started again. A driver starts a
new canary (a newly registered version) on each canary model whenever its last one has ended, so
`--canaries` canaries are in progress all the time; a client loops over `GET /v1/status` and
`GET /v1/models` on a daemon that is not the leader.

Printed at the end:
* double transitions: a canary start, stage change, weight move, success or promotion recorded more
  than once for the same canary in the audit log (must be 0);
* lost audit events: the audit chain does not verify, audit ids are not contiguous, or a canary's
  stage sequence is not a complete prefix of start -> 10 -> 50 -> 100 -> promote (must be 0);
* takeover time p50/p99: from the SIGKILL to the new lease's ``acquired_at`` (both wall clock, one host);
* follower API latency p50/p99/max and errors, per endpoint.
Not part of `./dev test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsctl.adapters.artifacts import ArtifactStore  # noqa: E402
from opsctl.adapters.leader_lease import Lease, read_lease  # noqa: E402
from opsctl.adapters.prometheus_launcher import LocalPrometheus  # noqa: E402
from opsctl.adapters.registry import Registry, open_registry  # noqa: E402
from opsctl.adapters.registry_engine import RegistrySettings  # noqa: E402
from opsctl.domain import Actor, AuditEvent  # noqa: E402
from opsctl.services.audit import verify_registry  # noqa: E402
from opsctl.services.registry import RegisterRequest, RegistryService  # noqa: E402
from tests.fixtures.cli import make_opsctl_env  # noqa: E402
from tests.fixtures.daemon import DaemonProcess  # noqa: E402
from tests.fixtures.postgres import running_postgres  # noqa: E402
from tests.fixtures.prometheus import ControlledExporter  # noqa: E402

STAGES = (10, 50, 100)
EXPECTED_MOVES = ["0% -> 10%", "10% -> 50%", "50% -> 100%"]
TERMINAL = {"succeeded", "rolled_back", "aborted", "failed"}
HEALTHY = {"request_rate": 500.0, "error_ratio": 0.002}
ACTOR = Actor("soak", None, "direct")


def daemon_config(url: str, prometheus: str, ttl: float, renew: float) -> str:
    return f"""\
[registry]
url = "{url}"
pool_size = 8
lease_ttl_seconds = {ttl}
lease_renew_seconds = {renew}
[jobs]
canary_seconds = 1
health_seconds = 15
alerts_seconds = 15
housekeeping_seconds = 60
[prometheus]
url = "{prometheus}"
window = "30s"
staleness_seconds = 25
timeout_seconds = 20
[sla]
require_accuracy = false
error_rate_percent = 5
[canary]
stages = [{", ".join(str(s) for s in STAGES)}]
min_stage_seconds = 10
analysis_interval_seconds = 5
failure_threshold = 3
inconclusive_limit = 30
metrics_error_limit = 10
accuracy_gate = false
error_rate_mde_relative = 2.0
error_rate_min_baseline = 0.002
progress_deadline_seconds = 600
"""


def prometheus_config() -> str:
    return """\
global:
  scrape_interval: 2s
  evaluation_interval: 10s
scrape_configs:
  - job_name: canaries
    scrape_interval: 2s
    file_sd_configs: [{files: ["canaries.json"], refresh_interval: 5s}]
  - job_name: fleet
    scrape_interval: 10s
    scrape_timeout: 9s
    file_sd_configs: [{files: ["fleet.json"], refresh_interval: 5s}]
"""


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def holder_pid(lease: Lease) -> int:
    return int(lease.holder.split(":")[1])  # host:pid:random


@dataclass
class Fleet:
    """The three daemons, by name; ``restarting`` names those being started again."""

    daemons: dict[str, DaemonProcess]
    restarting: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_pid(self, pid: int) -> str | None:
        with self.lock:
            return next((n for n, d in self.daemons.items() if d.proc is not None and d.pid == pid), None)

    def follower(self, leader_pid: int | None) -> DaemonProcess | None:
        with self.lock:
            for name, daemon in self.daemons.items():
                if name in self.restarting or daemon.proc is None or daemon.proc.poll() is not None:
                    continue
                if daemon.pid != leader_pid:
                    return daemon
        return None


@dataclass
class Observations:
    kills: list[tuple[float, int]] = field(default_factory=list)  # (kill wall time, epoch before)
    takeovers: list[float] = field(default_factory=list)
    missed_takeovers: int = 0
    skipped_kills: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    canaries_started: int = 0
    start_refused: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    leader_pid: int | None = None
    unsettled: int = 0
    drain_seconds: float = 0.0


def seed(registry: Registry, store: ArtifactStore, root: Path, models: int, exporter: ControlledExporter,
         canary_exporter: ControlledExporter, canary_models: list[str]) -> dict[str, int]:
    """Register and promote v1 of every model; the canary models' metrics go to their own exporter."""
    service = RegistryService(registry, store)
    artifacts = root / "seed"
    artifacts.mkdir()
    for i in range(models):
        model = f"model-{i:04d}"
        artifact = artifacts / f"{model}.bin"
        artifact.write_bytes(f"{model} v1".encode())
        service.register(RegisterRequest(model, "v1", artifact), actor=ACTOR)
        service.promote(model, "v1", actor=ACTOR, reason="soak seed")
        (canary_exporter if model in canary_models else exporter).set(model, "v1", **HEALTHY)
    return dict.fromkeys(canary_models, 1)


def start_canary(fleet: Fleet, obs: Observations, service: RegistryService, root: Path,
                 exporter: ControlledExporter, model: str, version: int) -> bool:
    artifact = root / "seed" / f"{model}-v{version}.bin"
    artifact.write_bytes(f"{model} v{version}".encode())
    service.register(RegisterRequest(model, f"v{version}", artifact), actor=ACTOR)
    exporter.set(model, f"v{version}", **HEALTHY)
    daemon = fleet.follower(obs.leader_pid)
    if daemon is None:
        return False
    try:
        response = daemon.http(timeout=30).post("/v1/canaries", json={"model": model, "version": f"v{version}",
                                                                      "reason": "soak", "overrides": {}})
    except httpx.HTTPError as error:
        obs.start_refused[type(error).__name__] += 1
        return False
    if response.status_code != 201:
        obs.start_refused[f"{response.status_code} {response.text[:120]}"] += 1
        return False
    obs.canaries_started += 1
    return True


def drive_canaries(stop: threading.Event, fleet: Fleet, obs: Observations, service: RegistryService, root: Path,
                   exporter: ControlledExporter, versions: dict[str, int]) -> None:
    """Keep a canary in progress on every canary model: a new version whenever the last canary ended."""
    seen_terminal: set[tuple[str, str]] = set()
    while not stop.is_set():
        daemon = fleet.follower(obs.leader_pid)
        documents: list[dict[str, object]] = []
        if daemon is not None:
            try:
                response = daemon.http(timeout=30).get("/v1/canaries")
                documents = response.json() if response.status_code == 200 else []
            except (httpx.HTTPError, json.JSONDecodeError):
                documents = []
        latest = {str(d["model"]): d for d in documents}
        for model in versions:
            doc = latest.get(model)
            if doc is not None and doc["state"] not in TERMINAL:
                continue
            if doc is not None and (model, str(doc["canary_version"])) not in seen_terminal:
                seen_terminal.add((model, str(doc["canary_version"])))
                obs.outcomes[str(doc["state"])] += 1
            if doc is None and versions[model] > 1:
                continue  # started, not listed yet
            if doc is not None and str(doc["canary_version"]) != f"v{versions[model]}":
                continue  # the listing predates our last start
            if stop.is_set():
                return
            versions[model] += 1
            if not start_canary(fleet, obs, service, root, exporter, model, versions[model]):
                versions[model] -= 1
        stop.wait(2.0)


def poll_follower(stop: threading.Event, fleet: Fleet, obs: Observations) -> None:
    """GET /v1/status and /v1/models in turn on a daemon that is not the leader, ~10 per second."""
    clients: dict[int, httpx.Client] = {}
    paths = ("/v1/status", "/v1/models")
    n = 0
    while not stop.is_set():
        daemon = fleet.follower(obs.leader_pid)
        if daemon is None:
            stop.wait(0.1)
            continue
        client = clients.get(daemon.pid) or clients.setdefault(daemon.pid, daemon.http(timeout=30))
        path = paths[n % 2]
        n += 1
        start = time.perf_counter()
        try:
            response = client.get(path)
            ok = response.status_code == 200
        except httpx.HTTPError as error:
            ok, response = False, None
            obs.errors[f"{path} {type(error).__name__}"] += 1
        elapsed = time.perf_counter() - start
        if ok:
            obs.latencies[path].append(elapsed)
        elif response is not None:
            obs.errors[f"{path} HTTP {response.status_code}"] += 1
        stop.wait(0.1)


def read_current_lease(registry: Registry) -> Lease | None:
    with registry.read() as tx:
        return read_lease(tx)


def canary_audit(events: list[AuditEvent]) -> tuple[int, int, dict[str, int], list[str]]:
    """Double transitions, lost events, per-action counts, and the first problems found."""
    by_canary: dict[tuple[str, str], list[AuditEvent]] = defaultdict(list)
    actions: Counter[str] = Counter()
    for event in events:
        if event.action.startswith("canary_") and event.model is not None and event.to_version is not None:
            by_canary[(event.model, event.to_version)].append(event)
            actions[event.action] += 1
    doubles, lost, problems = 0, 0, []
    for (model, version), rows in sorted(by_canary.items()):
        ok_rows = [r for r in rows if r.outcome.value == "ok"]
        moves = [r.detail.split(": ", 1)[1].split(";")[0] for r in ok_rows
                 if r.action == "canary_weight" and ": " in r.detail]
        count = Counter(r.action for r in ok_rows)
        once = {a: count[a] for a in ("canary_start", "canary_succeeded", "canary_promote")}
        dup = (len(moves) - len(set(moves)) + sum(max(0, c - 1) for c in once.values())
               + max(0, count["canary_stage"] - (len(STAGES) - 1)))
        if dup:
            doubles += dup
            problems.append(f"{model} {version}: doubled {dict(count)} moves {moves}")
        if count["canary_start"] == 0:
            lost += 1
            problems.append(f"{model} {version}: no canary_start")
        if count["canary_succeeded"]:
            complete = (moves == EXPECTED_MOVES and count["canary_stage"] == len(STAGES) - 1
                        and count["canary_promote"] == 1)
        else:
            # Still running when the daemons stopped: its stage may be recorded ahead of the weight move.
            complete = moves == EXPECTED_MOVES[:len(moves)] and count["canary_stage"] <= len(moves)
            if any(r.action in ("canary_rolled_back", "canary_aborted", "canary_failed") for r in ok_rows):
                complete = moves == EXPECTED_MOVES[:len(moves)]
        if not complete:
            lost += 1
            problems.append(f"{model} {version}: incomplete {dict(count)} moves {moves}")
    return doubles, lost, dict(actions), problems[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--canaries", type=int, default=50)
    parser.add_argument("--kill-every", type=float, default=30.0)
    parser.add_argument("--ttl", type=float, default=6.0, help="lease_ttl_seconds")
    parser.add_argument("--renew", type=float, default=1.0, help="lease_renew_seconds")
    parser.add_argument("--drain-seconds", type=float, default=300.0,
                        help="after the kills, how long to wait for the canaries in progress to finish")
    args = parser.parse_args()
    canary_models = [f"model-{i:04d}" for i in range(args.canaries)]

    with tempfile.TemporaryDirectory(prefix="opsctl-soak-") as tmp, running_postgres(max_connections=200) as server:
        root = Path(tmp)
        url = server.create_database()
        fleet_exporter, canary_exporter = ControlledExporter(), ControlledExporter()
        fleet_exporter.start()
        canary_exporter.start()
        prom = LocalPrometheus(prometheus_config(), extra_files={
            "canaries.json": json.dumps([{"targets": [canary_exporter.target]}]),
            "fleet.json": json.dumps([{"targets": [fleet_exporter.target]}])})
        shared = root / "artifacts"
        shared.mkdir(mode=0o750)
        registry = open_registry(RegistrySettings(url=url), root / "observer" / "registry.db", publish_routing=False)
        store = ArtifactStore(shared)
        obs = Observations()
        daemons: dict[str, DaemonProcess] = {}
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            prom.start()
            t0 = time.monotonic()
            versions = seed(registry, store, root, args.models, fleet_exporter, canary_exporter, canary_models)
            print(f"seeded {args.models} models (v1 in production) in {time.monotonic() - t0:.1f} s", flush=True)
            config = daemon_config(url, prom.url, args.ttl, args.renew)
            for name in ("a", "b", "c"):
                env = make_opsctl_env(root / name, config)
                env.state_dir.mkdir(parents=True)
                (env.state_dir / "artifacts").symlink_to(shared)  # the shared mount, same path on each
                daemons[name] = DaemonProcess(env).start(timeout=120)
            fleet = Fleet(daemons)
            print(f"3 daemons up; lease TTL {args.ttl} s, renew {args.renew} s; load average"
                  f" {os.getloadavg()[0]:.1f}", flush=True)
            deadline = time.monotonic() + 60
            while (lease := read_current_lease(registry)) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            obs.leader_pid = holder_pid(lease) if lease is not None else None
            service = RegistryService(registry, store)
            driving = threading.Event()
            threads = [threading.Thread(target=drive_canaries, daemon=True,
                                        args=(driving, fleet, obs, service, root, canary_exporter, versions)),
                       threading.Thread(target=poll_follower, daemon=True, args=(stop, fleet, obs))]
            for thread in threads:
                thread.start()
            loads = [os.getloadavg()[0]]
            end = time.monotonic() + args.minutes * 60
            next_kill = time.monotonic() + args.kill_every
            pending: tuple[datetime, int] | None = None
            while time.monotonic() < end:
                if not threads[0].is_alive():
                    raise SystemExit("the canary driver stopped (see its traceback above); the run is void")
                lease = read_current_lease(registry)
                if lease is not None:
                    obs.leader_pid = holder_pid(lease)
                if pending is not None and lease is not None and lease.epoch > pending[1]:
                    obs.takeovers.append((lease.acquired_at - pending[0]).total_seconds())
                    pending = None
                if time.monotonic() >= next_kill:
                    next_kill += args.kill_every
                    loads.append(os.getloadavg()[0])
                    if pending is not None:
                        obs.missed_takeovers += 1  # no new lease within a whole kill interval
                        pending = None
                    name = fleet.by_pid(holder_pid(lease)) if lease is not None else None
                    if name is None or lease is None or lease.expires_at < datetime.now(UTC):
                        obs.skipped_kills += 1
                    else:
                        killed_at = datetime.now(UTC)
                        daemons[name].signal(signal.SIGKILL)
                        daemons[name].wait(30)
                        pending = (killed_at, lease.epoch)
                        obs.kills.append((time.monotonic(), lease.epoch))
                        threading.Thread(target=restart, args=(fleet, name, obs), daemon=True).start()
                time.sleep(0.05)
            wait_until = time.monotonic() + args.kill_every
            while pending is not None and time.monotonic() < wait_until:  # the last kill's takeover
                lease = read_current_lease(registry)
                if lease is not None and lease.epoch > pending[1]:
                    obs.takeovers.append((lease.acquired_at - pending[0]).total_seconds())
                    obs.leader_pid, pending = holder_pid(lease), None
                time.sleep(0.05)
            obs.missed_takeovers += pending is not None
            # No more kills or new canaries: let the canaries in progress finish, so that every canary's
            # audit trail can be checked whole (a stage recorded whose weight move is still in the outbox
            # when the daemons stop is not a lost event).
            driving.set()
            threads[0].join(60)
            loads.append(os.getloadavg()[0])
            obs.unsettled, obs.drain_seconds = drain(fleet, obs, timeout=args.drain_seconds)
            stop.set()
            threads[1].join(60)
        finally:
            stop.set()
            for daemon in daemons.values():
                daemon.stop()
            prom.stop()
            fleet_exporter.stop()
            canary_exporter.stop()
        report(registry, obs, args, loads)
        registry.close()


def drain(fleet: Fleet, obs: Observations, *, timeout: float) -> tuple[int, float]:
    """Wait until every canary has ended (or ``timeout``); how many had not, and how long it took."""
    started = time.monotonic()
    unsettled = -1
    while time.monotonic() - started < timeout:
        daemon = fleet.follower(obs.leader_pid) or fleet.follower(None)
        if daemon is not None:
            try:
                response = daemon.http(timeout=30).get("/v1/canaries")
                unsettled = (sum(d["state"] not in TERMINAL for d in response.json())
                             if response.status_code == 200 else -1)
            except (httpx.HTTPError, json.JSONDecodeError):
                unsettled = -1
            if unsettled == 0:
                break
        time.sleep(1.0)
    return unsettled, time.monotonic() - started


def restart(fleet: Fleet, name: str, obs: Observations) -> None:
    with fleet.lock:
        fleet.restarting.add(name)
        old = fleet.daemons[name]
    started = time.monotonic()
    try:
        fresh = DaemonProcess(old.env).start(timeout=120)
        obs.restart_seconds.append(time.monotonic() - started)
        with fleet.lock:
            fleet.daemons[name] = fresh
    finally:
        with fleet.lock:
            fleet.restarting.discard(name)


def report(registry: Registry, obs: Observations, args: argparse.Namespace, loads: list[float]) -> None:
    chain = verify_registry(registry)
    events = registry.audit(None, limit=10_000_000)
    ids = [e.id for e in events]
    contiguous = ids == list(range(ids[0], ids[0] + len(ids))) if ids else True
    doubles, lost, actions, problems = canary_audit(events)
    # Entries a scheduled job wrote end with the lease epoch they were fenced with: it never goes back.
    epochs = [int(m.group(1)) for e in events if (m := re.search(r"lease epoch (\d+)$", e.detail))]
    backwards = sum(later < earlier for earlier, later in pairwise(epochs))
    lost += (0 if chain.ok else 1) + (0 if contiguous else 1)
    print()
    print(f"soak: {args.minutes:g} min, {args.models} models, {args.canaries} canary models, leader SIGKILLed every"
          f" {args.kill_every:g} s, lease TTL {args.ttl:g} s / renew {args.renew:g} s")
    print(f"load average (1 min) during the run: min {min(loads):.1f}, median {statistics.median(loads):.1f},"
          f" max {max(loads):.1f} (2 cores, shared)")
    print(f"leader kills: {len(obs.kills)} (skipped, no live leader at kill time: {obs.skipped_kills});"
          f" takeovers seen: {len(obs.takeovers)}; no new leader within {args.kill_every:g} s: {obs.missed_takeovers}")
    if obs.takeovers:
        print(f"takeover time (SIGKILL -> new lease acquired): p50 {pct(obs.takeovers, 0.5):.2f} s,"
              f" p99 {pct(obs.takeovers, 0.99):.2f} s, max {max(obs.takeovers):.2f} s"
              f" (bound TTL + renew = {args.ttl + args.renew:g} s)")
    if obs.restart_seconds:
        print(f"killed daemon back up (start to answering): median {statistics.median(obs.restart_seconds):.1f} s,"
              f" max {max(obs.restart_seconds):.1f} s")
    print(f"canaries started: {obs.canaries_started}; ended while driving: {dict(obs.outcomes)};"
          f" starts refused: {dict(obs.start_refused) or 0}")
    print(f"after the kills stopped: {'all canaries ended' if obs.unsettled == 0 else f'{obs.unsettled} still running'}"
          f" within {obs.drain_seconds:.0f} s")
    print(f"canary audit rows: {actions}")
    verdict = "verifies" if chain.ok else f"BROKEN at {chain.first_broken_id}"
    print(f"audit log: {chain.rows} rows, chain {verdict}, ids {'contiguous' if contiguous else 'NOT contiguous'}")
    print(f"job audit entries fenced with an epoch older than the entry before: {backwards} (of {len(epochs)})")
    print(f"DOUBLE TRANSITIONS: {doubles}")
    print(f"LOST AUDIT EVENTS: {lost}")
    for problem in problems:
        print(f"  {problem}")
    for path, values in sorted(obs.latencies.items()):
        errors = sum(n for key, n in obs.errors.items() if key.startswith(path + " "))
        print(f"follower GET {path}: {len(values)} ok, {errors} errors; p50 {pct(values, 0.5) * 1000:.1f} ms,"
              f" p99 {pct(values, 0.99) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms")
    if obs.errors:
        print(f"follower errors: {dict(obs.errors)}")


if __name__ == "__main__":
    main()
