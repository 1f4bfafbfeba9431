"""The service layer: every production change audited, one winner under concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.domain import Actor, Outcome, VersionStatus
from opsctl.errors import ConflictError, NotFoundError, UsageError
from opsctl.services.registry import RegisterRequest, RegistryService

ALICE = Actor("alice", 1000, "cli")


def make_service(root: Path) -> RegistryService:
    return RegistryService(Registry(root / "registry.db"), ArtifactStore(root / "artifacts"), clock=ManualClock())


def seed(root: Path, versions: tuple[str, ...] = ("1.0.0", "1.1.0", "1.2.0")) -> RegistryService:
    service = make_service(root)
    for version in versions:
        artifact = root / f"model-{version}.bin"
        artifact.write_bytes(f"weights {version}".encode())
        service.register(RegisterRequest("fraud", version, artifact, metrics={"accuracy": 0.9}), actor=ALICE)
    return service


def test_register_promote_rollback_round_trip(tmp_path: Path) -> None:
    service = seed(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE, reason="initial")
    service.promote("fraud", "1.1.0", actor=ALICE, reason="better auc")
    result = service.rollback("fraud", actor=ALICE, reason="p99 regression")
    assert (result.from_version, result.to_version, result.outcome) == ("1.1.0", "1.0.0", Outcome.OK)
    statuses = {v.version: v.status for v in service.registry.list_versions("fraud")}
    assert statuses == {"1.0.0": VersionStatus.PRODUCTION, "1.1.0": VersionStatus.ARCHIVED,
                        "1.2.0": VersionStatus.REGISTERED}
    actions = [(e.action, e.to_version, e.reason) for e in service.registry.audit("fraud")]
    assert actions[-3:] == [("promote", "1.0.0", "initial"), ("promote", "1.1.0", "better auc"),
                            ("rollback", "1.0.0", "p99 regression")]


def test_promoting_the_production_version_is_a_noop_that_says_so(tmp_path: Path) -> None:
    service = seed(tmp_path)
    first = service.promote("fraud", "1.0.0", actor=ALICE)
    again = service.promote("fraud", "1.0.0", actor=ALICE)
    assert again.outcome is Outcome.NOOP and "already in production" in again.message
    assert again.generation == first.generation


def test_rollback_without_a_previous_version_changes_nothing(tmp_path: Path) -> None:
    service = seed(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE)
    before = service.registry.get_deployment("fraud")
    with pytest.raises(ConflictError, match="no previous production version"):
        service.rollback("fraud", actor=ALICE)
    assert service.registry.get_deployment("fraud") == before


def test_rollback_to_a_named_version(tmp_path: Path) -> None:
    service = seed(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE)
    service.promote("fraud", "1.1.0", actor=ALICE)
    service.promote("fraud", "1.2.0", actor=ALICE)
    result = service.rollback("fraud", to="1.0.0", actor=ALICE)
    deployment = service.registry.get_deployment("fraud")
    assert deployment is not None
    assert result.to_version == "1.0.0" and deployment.production_version == "1.0.0"
    assert deployment.previous_versions == ("1.1.0",)


def test_unknown_model_and_version_are_not_found(tmp_path: Path) -> None:
    service = seed(tmp_path)
    with pytest.raises(NotFoundError, match="model 'nope'"):
        service.promote("nope", "1.0.0", actor=ALICE)
    with pytest.raises(NotFoundError, match="version"):
        service.promote("fraud", "9.9.9", actor=ALICE)


def test_registering_the_same_version_again_answers_it_and_other_bytes_conflict(tmp_path: Path) -> None:
    service = seed(tmp_path, ("1.0.0",))
    first = service.registry.get_version("fraud", "1.0.0")
    again, created = service.register_version(RegisterRequest("fraud", "1.0.0", tmp_path / "model-1.0.0.bin"),
                                              actor=ALICE)
    assert again == first and created is False
    assert [e.action for e in service.registry.audit()].count("register") == 1
    other = tmp_path / "other.bin"
    other.write_bytes(b"different weights")
    with pytest.raises(ConflictError, match="already registered"):
        service.register(RegisterRequest("fraud", "1.0.0", other), actor=ALICE)


@pytest.mark.parametrize("model,version", [("../etc", "1"), ("fraud", "1/2"), ("", "1"), ("fraud", "")])
def test_names_that_could_escape_are_rejected(tmp_path: Path, model: str, version: str) -> None:
    service = make_service(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"x")
    with pytest.raises(UsageError):
        service.register(RegisterRequest(model, version, tmp_path / "a.bin"), actor=ALICE)


def test_stale_plan_is_refused_and_audited(tmp_path: Path) -> None:
    service = seed(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE)
    plan = service.plan_promote("fraud", "1.1.0")
    service.promote("fraud", "1.2.0", actor=Actor("bob", 1001), reason="bob was faster")
    with pytest.raises(ConflictError, match="changed since you looked"):
        service.promote("fraud", "1.1.0", actor=ALICE, reason="mine", expected_generation=plan.generation)
    last = service.registry.audit("fraud")[-1]
    assert (last.actor, last.outcome, last.reason) == ("alice", Outcome.CONFLICT, "mine")
    deployment = service.registry.get_deployment("fraud")
    assert deployment is not None and deployment.production_version == "1.2.0"


# -- two real processes at the same moment ----------------------------------------------------


def _contender(root: str, user: str, action: str, version: str, barrier: object, results: object) -> None:
    service = make_service(Path(root))
    actor = Actor(user, None, "cli")
    plan = service.plan_promote("fraud", version) if action == "promote" else service.plan_rollback("fraud", None)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        if action == "promote":
            service.promote("fraud", version, actor=actor, expected_generation=plan.generation)
        else:
            service.rollback("fraud", actor=actor, expected_generation=plan.generation)
        results.put((user, "won"))  # type: ignore[attr-defined]
    except ConflictError:
        results.put((user, "conflict"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("second", [("promote", "1.2.0"), ("rollback", "")])
def test_two_processes_acting_at_once_exactly_one_wins(tmp_path: Path, second: tuple[str, str]) -> None:
    service = seed(tmp_path)
    service.promote("fraud", "1.0.0", actor=ALICE)
    service.promote("fraud", "1.1.0", actor=ALICE)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_contender, args=(str(tmp_path), "alice", "promote", "1.2.0", barrier, results)),
        ctx.Process(target=_contender, args=(str(tmp_path), "bob", second[0], second[1], barrier, results)),
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    outcomes = dict(results.get(timeout=5) for _ in procs)
    assert sorted(outcomes.values()) == ["conflict", "won"]
    winner = next(user for user, outcome in outcomes.items() if outcome == "won")
    loser = next(user for user, outcome in outcomes.items() if outcome == "conflict")
    registry = Registry(tmp_path / "registry.db")
    audit = registry.audit("fraud")[-2:]
    assert {(e.actor, e.outcome) for e in audit} == {(winner, Outcome.OK), (loser, Outcome.CONFLICT)}
    deployment = registry.get_deployment("fraud")
    assert deployment is not None
    expected = "1.2.0" if (winner == "alice" or second[0] == "promote") else "1.0.0"
    assert deployment.production_version == expected
    # No half-written state: statuses agree with the deployment row.
    statuses = {v.version: v.status for v in registry.list_versions("fraud")}
    assert [v for v, s in statuses.items() if s is VersionStatus.PRODUCTION] == [expected]
