"""The one typed client of the daemon's API, used by the CLI and the TUI.

::

    with DaemonClient.from_settings(settings) as client:
        client.status().drift            # typed sections of /v1/status
        client.canaries.start("fraud-detector", "1.2.0", reason="retrained")
        client.alerts.ack("a1b2c3", comment="on it")
        client.models.versions("team/fraud detector")   # path segments are always quoted

One namespace per resource (:mod:`opsctl.client.resources`), typed documents back
(:mod:`opsctl.documents`, :mod:`opsctl.domain`). A daemon that does not answer raises one
:class:`~opsctl.errors.DaemonUnavailableError` naming the socket and how to start it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from opsctl.client.resources import Alerts, Canaries, Drift, Health, Incidents, Models, Retrain, path_segment
from opsctl.client.transport import START_HINT, Progress, SseMessage, Transport, unavailable
from opsctl.domain import AuditEvent, ChangePlan, ChangeResult, Deployment, ModelSummary, ModelVersion

if TYPE_CHECKING:
    from opsctl.config import Settings
    from opsctl.documents import StatusDocument
    from opsctl.services.registry import RegisterRequest

__all__ = ["START_HINT", "DaemonBackend", "DaemonClient", "SseMessage", "path_segment"]


class DaemonClient:
    """The daemon's API: ``models``, ``canaries``, ``alerts``, ``health``, ``drift``, ``retrain``, ``incidents``,
    ``status()``, ``events()``. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, *, socket_path: str | None = None, base_url: str | None = None, token: str | None = None,
                 connect_timeout: float = 0.5, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
                 ) -> None:
        self.transport = Transport(socket_path=socket_path, base_url=base_url, token=token,
                                   connect_timeout=connect_timeout, timeout=timeout, transport=transport)
        self.where = self.transport.where

    @classmethod
    def from_settings(cls, settings: Settings) -> DaemonClient:
        """The client for the configured socket; DaemonUnavailableError at once when there is no socket file
        (checked before any connection, so a down daemon costs no client start-up)."""
        socket = settings.daemon.socket
        if not Path(socket).exists():
            raise unavailable(f"is not running (no socket at {socket})")
        return cls(socket_path=socket, connect_timeout=settings.daemon.connect_timeout_seconds,
                   timeout=settings.daemon.request_timeout_seconds)

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    @cached_property
    def models(self) -> Models:
        return Models(self.transport)

    @cached_property
    def canaries(self) -> Canaries:
        return Canaries(self.transport)

    @cached_property
    def alerts(self) -> Alerts:
        return Alerts(self.transport)

    @cached_property
    def health(self) -> Health:
        return Health(self.transport)

    @cached_property
    def drift(self) -> Drift:
        return Drift(self.transport)

    @cached_property
    def retrain(self) -> Retrain:
        return Retrain(self.transport)

    @cached_property
    def incidents(self) -> Incidents:
        return Incidents(self.transport)

    def status(self) -> StatusDocument:
        """``GET /v1/status``, typed."""
        from opsctl.documents import StatusDocument

        return StatusDocument.from_json(self.status_json())

    def status_json(self) -> dict[str, Any]:
        """``GET /v1/status`` as the daemon sent it (what ``opsctl status -o json`` prints)."""
        return dict(self.transport.get("/v1/status"))

    def events(self, last_id: int | None = None,
               on_open: Callable[[socket.socket | None], None] | None = None) -> Iterator[SseMessage]:
        """Follow ``/v1/events`` (blocking; one SSE message at a time); see :meth:`Transport.events`."""
        return self.transport.events(last_id, on_open)


class DaemonBackend:
    """The CLI's backend when the daemon answers: changes are attributed by the daemon (SO_PEERCRED)."""

    via = "daemon"

    def __init__(self, client: DaemonClient) -> None:
        self.client = client

    def models(self) -> list[ModelSummary]:
        return self.client.models.list()

    def versions(self, model: str) -> list[ModelVersion]:
        return self.client.models.versions(model)

    def deployments(self) -> list[Deployment]:
        return [Deployment.from_json(d) for d in self.client.status_json()["models"]]

    def register(self, request: RegisterRequest, *, reason: str, progress: Progress | None = None) -> ModelVersion:
        """Upload the artifact (and reference sample) as bytes, then register them: the daemon never opens a
        path of ours. Retrying after a lost answer is safe (same bytes: the version already registered)."""
        body: dict[str, Any] = {"version": request.version, "metrics": request.metrics, "tags": request.tags,
                                "description": request.description, "lineage": request.lineage.to_json(),
                                "reason": reason}
        body["artifact"] = self.client.transport.upload(Path(str(request.artifact)), progress)
        if request.reference is not None:
            body["reference"] = self.client.transport.upload(Path(str(request.reference)), progress)
        return self.client.models.register(request.model, body)

    def plan_promote(self, model: str, version: str) -> ChangePlan:
        return self.client.models.plan("promote", model, version)

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult:
        return self.client.models.promote(model, version, reason=reason, expected_generation=expected_generation)

    def plan_rollback(self, model: str, to: str | None) -> ChangePlan:
        return self.client.models.plan("rollback", model, to)

    def rollback(self, model: str, *, to: str | None, reason: str, expected_generation: int | None) -> ChangeResult:
        return self.client.models.rollback(model, to=to, reason=reason, expected_generation=expected_generation)

    def record_verification(self, model: str, *, from_version: str | None, to_version: str | None, moved: bool,
                            detail: str, reason: str) -> int:
        return self.client.models.record_verification(model, from_version=from_version, to_version=to_version,
                                                      moved=moved, detail=detail, reason=reason)

    def history(self, model: str | None, limit: int) -> list[AuditEvent]:
        return self.client.models.history(model, limit)

    def verify(self, model: str, version: str) -> str:
        self.client.models.verify(model, version)
        return version
