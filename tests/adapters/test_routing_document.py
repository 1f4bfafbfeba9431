"""The routing document: rewritten after every committed deployment change, by whichever process.

Real SQLite registries, real processes for the concurrent writers; the SDK's reader is checked against
what the adapter writes (the two share only the file format).
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.adapters.routing_document import FILE_NAME, RoutingDocument
from opsctl.clock import ManualClock
from opsctl.domain import Actor
from opsctl.sdk.router import RoutingTableClient, read_routing_document
from opsctl.services.registry import RegisterRequest, RegistryService

ALICE = Actor("alice", 1000, "test")


def seeded(root: Path, models: tuple[str, ...] = ("fraud",)) -> RegistryService:
    service = RegistryService(Registry(root / "registry.db"), ArtifactStore(root / "artifacts"), clock=ManualClock())
    for model in models:
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            artifact = root / f"{model}-{version}.bin"
            artifact.write_bytes(f"{model} {version}".encode())
            service.register(RegisterRequest(model, version, artifact), actor=ALICE)
    return service


def test_every_promote_and_rollback_rewrites_the_document_and_says_which_generation(tmp_path: Path) -> None:
    service = seeded(tmp_path)
    path = tmp_path / FILE_NAME
    assert not path.exists()  # registering changes no deployment
    first = service.promote("fraud", "1.0.0", actor=ALICE)
    assert read_routing_document(path, "fraud").weights == (("1.0.0", 100.0),)
    assert first.extra["traffic"] == {"applied": True, "via": "routing_document", "routing_generation": 1,
                                      "detail": "routing document updated (generation 1)"}
    service.promote("fraud", "1.1.0", actor=ALICE)
    rolled = service.rollback("fraud", actor=ALICE)
    split = read_routing_document(path, "fraud")
    assert split.weights == (("1.0.0", 100.0),) and split.source == "document"
    assert split.generation == rolled.generation == service.registry.get_deployment("fraud").generation
    assert rolled.extra["traffic"]["routing_generation"] == 3
    document = json.loads(path.read_text())
    assert document["format"] == "opsctl-routing/1" and document["generation"] == 3
    assert not list(tmp_path.glob(".routing.json.*.tmp"))  # no temporary file left behind


def test_a_canary_weight_in_the_registry_is_in_the_document(tmp_path: Path) -> None:
    service = seeded(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE)
    with service.registry.write() as tx:  # what the canary store's commit_weight does
        deployment = tx.get_deployment("fraud")
        tx.update_deployment(replace(deployment, canary_version="1.1.0", canary_weight=20.0),
                             expected_generation=deployment.generation, now=ManualClock().now())
    assert tx.routing is not None and tx.routing.ok
    assert read_routing_document(tmp_path / FILE_NAME, "fraud").weights == (("1.0.0", 80.0), ("1.1.0", 20.0))


def _promote_many(root: str, model: str, rounds: int) -> None:
    service = RegistryService(Registry(Path(root) / "registry.db"), ArtifactStore(Path(root) / "artifacts"))
    for i in range(rounds):
        service.promote(model, ("1.1.0", "1.2.0")[i % 2], actor=ALICE)


def test_concurrent_writers_in_other_processes_leave_the_document_equal_to_the_registry(tmp_path: Path) -> None:
    service = seeded(tmp_path, ("fraud", "churn"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_promote_many, args=(str(tmp_path), model, 15)) for model in ("fraud", "churn")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    document = json.loads((tmp_path / FILE_NAME).read_text())
    for deployment in service.registry.list_deployments():
        entry = document["models"][deployment.model]
        assert entry["generation"] == deployment.generation
        assert [(s["version"], s["weight"]) for s in entry["splits"]] == deployment.splits()
    # At most one rewrite per change: a writer that finds another already published its commit skips.
    assert 2 <= document["generation"] <= 30


def test_a_failed_rewrite_is_reported_not_raised_and_the_next_one_catches_up(tmp_path: Path) -> None:
    service = seeded(tmp_path)
    blocker = tmp_path / FILE_NAME
    blocker.mkdir()  # a directory where the file should be: the rename fails
    result = service.promote("fraud", "1.0.0", actor=ALICE)
    assert result.extra["traffic"]["applied"] is False
    assert "NOT updated" in result.extra["traffic"]["detail"]
    assert service.registry.get_deployment("fraud").production_version == "1.0.0"  # the commit stands
    blocker.rmdir()
    publication = service.registry.publish_routing()  # what a starting daemon does
    assert publication is not None and publication.ok
    assert read_routing_document(blocker, "fraud").weights == (("1.0.0", 100.0),)


def test_the_sdk_client_follows_the_document_without_a_daemon(tmp_path: Path) -> None:
    service = seeded(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE)
    dead_socket = tmp_path / "nobody.sock"  # the daemon is gone
    with RoutingTableClient(socket_path=str(dead_socket), document_path=tmp_path / FILE_NAME, model="fraud",
                            ttl_seconds=0, timeout=0.2, registry=CollectorRegistry()) as client:
        assert client.split().weights == (("1.0.0", 100.0),) and client.split().source == "document"
        assert client.failures >= 1 and "daemon" in (client.last_error or "")
        service.promote("fraud", "1.1.0", actor=ALICE)
        service.rollback("fraud", actor=ALICE)
        service.promote("fraud", "1.2.0", actor=ALICE)
        assert client.router().route("user-1") == "1.2.0"


def test_the_document_reader_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps({"models": {}}))
    assert RoutingDocument(path).read() is None
    try:
        read_routing_document(path, "fraud")
    except ValueError as error:
        assert "not an opsctl-routing/1 document" in str(error)
    else:
        raise AssertionError("a foreign document must be refused")
