"""The daemon's one Services object: built once, in-process, on a real SQLite registry (no daemon process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.config import parse_settings
from opsctl.domain import Actor
from opsctl.services.registry import RegisterRequest
from opsctld.metrics import DaemonMetrics
from opsctld.wiring import build_services

ALICE = Actor("alice", 1000, "test")


def test_retrain_hands_its_candidate_to_the_canary_service_of_the_same_daemon(tmp_path: Path) -> None:
    settings = parse_settings(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    registry = Registry(settings.daemon.registry_path)
    events: list[tuple[str, dict[str, Any]]] = []
    services = build_services(lambda: settings, registry, ArtifactStore(settings.daemon.artifacts_dir),
                              clock=ManualClock(), events=lambda kind, data: events.append((kind, data)),
                              metrics=DaemonMetrics())
    # Registry changes made by retrain go through the same audited service as the API's.
    assert services.retrain.service is services.registry
    for version in ("v1", "v2"):
        artifact = tmp_path / f"{version}.bin"
        artifact.write_bytes(version.encode())
        services.registry.register(RegisterRequest("fraud", version, artifact), actor=ALICE)
    services.registry.promote("fraud", "v1", actor=ALICE)

    assert services.retrain.start_canary is not None
    document = services.retrain.start_canary("fraud", "v2", ALICE, "retrained candidate won")

    [status] = services.canary.status("fraud")
    assert (document["canary_version"], status["canary_version"], status["active"]) == ("v2", "v2", True)
    deployment = registry.get_deployment("fraud")
    assert deployment is not None and deployment.canary_version == "v2" and deployment.canary_weight > 0
    assert any(kind == "canary" and data["canary_version"] == "v2" for kind, data in events)
