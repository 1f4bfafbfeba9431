"""`opsctl rollback MODEL` returns to the version production had before, whichever path promoted.

Real SQLite registry, real CanaryService (routing-table actuator, scripted gate inputs, ManualClock).
The three promote paths: a direct `promote`, `canary promote` (the command), and the retrain
handover (a canary started by the retrain service's actor that passes every stage on its own).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.adapters.actuators import ActuatorSettings, Hooks, Retrying, RoutingTableActuator
from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.core.canary import CanaryPolicy, CommandKind
from opsctl.core.gates import GateInputs, SlaInput, VersionWindow
from opsctl.domain import Actor, Outcome
from opsctl.services.canary import CanaryService
from opsctl.services.registry import RegisterRequest, RegistryService

ALICE = Actor("alice", 1000, "test")
RETRAIN = Actor("opsctld", None, "retrain")
POLICY = CanaryPolicy(stages=[10.0, 50.0], min_stage_seconds=60, analysis_interval_seconds=10,
                      failure_threshold=2, inconclusive_limit=3, metrics_error_limit=2, accuracy_gate=False,
                      progress_deadline_seconds=600)
HEALTHY = GateInputs(VersionWindow(requests=20000, errors=200, p95_seconds=0.1, p99_seconds=0.2, slow=100),
                     VersionWindow(requests=80000, errors=800, p95_seconds=0.1, p99_seconds=0.2, slow=400),
                     latency_bound_seconds=0.5,
                     sla=SlaInput("healthy"))


class Healthy:
    def inputs(self, record: object, now: object) -> GateInputs:
        return HEALTHY


def world(root: Path) -> tuple[RegistryService, CanaryService, ManualClock]:
    registry = Registry(root / "registry.db")
    clock = ManualClock()
    service = RegistryService(registry, ArtifactStore(root / "artifacts"), clock=clock)
    for version in ("1.0.0", "1.1.0"):
        artifact = root / f"{version}.bin"
        artifact.write_bytes(version.encode())
        service.register(RegisterRequest("fraud", version, artifact), actor=ALICE)
    service.promote("fraud", "1.0.0", actor=ALICE, reason="initial")
    canary = CanaryService(registry, policy=POLICY, actuator=Retrying(RoutingTableActuator()),
                           hooks=Hooks(ActuatorSettings()), gate_source=Healthy(), clock=clock)
    return service, canary, clock


def promote_directly(service: RegistryService, canary: CanaryService, clock: ManualClock) -> None:
    service.promote("fraud", "1.1.0", actor=ALICE)


def promote_canary_command(service: RegistryService, canary: CanaryService, clock: ManualClock) -> None:
    canary.start("fraud", "1.1.0", actor=ALICE)
    canary.command("fraud", CommandKind.PROMOTE, actor=ALICE, reason="looks good")
    canary.tick()


def promote_by_retrain_handover(service: RegistryService, canary: CanaryService, clock: ManualClock) -> None:
    canary.start("fraud", "1.1.0", actor=RETRAIN, reason="retrain run r-1: roc_auc better by 0.03")
    for _ in range(40):
        clock.advance(10)
        canary.tick()
        if canary.status("fraud")[0]["state"] == "succeeded":
            break
    assert canary.status("fraud")[0]["state"] == "succeeded"


@pytest.mark.parametrize("promote", [promote_directly, promote_canary_command, promote_by_retrain_handover])
def test_rollback_after_any_promote_returns_to_the_previous_production_version(tmp_path: Path, promote) -> None:  # type: ignore[no-untyped-def]
    service, canary, clock = world(tmp_path)
    promote(service, canary, clock)
    deployment = service.registry.get_deployment("fraud")
    assert deployment.production_version == "1.1.0" and deployment.canary_version is None
    assert service.plan_rollback("fraud").to_version == "1.0.0"
    result = service.rollback("fraud", actor=ALICE, reason="bad")
    assert (result.from_version, result.to_version, result.outcome) == ("1.1.0", "1.0.0", Outcome.OK)
    assert service.registry.get_deployment("fraud").splits() == [("1.0.0", 100.0)]
