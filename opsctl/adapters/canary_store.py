"""Canary persistence: the ``canaries`` and ``canary_evaluations`` tables and the deployment weight.

Every write is one ``BEGIN IMMEDIATE`` transaction (:meth:`Registry.write`) with its audit event,
so a transition and its record land together or not at all. A canary row is saved with a
compare-and-swap on :attr:`CanaryState.revision`: two writers (the daemon's job and an operator's
command) can never both apply a transition computed from the same state; the loser gets a
:class:`~opsctl.errors.ConflictError` and nothing changes.

Two weights exist on purpose:

* the canary row's ``state.weight`` is the **desired** weight (what the state machine decided);
* ``deployments.canary_weight`` is the weight **traffic has**: it is written only after the
  actuator confirmed it (:meth:`CanaryStore.commit_weight`, :meth:`CanaryStore.commit_finish`).

A row stays ``active`` while its canary is live *or* while a terminal canary's traffic has not
converged yet (e.g. a rollback whose actuator keeps failing), so the job keeps retrying it.

Actions other than the weight (hooks, alerts) wait in an outbox (``kv`` key
``canary_outbox:<id>``) written in the transition's transaction; they are carried out at least
once and removed one by one.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from opsctl.adapters.registry import Registry, RegistryTx
from opsctl.clock import parse_utc, utc_iso
from opsctl.core.canary import (
    Action,
    CanaryPolicy,
    CanaryState,
    Command,
    CommandKind,
    Phase,
    PromoteVersion,
    SetWeight,
    Transition,
    action_from_json,
    step,
)
from opsctl.core.gates import Evaluation
from opsctl.domain import Actor, Deployment, Outcome, VersionStatus
from opsctl.errors import ConflictError, NotFoundError

OUTBOX_PREFIX = "canary_outbox:"


@dataclass(frozen=True)
class CanaryRecord:
    """One persisted canary: its id, state, policy, outbox and whether the job still owns it."""

    id: int
    state: CanaryState
    policy: CanaryPolicy
    active: bool
    outbox: tuple[Action, ...]
    updated_at: datetime

    @property
    def model(self) -> str:
        return self.state.model

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.to_json(),
            "policy": self.policy.to_json(),
            "active": self.active,
            "outbox": [a.to_json() for a in self.outbox],
            "updated_at": utc_iso(self.updated_at),
        }


@dataclass(frozen=True)
class EvaluationRow:
    id: int
    canary_id: int
    at: datetime
    verdict: str
    evaluation: Evaluation

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "canary_id": self.canary_id, "at": utc_iso(self.at), "verdict": self.verdict,
                "evaluation": self.evaluation.to_json()}


def is_weight_action(action: Action) -> bool:
    """Weight and promotion follow from the persisted state (level-triggered), not from the outbox."""
    return isinstance(action, SetWeight | PromoteVersion)


class CanaryStore:
    """SQL over the canary tables; every method is one transaction."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- reads ---------------------------------------------------------------------------------

    def get(self, canary_id: int) -> CanaryRecord:
        with self.registry.read() as tx:
            record = _get(tx, canary_id)
        if record is None:
            raise NotFoundError("canary", str(canary_id))
        return record

    def active(self, model: str | None = None) -> list[CanaryRecord]:
        """Canaries the job still owns (live, or terminal with traffic not yet converged)."""
        with self.registry.read() as tx:
            return _select(tx, "active = 1" + (" AND model = ?" if model else ""), (model,) if model else ())

    def latest(self, model: str) -> CanaryRecord | None:
        """The model's active canary, else its most recent one."""
        with self.registry.read() as tx:
            return _latest(tx, model)

    def list_latest(self, model: str | None = None) -> list[CanaryRecord]:
        """Per model, the active canary or else the most recent one."""
        with self.registry.read() as tx:
            rows = tx.conn.execute(
                "SELECT DISTINCT model FROM canaries" + (" WHERE model = ?" if model else "") + " ORDER BY model",
                (model,) if model else (),
            ).fetchall()
            found = [_latest(tx, row["model"]) for row in rows]
        return [r for r in found if r is not None]

    def history(self, model: str) -> list[CanaryRecord]:
        with self.registry.read() as tx:
            return _select(tx, "model = ?", (model,))

    def evaluations(self, canary_id: int, limit: int = 50) -> list[EvaluationRow]:
        with self.registry.read() as tx:
            rows = tx.conn.execute(
                "SELECT * FROM canary_evaluations WHERE canary_id = ? ORDER BY id DESC LIMIT ?", (canary_id, limit)
            ).fetchall()
        return [EvaluationRow(r["id"], r["canary_id"], parse_utc(r["at"]), r["verdict"],
                              Evaluation.from_json(json.loads(r["evaluation"]))) for r in reversed(rows)]

    def deployment(self, model: str) -> Deployment:
        found = self.registry.get_deployment(model)
        if found is None:
            raise NotFoundError("model", model, "see `opsctl models`")
        return found

    # -- writes --------------------------------------------------------------------------------

    def create(self, state: CanaryState, policy: CanaryPolicy, *, actor: Actor, reason: str, now: datetime,
               transition: Transition | None = None, done: tuple[Action, ...] = ()) -> CanaryRecord:
        """Insert a new active canary (``transition`` = its start) with its audit event.

        ``done`` are actions of the start transition already carried out (the pre-rollout hook).
        Raises ConflictError when the model already has an active canary or its deployment changed.
        """
        final = transition.state if transition is not None else state
        with self.registry.write() as tx:
            deployment = tx.get_deployment(state.model)
            if deployment is None:
                raise NotFoundError("model", state.model, "see `opsctl models`")
            if deployment.production_version != state.production_version:
                raise ConflictError(
                    f"{state.model} production changed to {deployment.production_version} while the canary was "
                    "prepared; nothing was started, try again"
                )
            if deployment.canary_version is not None:
                raise ConflictError(
                    f"{state.model} already routes {deployment.canary_weight:g}% to canary "
                    f"{deployment.canary_version}; abort it first (`opsctl canary abort {state.model}`)"
                )
            try:
                canary_id = tx.insert_id(
                    """INSERT INTO canaries(model, canary_version, production_version, phase, revision, active,
                           state, policy, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)""",
                    (final.model, final.canary_version, final.production_version, final.phase.value,
                     final.revision, _dump(final.to_json()), _dump(policy.to_json()), utc_iso(now), utc_iso(now)),
                )
            except tx.dialect.integrity_errors as error:
                raise ConflictError(
                    f"{state.model} already has an active canary; see `opsctl canary status {state.model}`"
                ) from error
            actions = () if transition is None else tuple(
                a for a in transition.actions if not is_weight_action(a) and a not in done)
            _put_outbox(tx, canary_id, actions)
            tx.append_audit(actor=actor, action="canary_start", model=final.model,
                            from_version=final.production_version, to_version=final.canary_version, reason=reason,
                            outcome=Outcome.OK, detail=transition.reason if transition else final.reason, now=now)
            record = _get(tx, canary_id)
        assert record is not None
        return record

    def save(self, record: CanaryRecord, transition: Transition, *, actor: Actor, action: str, reason: str,
             now: datetime, evaluation: Evaluation | None = None, audit: bool = True) -> CanaryRecord:
        """Persist ``transition`` (computed from ``record``) if nobody changed the canary since.

        One transaction: the state (compare-and-swap on revision), the evaluation row, the
        outbox additions and, when ``audit``, the audit event.
        """
        new = transition.state
        with self.registry.write() as tx:
            if evaluation is not None:
                _insert_evaluation(tx, record.id, evaluation, now)
            if new.revision != record.state.revision:
                cursor = tx.conn.execute(
                    "UPDATE canaries SET state = ?, phase = ?, revision = ?, updated_at = ? "
                    "WHERE id = ? AND revision = ? AND active = 1",
                    (_dump(new.to_json()), new.phase.value, new.revision, utc_iso(now), record.id,
                     record.state.revision),
                )
                if cursor.rowcount != 1:
                    raise ConflictError(
                        f"canary {record.model} {record.state.canary_version} changed while this change was "
                        "prepared; nothing was changed, check `opsctl canary status` and try again"
                    )
                additions = tuple(a for a in transition.actions if not is_weight_action(a))
                if additions:
                    _put_outbox(tx, record.id, _get_outbox(tx, record.id) + additions)
            if audit:
                tx.append_audit(actor=actor, action=action, model=new.model, from_version=new.production_version,
                                to_version=new.canary_version, reason=reason, outcome=Outcome.OK,
                                detail=transition.reason, now=now)
            saved = _get(tx, record.id)
        assert saved is not None
        return saved

    def record_evaluation(self, record: CanaryRecord, evaluation: Evaluation, now: datetime) -> None:
        with self.registry.write() as tx:
            _insert_evaluation(tx, record.id, evaluation, now)

    def commit_weight(self, record: CanaryRecord, weight: float, *, actor: Actor, now: datetime,
                      expected_generation: int, restart_stage: bool = False) -> CanaryRecord:
        """Traffic now has ``weight``: write it to the deployment (after the actuator confirmed it).

        ``restart_stage`` moves the stage timers to ``now`` when the weight reached traffic late
        (an actuator that failed, a daemon killed in between): a stage is judged for its whole
        minimum duration at the weight it is named for.
        """
        with self.registry.write() as tx:
            deployment = tx.get_deployment(record.model)
            assert deployment is not None
            before = deployment.canary_weight if deployment.canary_version == record.state.canary_version else 0.0
            tx.update_deployment(replace(deployment, canary_version=record.state.canary_version,
                                         canary_weight=weight),
                                 expected_generation=expected_generation, now=now)
            current = _get(tx, record.id)
            assert current is not None
            if restart_stage and current.state.phase is Phase.PROGRESSING and current.state.weight == weight:
                moved = replace(current.state, stage_started_at=now, progress_since=now,
                                revision=current.state.revision + 1)
                tx.conn.execute("UPDATE canaries SET state = ?, revision = ?, updated_at = ? WHERE id = ?",
                                (_dump(moved.to_json()), moved.revision, utc_iso(now), record.id))
            tx.append_audit(actor=actor, action="canary_weight", model=record.model,
                            from_version=record.state.production_version, to_version=record.state.canary_version,
                            reason="", outcome=Outcome.OK,
                            detail=f"traffic to {record.state.canary_version}: {before:g}% -> {weight:g}%"
                                   + ("; stage timer restarted (weight applied late)" if restart_stage else ""),
                            now=now)
            saved = _get(tx, record.id)
        assert saved is not None
        return saved

    def commit_finish(self, record: CanaryRecord, *, actor: Actor, now: datetime,
                      expected_generation: int) -> CanaryRecord:
        """A terminal canary's traffic converged: promote (succeeded) or clear the canary; deactivate."""
        state = record.state
        if not state.terminal:
            raise ValueError(f"canary {state.model} is {state.phase.value}, not terminal")
        with self.registry.write() as tx:
            deployment = tx.get_deployment(state.model)
            assert deployment is not None
            if state.phase is Phase.SUCCEEDED:
                previous = list(deployment.previous_versions)
                if deployment.production_version is not None and deployment.production_version != state.canary_version:
                    previous.append(deployment.production_version)
                previous = [v for v in previous if v != state.canary_version]
                after = replace(deployment, production_version=state.canary_version, previous_versions=tuple(previous),
                                canary_version=None, canary_weight=0.0)
                action, detail = "canary_promote", (f"promoted {state.canary_version} to production "
                                                    f"(was {deployment.production_version or '(none)'})")
            else:
                after = replace(deployment, canary_version=None, canary_weight=0.0)
                action, detail = "canary_weight", (f"traffic to {state.canary_version}: "
                                                   f"{deployment.canary_weight:g}% -> 0% ({state.phase.value})")
            changed = after != deployment
            if changed:
                tx.update_deployment(after, expected_generation=expected_generation, now=now)
                for version in {deployment.production_version, deployment.canary_version} - {None}:
                    if version not in (after.production_version, after.canary_version):
                        assert version is not None
                        tx.set_stage(state.model, version, VersionStatus.ARCHIVED)
                tx.append_audit(actor=actor, action=action, model=state.model,
                                from_version=deployment.production_version, to_version=state.canary_version,
                                reason="", outcome=Outcome.OK, detail=detail, now=now)
            tx.conn.execute("UPDATE canaries SET active = 0, updated_at = ? WHERE id = ?", (utc_iso(now), record.id))
            saved = _get(tx, record.id)
        assert saved is not None
        return saved

    def record_failure(self, record: CanaryRecord, *, action: str, detail: str, actor: Actor, now: datetime) -> None:
        """An actuator or hook failed: audited with outcome ``failed`` (nothing else changes)."""
        with self.registry.write() as tx:
            tx.append_audit(actor=actor, action=action, model=record.model,
                            from_version=record.state.production_version, to_version=record.state.canary_version,
                            reason="", outcome=Outcome.FAILED, detail=detail, now=now)

    def pop_outbox(self, canary_id: int, action: Action) -> None:
        """Remove the first outbox entry equal to ``action`` (it was carried out or given up)."""
        with self.registry.write() as tx:
            outbox = list(_get_outbox(tx, canary_id))
            if action in outbox:
                outbox.remove(action)
            _put_outbox(tx, canary_id, tuple(outbox))

    def outboxes(self) -> dict[int, tuple[Action, ...]]:
        """Every canary with actions still to carry out (also inactive ones, e.g. after a rollback)."""
        with self.registry.read() as tx:
            rows = tx.conn.execute("SELECT key, value FROM kv WHERE key LIKE ?", (OUTBOX_PREFIX + "%",)).fetchall()
        found = {int(r["key"][len(OUTBOX_PREFIX):]): tuple(action_from_json(a) for a in json.loads(r["value"]))
                 for r in rows}
        return {k: v for k, v in found.items() if v}


def abort_active_in_tx(tx: RegistryTx, model: str, *, actor: Actor, reason: str, now: datetime) -> bool:
    """Inside another change's transaction (``opsctl rollback``): mark the model's live canary aborted.

    The caller has already sent all traffic back to production in the same transaction, so the
    row is deactivated at once; its rollback hook and alert resolutions go to the outbox.
    Returns whether a canary was aborted.
    """
    record = _latest(tx, model)
    if record is None or not record.active:
        return False
    if record.state.terminal:
        tx.conn.execute("UPDATE canaries SET active = 0, updated_at = ? WHERE id = ?", (utc_iso(now), record.id))
        return False
    transition = step(record.state, record.policy, now,
                      command=Command(CommandKind.ABORT, reason=reason or "opsctl rollback", actor=actor.user))
    new = transition.state
    tx.conn.execute(
        "UPDATE canaries SET state = ?, phase = ?, revision = ?, active = 0, updated_at = ? WHERE id = ?",
        (_dump(new.to_json()), new.phase.value, new.revision, utc_iso(now), record.id),
    )
    _put_outbox(tx, record.id, _get_outbox(tx, record.id)
                + tuple(a for a in transition.actions if not is_weight_action(a)))
    tx.append_audit(actor=actor, action="canary_abort", model=model, from_version=new.production_version,
                    to_version=new.canary_version, reason=reason, outcome=Outcome.OK,
                    detail=f"{transition.reason} (by rollback)", now=now)
    return True


# -- helpers -------------------------------------------------------------------------------------


def _dump(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _record(tx: RegistryTx, row: sqlite3.Row) -> CanaryRecord:
    return CanaryRecord(
        id=row["id"],
        state=CanaryState.from_json(json.loads(row["state"])),
        policy=CanaryPolicy.from_json(json.loads(row["policy"])),
        active=bool(row["active"]),
        outbox=_get_outbox(tx, row["id"]),
        updated_at=parse_utc(row["updated_at"]),
    )


def _get(tx: RegistryTx, canary_id: int) -> CanaryRecord | None:
    row = tx.conn.execute("SELECT * FROM canaries WHERE id = ?", (canary_id,)).fetchone()
    return _record(tx, row) if row else None


def _select(tx: RegistryTx, where: str, params: tuple[Any, ...]) -> list[CanaryRecord]:
    rows = tx.conn.execute(f"SELECT * FROM canaries WHERE {where} ORDER BY id", params).fetchall()
    return [_record(tx, row) for row in rows]


def _latest(tx: RegistryTx, model: str) -> CanaryRecord | None:
    row = tx.conn.execute("SELECT * FROM canaries WHERE model = ? ORDER BY active DESC, id DESC LIMIT 1",
                          (model,)).fetchone()
    return _record(tx, row) if row else None


def _insert_evaluation(tx: RegistryTx, canary_id: int, evaluation: Evaluation, now: datetime) -> None:
    tx.conn.execute("INSERT INTO canary_evaluations(canary_id, at, verdict, evaluation) VALUES (?, ?, ?, ?)",
                    (canary_id, utc_iso(now), evaluation.verdict.value, _dump(evaluation.to_json())))


def _get_outbox(tx: RegistryTx, canary_id: int) -> tuple[Action, ...]:
    raw = tx.get_kv(f"{OUTBOX_PREFIX}{canary_id}")
    return tuple(action_from_json(a) for a in json.loads(raw)) if raw else ()


def _put_outbox(tx: RegistryTx, canary_id: int, actions: tuple[Action, ...]) -> None:
    key = f"{OUTBOX_PREFIX}{canary_id}"
    if actions:
        tx.put_kv(key, _dump([a.to_json() for a in actions]))
    else:
        tx.conn.execute("DELETE FROM kv WHERE key = ?", (key,))
