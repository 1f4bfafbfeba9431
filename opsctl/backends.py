"""How the CLI reaches the registry: directly (this module) or through the daemon.

:class:`DirectBackend` opens the registry file itself. It is what every
registry command uses when the daemon does not answer, so a rollback works
even with the daemon down; the audit event then says ``via=direct``.
"""

from __future__ import annotations

import os
import pwd
from typing import Protocol

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.config import Settings
from opsctl.domain import Actor, AuditEvent, ChangeResult, Deployment, ModelSummary, ModelVersion
from opsctl.errors import NotFoundError
from opsctl.service import ChangePlan, RegisterRequest, RegistryService


class Backend(Protocol):
    via: str

    def models(self) -> list[ModelSummary]: ...

    def versions(self, model: str) -> list[ModelVersion]: ...

    def deployments(self) -> list[Deployment]: ...

    def register(self, request: RegisterRequest, *, reason: str) -> ModelVersion: ...

    def plan_promote(self, model: str, version: str) -> ChangePlan: ...

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult: ...

    def plan_rollback(self, model: str, to: str | None) -> ChangePlan: ...

    def rollback(self, model: str, *, to: str | None, reason: str,
                 expected_generation: int | None) -> ChangeResult: ...

    def history(self, model: str | None, limit: int) -> list[AuditEvent]: ...

    def verify(self, model: str, version: str) -> str: ...


def current_actor(via: str) -> Actor:
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid{uid}"
    return Actor(user=user, uid=uid, via=via)


class DirectBackend:
    """Acts on the registry file directly, as the invoking Unix user."""

    def __init__(self, settings: Settings, *, via: str = "direct") -> None:
        self.via = via
        self.registry = Registry(settings.daemon.registry_path)
        self.service = RegistryService(self.registry, ArtifactStore(settings.daemon.artifacts_dir))
        self.actor = current_actor(via)

    def models(self) -> list[ModelSummary]:
        return self.registry.list_models()

    def versions(self, model: str) -> list[ModelVersion]:
        if self.registry.get_deployment(model) is None:
            raise NotFoundError("model", model, "see `opsctl models`")
        return self.registry.list_versions(model)

    def deployments(self) -> list[Deployment]:
        return self.registry.list_deployments()

    def register(self, request: RegisterRequest, *, reason: str) -> ModelVersion:
        return self.service.register(request, actor=self.actor, reason=reason)

    def plan_promote(self, model: str, version: str) -> ChangePlan:
        return self.service.plan_promote(model, version)

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult:
        return self.service.promote(model, version, actor=self.actor, reason=reason,
                                    expected_generation=expected_generation)

    def plan_rollback(self, model: str, to: str | None) -> ChangePlan:
        return self.service.plan_rollback(model, to)

    def rollback(self, model: str, *, to: str | None, reason: str,
                 expected_generation: int | None) -> ChangeResult:
        return self.service.rollback(model, to=to, actor=self.actor, reason=reason,
                                     expected_generation=expected_generation)

    def history(self, model: str | None, limit: int) -> list[AuditEvent]:
        if model is not None and self.registry.get_deployment(model) is None:
            raise NotFoundError("model", model, "see `opsctl models`")
        return self.registry.audit(model, limit=limit)

    def verify(self, model: str, version: str) -> str:
        return str(self.service.verify(model, version))
