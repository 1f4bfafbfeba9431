"""CanaryStore on a real registry, SQLite and PostgreSQL: CAS on revision, one active canary per model, the two
weights, the outbox."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.canary_store import CanaryStore, abort_active_in_tx
from opsctl.clock import ManualClock
from opsctl.core.canary import CanaryPolicy, Command, CommandKind, Phase, RunHook, new_canary, step
from opsctl.core.gates import Evaluation, GateResult, Verdict
from opsctl.domain import Actor, Outcome
from opsctl.errors import ConflictError
from opsctl.services.registry import RegisterRequest, RegistryService
from tests.fixtures.postgres import RawSql

BOB = Actor("bob", 1001, "test")
POLICY = CanaryPolicy(stages=[10.0, 100.0], min_stage_seconds=0, analysis_interval_seconds=1,
                      progress_deadline_seconds=60)


@pytest.fixture
def setup(tmp_path: Path, make_registry):  # type: ignore[no-untyped-def]
    registry = make_registry()
    clock = ManualClock()
    service = RegistryService(registry, ArtifactStore(tmp_path / "artifacts"), clock=clock)
    for version in ("v1", "v2", "v3"):
        artifact = tmp_path / version
        artifact.write_text(version)
        service.register(RegisterRequest("churn", version, artifact), actor=BOB)
    service.promote("churn", "v1", actor=BOB)
    return registry, clock, service, CanaryStore(registry)


def started(store: CanaryStore, clock: ManualClock, version: str = "v2"):  # type: ignore[no-untyped-def]
    now = clock.now()
    state = new_canary("churn", version, "v1", now)
    transition = step(state, POLICY, now, command=Command(CommandKind.START, actor="bob"))
    return store.create(state, POLICY, actor=BOB, reason="try", now=now, transition=transition), transition


def test_create_persists_state_policy_outbox_and_audit(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    record, transition = started(store, clock)
    again = store.get(record.id)
    assert again.state == transition.state and again.policy == POLICY and again.active
    assert [type(a) for a in again.outbox] == [RunHook]  # the pre-rollout hook; weights are not outboxed
    event = registry.audit("churn", limit=1)[0]
    assert (event.action, event.actor, event.reason, event.to_version) == ("canary_start", "bob", "try", "v2")
    # The deployment (the weight traffic has) is untouched until the actuator confirms a weight.
    assert registry.get_deployment("churn").canary_version is None


def test_one_active_canary_per_model(setup) -> None:  # type: ignore[no-untyped-def]
    _, clock, _, store = setup
    started(store, clock)
    with pytest.raises(ConflictError, match="active canary"):
        started(store, clock, "v3")


def test_save_is_compare_and_swap_on_revision(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    record, _ = started(store, clock)
    clock.advance(1)
    pause = step(record.state, POLICY, clock.now(), command=Command(CommandKind.PAUSE))
    abort = step(record.state, POLICY, clock.now(), command=Command(CommandKind.ABORT))
    saved = store.save(record, pause, actor=BOB, action="canary_pause", reason="look", now=clock.now())
    assert saved.state.phase is Phase.PAUSED
    with pytest.raises(ConflictError, match="changed while"):
        store.save(record, abort, actor=BOB, action="canary_abort", reason="", now=clock.now())
    assert store.get(record.id).state.phase is Phase.PAUSED
    assert [e.action for e in registry.audit("churn", limit=2)] == ["canary_start", "canary_pause"]


def test_evaluations_are_recorded_with_their_verdicts(setup) -> None:  # type: ignore[no-untyped-def]
    _, clock, _, store = setup
    record, _ = started(store, clock)
    evaluation = Evaluation.of([GateResult("error_rate", Verdict.PASS, value=0.01, threshold=0.01, p_value=0.4)])
    clock.advance(1)
    transition = step(record.state, POLICY, clock.now(), evaluation=evaluation)
    store.save(record, transition, actor=BOB, action="canary_stage", reason="", now=clock.now(),
               evaluation=evaluation)
    rows = store.evaluations(record.id)
    assert [(r.verdict, r.evaluation) for r in rows] == [("pass", evaluation)]


def test_commit_weight_and_finish_move_the_deployment(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    record, _ = started(store, clock)
    generation = registry.get_deployment("churn").generation
    record = store.commit_weight(record, 10.0, actor=BOB, now=clock.now(), expected_generation=generation)
    deployment = registry.get_deployment("churn")
    assert (deployment.canary_version, deployment.canary_weight) == ("v2", 10.0)
    # A stale generation (someone changed the deployment meanwhile) changes nothing.
    with pytest.raises(ConflictError):
        store.commit_weight(record, 100.0, actor=BOB, now=clock.now(), expected_generation=generation)
    promoted = replace(record, state=replace(record.state, phase=Phase.SUCCEEDED, weight=100.0))
    finished = store.commit_finish(promoted, actor=BOB, now=clock.now(),
                                   expected_generation=registry.get_deployment("churn").generation)
    deployment = registry.get_deployment("churn")
    assert deployment.production_version == "v2" and deployment.previous_versions == ("v1",)
    assert deployment.canary_version is None and not finished.active
    assert registry.get_version("churn", "v1").status.value == "archived"


def test_restart_stage_moves_the_timers_when_the_weight_arrives_late(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    record, _ = started(store, clock)
    clock.advance(30)
    record = store.commit_weight(record, 10.0, actor=BOB, now=clock.now(), restart_stage=True,
                                 expected_generation=registry.get_deployment("churn").generation)
    assert record.state.stage_started_at == clock.now() and record.state.progress_since == clock.now()
    assert "restarted" in registry.audit("churn", limit=1)[0].detail


def test_outbox_pops_in_order_and_survives_deactivation(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    record, _ = started(store, clock)
    with registry.write() as tx:
        assert abort_active_in_tx(tx, "churn", actor=BOB, reason="pager", now=clock.now())
    aborted = store.get(record.id)
    assert aborted.state.phase is Phase.ABORTED and not aborted.active
    pending = store.outboxes()[record.id]
    assert [a.kind.value for a in pending if isinstance(a, RunHook)] == ["pre_rollout", "rollback"]
    for action in pending:
        store.pop_outbox(record.id, action)
    assert store.outboxes() == {}
    event = registry.audit("churn", limit=1)[0]
    assert (event.action, event.reason, event.outcome) == ("canary_abort", "pager", Outcome.OK)


def test_abort_in_tx_rolls_back_with_the_outer_transaction(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    record, _ = started(store, clock)
    with pytest.raises(RuntimeError), registry.write() as tx:
        abort_active_in_tx(tx, "churn", actor=BOB, reason="x", now=clock.now())
        raise RuntimeError("the rollback failed later in its transaction")
    assert store.get(record.id).state.phase is Phase.PROGRESSING and store.get(record.id).active


def test_schema_still_enforces_one_active_row(setup) -> None:  # type: ignore[no-untyped-def]
    registry, clock, _, store = setup
    started(store, clock)
    conn = RawSql(registry)
    with pytest.raises(conn.integrity_error):
        conn.execute("UPDATE canaries SET active = 1")
        conn.execute("INSERT INTO canaries(model, canary_version, phase, state, policy, created_at, updated_at) "
                     "VALUES ('churn', 'v3', 'pending', '{}', '{}', 'x', 'x')")
    conn.close()
