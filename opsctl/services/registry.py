"""The service layer: the only way production changes reach the registry.

Every change (register, promote, rollback, and later canary and retrain
commands) is one ``BEGIN IMMEDIATE`` transaction that writes its audit event.
Changes are planned first and applied against the generation the plan saw, so
two operators acting at once cannot both win: the second gets a
:class:`~opsctl.errors.ConflictError`, and its attempt is audited too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.adapters.artifact_storage import ArtifactStorage, StoredArtifact
from opsctl.adapters.artifacts import sha256_file
from opsctl.adapters.registry import Registry, RegistryTx
from opsctl.clock import Clock, SystemClock
from opsctl.domain import (
    Actor,
    ChangePlan,
    ChangeResult,
    Deployment,
    Lineage,
    ModelVersion,
    Outcome,
    VersionStatus,
)
from opsctl.errors import ActuatorError, ConflictError, NotFoundError, UsageError
from opsctl.traffic import TrafficChange, split_of, traffic_from_publication

if TYPE_CHECKING:
    from opsctl.adapters.actuators import Retrying

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)

EventSink = Callable[[str, dict[str, Any]], None]


def validate_model_name(name: str) -> str:
    # fullmatch: with match, '$' also matched before a trailing newline ("evil\n" split the tables).
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise UsageError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (max 63)")
    return name


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise UsageError(f"invalid version {version!r}: use letters, digits, '.', '_', '+' or '-' (max 63)")
    return version


def validate_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Metric names are printable text; values finite numbers (NaN and Infinity would poison every read)."""
    for key, value in metrics.items():
        if not isinstance(key, str) or not key or not key.isprintable():
            raise UsageError(f"metric name {key!r} must be non-empty printable text")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise UsageError(f"metric {key!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UsageError(f"metric {key!r} must be a finite number, got {value!r}")
    return {k: float(v) for k, v in metrics.items()}


@dataclass(frozen=True)
class RegisterRequest:
    model: str
    version: str
    # A client's file (direct mode), or bytes the daemon already received (an upload over the API).
    artifact: Path | StoredArtifact
    metrics: dict[str, float] = field(default_factory=dict)
    reference: Path | StoredArtifact | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)


class RegistryService:
    """Register, promote and roll back, each audited and safe under concurrency.

    Every promote or rollback also moves traffic, and its result says how (``extra["traffic"]``,
    a :class:`~opsctl.traffic.TrafficChange`): with the default ``routing_table`` actuator the
    registry adapter rewrites the routing document after the commit; with a ``command`` or
    ``webhook`` ``actuator`` the new split is applied *before* the commit (with the actuator's
    retries), and a failure changes nothing in the registry, is audited ``failed`` and raised, so
    the registry never claims a split traffic does not have.
    """

    def __init__(
        self,
        registry: Registry,
        artifacts: ArtifactStorage,
        *,
        clock: Clock | None = None,
        events: EventSink | None = None,
        actuator: Retrying | None = None,
    ) -> None:
        self.registry = registry
        self.artifacts = artifacts
        self.clock = clock or SystemClock()
        self._events = events
        self.actuator = actuator if actuator is not None and actuator.name != "routing_table" else None

    def sweep_unregistered_uploads(self, *, older_than_seconds: float = 86400.0) -> int:
        """Remove uploads that no version references after a day (a register that never came); returns how many.

        Run before the API serves: a sweep during an upload-then-register pair could take its bytes.
        """
        keep: set[str] = set()
        for model in self.registry.list_models():
            for version in self.registry.list_versions(model.name):
                keep.add(version.artifact_name)
                if version.reference_name:
                    keep.add(version.reference_name)
        return self.artifacts.remove_unreferenced(keep, older_than_seconds=older_than_seconds)

    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self._events is not None:
            self._events(kind, payload)

    # -- register ------------------------------------------------------------------

    def register(self, request: RegisterRequest, *, actor: Actor, reason: str = "") -> ModelVersion:
        """Register a version; see :meth:`register_version` (this drops the "created" flag)."""
        return self.register_version(request, actor=actor, reason=reason)[0]

    def register_version(self, request: RegisterRequest, *, actor: Actor,
                         reason: str = "") -> tuple[ModelVersion, bool]:
        """Register a version; returns it and whether it was created now.

        Retrying is safe: the same model, version and artifact sha256 (and reference) answer the version
        already registered (created False, nothing audited twice); different bytes under the same version
        are a ConflictError.
        """
        validate_model_name(request.model)
        validate_version(request.version)
        validate_metrics(request.metrics)
        existing = self.registry.get_version(request.model, request.version)
        if existing is not None and not isinstance(request.artifact, StoredArtifact):
            # A local file: compare hashes before copying anything.
            digest, _ = sha256_file(request.artifact) if Path(request.artifact).is_file() else ("", 0)
            if digest != existing.sha256:
                raise ConflictError(f"{request.model} {request.version} is already registered"
                                    f" (sha256 {existing.sha256[:12]}…, this artifact {digest[:12] or '?'}…)")
        # Copy (and hash) outside the transaction: content-addressed files are
        # harmless if the insert below loses a race.
        stored = self._stored(request.artifact)
        reference = None if request.reference is None else self._stored(request.reference)
        if existing is not None:
            return self._same_or_conflict(existing, stored, reference), False
        try:
            return self._insert(request, stored, reference, actor=actor, reason=reason), True
        except ConflictError:
            # Another register of the same version won the race: the same bytes are that version.
            existing = self.registry.get_version(request.model, request.version)
            if existing is None:
                raise
            return self._same_or_conflict(existing, stored, reference), False

    def _stored(self, artifact: Path | StoredArtifact) -> StoredArtifact:
        return artifact if isinstance(artifact, StoredArtifact) else self.artifacts.put(artifact)

    def _insert(self, request: RegisterRequest, stored: StoredArtifact, reference: StoredArtifact | None, *,
                actor: Actor, reason: str) -> ModelVersion:
        now = self.clock.now()
        with self.registry.write() as tx:
            tx.ensure_model(request.model, now)
            tx.insert_version(
                model=request.model,
                version=request.version,
                artifact_name=stored.name,
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                metrics={k: float(v) for k, v in request.metrics.items()},
                description=request.description,
                tags=dict(request.tags),
                lineage=request.lineage,
                reference_name=reference.name if reference else None,
                reference_sha256=reference.sha256 if reference else None,
                now=now,
            )
            audit_id = tx.append_audit(
                actor=actor,
                action="register",
                model=request.model,
                from_version=None,
                to_version=request.version,
                reason=reason,
                outcome=Outcome.OK,
                detail=f"sha256={stored.sha256}",
                now=now,
            )
            created = tx.get_version(request.model, request.version)
        assert created is not None
        self._publish("audit", {"id": audit_id, "action": "register", "model": request.model,
                                "to_version": request.version})
        return created

    @staticmethod
    def _same_or_conflict(existing: ModelVersion, stored: StoredArtifact,
                          reference: StoredArtifact | None) -> ModelVersion:
        same_reference = (reference.sha256 if reference else None) == existing.reference_sha256
        if existing.sha256 == stored.sha256 and same_reference:
            return existing
        raise ConflictError(f"{existing.model} {existing.version} is already registered with other bytes"
                            f" (sha256 {existing.sha256[:12]}…, this upload {stored.sha256[:12]}…)")

    def verify(self, model: str, version: str) -> Path:
        """Check a version's artifact (and reference sample) against the registry's sha256."""
        found = self.registry.get_version(model, version)
        if found is None:
            raise NotFoundError("version", f"{model} {version}", f"see `opsctl versions {model}`")
        path = self.artifacts.verified_path(found.artifact_name, found.sha256)
        if found.reference_name and found.reference_sha256:
            self.artifacts.verified_path(found.reference_name, found.reference_sha256)
        return path

    # -- planning ------------------------------------------------------------------

    def _deployment(self, tx: RegistryTx, model: str) -> Deployment:
        deployment = tx.get_deployment(model)
        if deployment is None:
            raise NotFoundError("model", model, "see `opsctl models`")
        return deployment

    def plan_promote(self, model: str, version: str) -> ChangePlan:
        with self.registry.read() as tx:
            return self._plan_promote(tx, model, version)

    def _plan_promote(self, tx: RegistryTx, model: str, version: str) -> ChangePlan:
        deployment = self._deployment(tx, model)
        if tx.get_version(model, version) is None:
            raise NotFoundError("version", f"{model} {version}", f"see `opsctl versions {model}`")
        current = deployment.production_version
        if current == version:
            return ChangePlan("promote", model, current, version, deployment.generation, True,
                              f"{model} {version} is already in production; nothing to do")
        if deployment.canary_version is not None and deployment.canary_version != version:
            raise ConflictError(
                f"a canary of {model} {deployment.canary_version} is running; abort it first"
                f" (`opsctl rollback {model}`) or promote that version"
            )
        return ChangePlan("promote", model, current, version, deployment.generation, False,
                          f"promote {model} {current or '(none)'} -> {version}")

    def plan_rollback(self, model: str, to: str | None = None) -> ChangePlan:
        with self.registry.read() as tx:
            return self._plan_rollback(tx, model, to)

    def _plan_rollback(self, tx: RegistryTx, model: str, to: str | None) -> ChangePlan:
        deployment = self._deployment(tx, model)
        current = deployment.production_version
        canary = deployment.canary_version
        if canary is None:
            # A canary whose first weight has not reached the deployment yet is still a canary.
            canary = tx.live_canary_version(model)
        if canary is not None and to is None:
            return ChangePlan("rollback", model, canary, current, deployment.generation, False,
                              f"abort the canary of {model} {canary}"
                              f" ({deployment.canary_weight:g}% of traffic) and send all traffic to"
                              f" {current or '(none)'}", aborts_canary=canary)
        if to is not None:
            if tx.get_version(model, to) is None:
                raise NotFoundError("version", f"{model} {to}", f"see `opsctl versions {model}`")
            if to == current:
                return ChangePlan("rollback", model, current, to, deployment.generation, True,
                                  f"{model} {to} is already in production; nothing to do")
            target = to
        else:
            if not deployment.previous_versions:
                raise ConflictError(
                    f"{model} has no previous production version to roll back to"
                    + (f" (production is {current})" if current else " (nothing is in production)")
                    + "; use `--to VERSION` to pick one"
                )
            target = deployment.previous_versions[-1]
        return ChangePlan("rollback", model, current, target, deployment.generation, False,
                          f"roll back {model} {current or '(none)'} -> {target}",
                          aborts_canary=canary)

    # -- applying ------------------------------------------------------------------

    def promote(self, model: str, version: str, *, actor: Actor, reason: str = "",
                expected_generation: int | None = None) -> ChangeResult:
        def plan(tx: RegistryTx) -> ChangePlan:
            return self._plan_promote(tx, model, version)

        return self._apply(plan, actor=actor, reason=reason, expected_generation=expected_generation)

    def rollback(self, model: str, *, to: str | None = None, actor: Actor, reason: str = "",
                 expected_generation: int | None = None) -> ChangeResult:
        def plan(tx: RegistryTx) -> ChangePlan:
            return self._plan_rollback(tx, model, to)

        return self._apply(plan, actor=actor, reason=reason, expected_generation=expected_generation)

    def _apply(self, make_plan: Callable[[RegistryTx], ChangePlan], *, actor: Actor, reason: str,
               expected_generation: int | None) -> ChangeResult:
        actuated: TrafficChange | None = None
        if self.actuator is not None:
            actuated, expected_generation = self._actuate(make_plan, actor=actor, reason=reason,
                                                          expected_generation=expected_generation)
        now = self.clock.now()
        try:
            with self.registry.write() as tx:
                plan = make_plan(tx)
                if expected_generation is not None and plan.generation != expected_generation:
                    raise ConflictError(
                        f"{plan.model} changed since you looked (generation {expected_generation} ->"
                        f" {plan.generation}); nothing was changed, check `opsctl history {plan.model}`"
                        " and try again"
                    )
                if plan.noop:
                    audit_id = tx.append_audit(actor=actor, action=plan.action, model=plan.model,
                                               from_version=plan.from_version, to_version=plan.to_version,
                                               reason=reason, outcome=Outcome.NOOP, detail=plan.description,
                                               now=now)
                    return ChangeResult(plan.action, plan.model, plan.from_version, plan.to_version,
                                        Outcome.NOOP, plan.description, audit_id, plan.generation)
                deployment = self._deployment(tx, plan.model)
                updated = tx.update_deployment(_next_deployment(deployment, plan),
                                               expected_generation=plan.generation, now=now)
                _update_stages(tx, deployment, updated)
                if plan.aborts_canary is not None:
                    # The canary's own record must say it ended, in this same transaction.
                    from opsctl.adapters.canary_store import abort_active_in_tx

                    abort_active_in_tx(tx, plan.model, actor=actor, reason=reason, now=now)
                detail = plan.description + (f"; traffic: {actuated.detail}" if actuated else "")
                audit_id = tx.append_audit(actor=actor, action=plan.action, model=plan.model,
                                           from_version=plan.from_version, to_version=plan.to_version,
                                           reason=reason, outcome=Outcome.OK, detail=detail, now=now)
        except ConflictError as error:
            self._audit_failure(make_plan, actor=actor, reason=reason, error=error)
            if actuated is not None:
                raise ConflictError(f"{error}; but the actuator had already applied the new split"
                                    f" ({actuated.detail}): traffic and registry disagree, check both") from error
            raise
        self._publish("audit", {"id": audit_id, "action": plan.action, "model": plan.model,
                                "from_version": plan.from_version, "to_version": plan.to_version})
        self._publish("deployment", updated.to_json())
        traffic = traffic_from_publication(tx.routing)
        if actuated is not None:  # the actuator moved traffic; the document follows for SDK routers
            document = f"{traffic.detail}; " if traffic.applied else ""
            traffic = TrafficChange(True, actuated.via, document + actuated.detail, traffic.routing_generation)
        return ChangeResult(plan.action, plan.model, plan.from_version, plan.to_version, Outcome.OK,
                            plan.description, audit_id, updated.generation,
                            extra={"deployment": updated.to_json(), "traffic": traffic.to_json()})

    def _actuate(self, make_plan: Callable[[RegistryTx], ChangePlan], *, actor: Actor, reason: str,
                 expected_generation: int | None) -> tuple[TrafficChange | None, int | None]:
        """Apply the planned split with the actuator before anything is committed; audit a failure."""
        assert self.actuator is not None
        with self.registry.read() as tx:
            plan = make_plan(tx)
            deployment = self._deployment(tx, plan.model)
        if plan.noop or (expected_generation is not None and plan.generation != expected_generation):
            return None, expected_generation  # the write below answers both (no-op, conflict)
        split = split_of(_next_deployment(deployment, plan), aborted_canary=plan.aborts_canary)
        try:
            self.actuator.apply(split)
        except ActuatorError as error:
            with self.registry.write() as tx:
                tx.append_audit(actor=actor, action=plan.action, model=plan.model, from_version=plan.from_version,
                                to_version=plan.to_version, reason=reason, outcome=Outcome.FAILED,
                                detail=f"actuator {self.actuator.name} failed: {error}; nothing was changed"
                                       " in the registry, traffic keeps its current split", now=self.clock.now())
            raise ActuatorError(f"{plan.description}: the {self.actuator.name} actuator failed: {error}."
                                " Nothing was changed: the registry and traffic keep the current split") from error
        return (TrafficChange(True, self.actuator.name, f"actuator `{self.actuator.name}` ran ok"),
                plan.generation)

    def record_verification(self, model: str, *, from_version: str | None, to_version: str | None, moved: bool,
                            detail: str, actor: Actor, reason: str = "") -> int:
        """Audit what ``opsctl rollback --verify`` measured: outcome ok (traffic moved) or failed."""
        validate_model_name(model)
        with self.registry.write() as tx:
            self._deployment(tx, model)
            return tx.append_audit(actor=actor, action="rollback_verify", model=model, from_version=from_version,
                                   to_version=to_version, reason=reason,
                                   outcome=Outcome.OK if moved else Outcome.FAILED, detail=detail,
                                   now=self.clock.now())

    def _audit_failure(self, make_plan: Callable[[RegistryTx], ChangePlan], *, actor: Actor, reason: str,
                       error: ConflictError) -> None:
        """Record a refused attempt in its own transaction, so the log shows both operators."""
        now = self.clock.now()
        with self.registry.write() as tx:
            try:
                plan: ChangePlan | None = make_plan(tx)
            except (ConflictError, NotFoundError):
                plan = None
            action = plan.action if plan else "change"
            model = plan.model if plan else None
            if model is None:
                return
            tx.append_audit(actor=actor, action=action, model=model,
                            from_version=plan.from_version if plan else None,
                            to_version=plan.to_version if plan else None, reason=reason,
                            outcome=Outcome.CONFLICT, detail=str(error), now=now)


def _next_deployment(deployment: Deployment, plan: ChangePlan) -> Deployment:
    previous = list(deployment.previous_versions)
    if plan.action == "promote":
        if deployment.production_version is not None:
            previous.append(deployment.production_version)
        previous = [v for v in previous if v != plan.to_version]
        canary_version = None if deployment.canary_version == plan.to_version else deployment.canary_version
        return replace(deployment, production_version=plan.to_version, previous_versions=tuple(previous),
                       canary_version=canary_version,
                       canary_weight=0.0 if canary_version is None else deployment.canary_weight)
    # rollback
    if plan.aborts_canary is not None and plan.to_version == deployment.production_version:
        return replace(deployment, canary_version=None, canary_weight=0.0)
    previous = [v for v in previous if v != plan.to_version]
    return replace(deployment, production_version=plan.to_version, previous_versions=tuple(previous),
                   canary_version=None, canary_weight=0.0)


def _update_stages(tx: RegistryTx, before: Deployment, after: Deployment) -> None:
    """Versions that leave production or a canary are archived; status is derived otherwise."""
    for version in {before.production_version, before.canary_version} - {None}:
        if version not in (after.production_version, after.canary_version):
            assert version is not None
            tx.set_stage(before.model, version, VersionStatus.ARCHIVED)
