"""How the CLI reaches the registry: directly (this module) or through the daemon.

:class:`DirectBackend` opens the registry file itself. It is what every
registry command uses when the daemon does not answer, so a rollback works
even with the daemon down; the audit event then says ``via=direct``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsctl.config import Settings
from opsctl.domain import Actor, AuditEvent, ChangePlan, ChangeResult, Deployment, ModelSummary, ModelVersion
from opsctl.errors import DaemonUnavailableError, NotFoundError

if TYPE_CHECKING:
    from opsctl.services.registry import RegisterRequest


class Backend(Protocol):
    via: str

    def models(self) -> list[ModelSummary]: ...

    def versions(self, model: str) -> list[ModelVersion]: ...

    def deployments(self) -> list[Deployment]: ...

    def register(self, request: RegisterRequest, *, reason: str,
                 progress: Callable[[str, int, int], None] | None = None) -> ModelVersion: ...

    def plan_promote(self, model: str, version: str) -> ChangePlan: ...

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult: ...

    def plan_rollback(self, model: str, to: str | None) -> ChangePlan: ...

    def rollback(self, model: str, *, to: str | None, reason: str,
                 expected_generation: int | None) -> ChangeResult: ...

    def history(self, model: str | None, limit: int) -> list[AuditEvent]: ...

    def verify(self, model: str, version: str) -> str: ...

    def record_verification(self, model: str, *, from_version: str | None, to_version: str | None, moved: bool,
                            detail: str, reason: str) -> int: ...


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
        # Imported here: with the daemon up, the CLI never needs SQLite or the artifact store.
        from opsctl.adapters.artifacts import ArtifactStore
        from opsctl.adapters.registry import open_registry
        from opsctl.services.registry import RegistryService
        from opsctl.traffic import traffic_actuator

        self.via = via
        self.registry = open_registry(settings.registry, settings.daemon.registry_path)
        self.service = RegistryService(self.registry, ArtifactStore(settings.daemon.artifacts_dir),
                                       actuator=traffic_actuator(settings))
        self.actor = current_actor(via)

    def models(self) -> list[ModelSummary]:
        return self.registry.list_models()

    def versions(self, model: str) -> list[ModelVersion]:
        if self.registry.get_deployment(model) is None:
            raise NotFoundError("model", model, "see `opsctl models`")
        return self.registry.list_versions(model)

    def deployments(self) -> list[Deployment]:
        return self.registry.list_deployments()

    def register(self, request: RegisterRequest, *, reason: str,
                 progress: Callable[[str, int, int], None] | None = None) -> ModelVersion:
        return self.service.register(request, actor=self.actor, reason=reason)  # a local copy: no progress

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

    def record_verification(self, model: str, *, from_version: str | None, to_version: str | None, moved: bool,
                            detail: str, reason: str) -> int:
        return self.service.record_verification(model, from_version=from_version, to_version=to_version,
                                                 moved=moved, detail=detail, actor=self.actor, reason=reason)


class FallbackBackend:
    """Use the daemon; when nobody answers on its socket, act on the registry directly.

    Only a failure to *connect* falls back: a request that may have reached the
    daemon is never repeated against the registry.
    """

    def __init__(self, settings: Settings, *, notice: Callable[[str], None]) -> None:
        self.settings = settings
        self._notice = notice
        self._active: Any = None
        self.daemon_up: bool | None = None

    @property
    def via(self) -> str:
        return self._backend().via if self._active is None else self._active.via

    def _direct(self) -> DirectBackend:
        self.daemon_up = False
        self._notice(f"opsctl: the daemon is not answering on {self.settings.daemon.socket};"
                     f" acting directly on the registry {self.settings.daemon.registry_path}")
        self._active = DirectBackend(self.settings, via="direct (daemon down)")
        return self._active

    def _backend(self) -> Any:
        if self._active is None:
            if not Path(self.settings.daemon.socket).exists():
                return self._direct()
            from opsctl.client import DaemonBackend, DaemonClient  # httpx only when a daemon may be there

            self._active = DaemonBackend(DaemonClient.from_settings(self.settings))
        return self._active

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        backend = self._backend()
        try:
            result = getattr(backend, name)(*args, **kwargs)
        except DaemonUnavailableError:
            if isinstance(backend, DirectBackend):
                raise
            result = getattr(self._direct(), name)(*args, **kwargs)
        else:
            if self.daemon_up is None:
                self.daemon_up = not isinstance(backend, DirectBackend)
        return result

    def models(self) -> list[ModelSummary]:
        return self._call("models")  # type: ignore[no-any-return]

    def versions(self, model: str) -> list[ModelVersion]:
        return self._call("versions", model)  # type: ignore[no-any-return]

    def deployments(self) -> list[Deployment]:
        return self._call("deployments")  # type: ignore[no-any-return]

    def register(self, request: RegisterRequest, *, reason: str,
                 progress: Callable[[str, int, int], None] | None = None) -> ModelVersion:
        return self._call("register", request, reason=reason, progress=progress)  # type: ignore[no-any-return]

    def plan_promote(self, model: str, version: str) -> ChangePlan:
        return self._call("plan_promote", model, version)  # type: ignore[no-any-return]

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult:
        return self._call("promote", model, version, reason=reason,  # type: ignore[no-any-return]
                          expected_generation=expected_generation)

    def plan_rollback(self, model: str, to: str | None) -> ChangePlan:
        return self._call("plan_rollback", model, to)  # type: ignore[no-any-return]

    def rollback(self, model: str, *, to: str | None, reason: str,
                 expected_generation: int | None) -> ChangeResult:
        return self._call("rollback", model, to=to, reason=reason,  # type: ignore[no-any-return]
                          expected_generation=expected_generation)

    def history(self, model: str | None, limit: int) -> list[AuditEvent]:
        return self._call("history", model, limit)  # type: ignore[no-any-return]

    def verify(self, model: str, version: str) -> str:
        return self._call("verify", model, version)  # type: ignore[no-any-return]

    def record_verification(self, model: str, *, from_version: str | None, to_version: str | None, moved: bool,
                            detail: str, reason: str) -> int:
        return self._call("record_verification", model, from_version=from_version,  # type: ignore[no-any-return]
                          to_version=to_version, moved=moved, detail=detail, reason=reason)
