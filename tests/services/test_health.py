"""HealthService on a real SQLite registry with a ManualClock; Prometheus is a real closed port (down).

The healthy and degraded paths through a real Prometheus are covered end to end in
tests/daemon/test_health_subsystem.py; here the service's own contract: missing data is ``unknown``
(never healthy), the unknown rule fires after its cycles, and acks and silences are audited writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.prometheus_launcher import free_port
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.config import parse_settings
from opsctl.core.alerts import AlertPhase
from opsctl.core.sla import HealthStatus
from opsctl.domain import Actor
from opsctl.services.health import UNKNOWN_FOR_CYCLES, HealthService
from opsctl.services.registry import RegisterRequest, RegistryService
from opsctld.metrics import DaemonMetrics

ALICE = Actor("alice", 1000, "test")


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.registry = Registry(tmp_path / "registry.db")
        self.clock = ManualClock()
        service = RegistryService(self.registry, ArtifactStore(tmp_path / "artifacts"), clock=self.clock)
        for version in ("v1", "v2"):
            artifact = tmp_path / f"{version}.bin"
            artifact.write_bytes(version.encode())
            service.register(RegisterRequest("fraud", version, artifact, metrics={"accuracy": 0.9}), actor=ALICE)
        service.promote("fraud", "v1", actor=ALICE)
        # Nothing listens on this port: Prometheus is down.
        self.settings = parse_settings(f'[prometheus]\nurl = "http://127.0.0.1:{free_port()}"\n'
                                       'timeout_seconds = 2\n[jobs]\nhealth_seconds = 1\n')
        self.metrics = DaemonMetrics()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.health = HealthService(self.registry, settings=lambda: self.settings, gauges=self.metrics,
                                    clock=self.clock, events=lambda kind, data: self.events.append((kind, data)))

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_prometheus_down_makes_every_deployed_version_unknown_and_the_cycle_failed(world: World) -> None:
    report = world.health.run_health()
    assert not report.ok
    assert report.summary.startswith("PrometheusUnreachable: ")
    assert report.summary.endswith("; 1 versions marked unknown")
    health = world.health.health()
    assert [(v.result.model, v.result.version, v.role, v.result.status) for v in health.versions] == [
        ("fraud", "v1", "production", HealthStatus.UNKNOWN)]
    assert health.source_error is not None
    document = health.to_json()
    assert document["prometheus"]["ok"] is False and document["models"][0]["status"] == "unknown"
    assert world.gauge("opsctl_health_status", model="fraud", model_version="v1", status="unknown") == 1.0
    assert world.gauge("opsctl_health_status", model="fraud", model_version="v1", status="healthy") == 0.0
    assert [data["status"] for kind, data in world.events if kind == "health"] == ["unknown"]
    summary = world.health.summary().to_json()
    assert summary["models"] == [{"model": "fraud", "status": "unknown", "versions": [
        {"version": "v1", "role": "production", "status": "unknown", "reason": health.versions[0].result.reason}]}]


def test_alerts_wait_for_the_first_health_cycle(world: World) -> None:
    report = world.health.run_alerts()
    assert report.ok and report.summary == "waiting for the first health cycle"
    assert world.health.alerts(include_resolved=True).alerts == ()


def test_unknown_fires_after_its_cycles_and_ack_and_silence_are_audited(world: World) -> None:
    world.health.run_health()
    world.health.run_alerts()
    (pending,) = world.health.alerts(include_resolved=False).alerts
    assert pending.phase is AlertPhase.PENDING and pending.rule == "ModelHealthUnknown"
    world.clock.advance(UNKNOWN_FOR_CYCLES * world.settings.jobs.health_seconds + 1)
    world.health.run_health()
    world.health.run_alerts()
    (firing,) = world.health.alerts(include_resolved=False).alerts
    assert firing.phase is AlertPhase.FIRING

    acked = world.health.ack(firing.id[:8], actor=ALICE, for_seconds=None, comment="looking", reason="incident 7")
    assert acked.ack is not None and acked.ack.by == "alice"
    silence = world.health.silence(["model=fraud"], actor=ALICE, for_seconds=600, comment="maintenance", reason="")
    assert [s.id for s in world.health.silences(include_expired=False)] == [silence.id]
    world.clock.advance(1)
    world.health.expire(silence.id, actor=ALICE, reason="done")
    world.clock.advance(1)
    assert world.health.silences(include_expired=False) == []

    audit = sorted((e.id, e.action, e.actor, e.via, e.reason) for e in world.registry.audit("fraud")
                   if e.action.startswith("alert."))
    assert [row[1:] for row in audit] == [("alert.ack", "alice", "test", "incident 7"),
                                          ("alert.silence", "alice", "test", "maintenance"),
                                          ("alert.unsilence", "alice", "test", "done")]
