"""The daemon's client: httpx over the Unix socket (or TCP with a bearer token).

Timeouts are short enough for an incident: connecting takes at most
``connect_timeout_seconds`` (0.5 s by default), so a dead daemon is noticed at
once and the CLI can fall back to the registry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from opsctl.config import Settings
from opsctl.domain import AuditEvent, ChangePlan, ChangeResult, Deployment, ModelSummary, ModelVersion
from opsctl.errors import (
    ConfirmationRequired,
    ConflictError,
    DaemonUnavailableError,
    IntegrityError,
    NotFoundError,
    OpsctlError,
    UsageError,
)

if TYPE_CHECKING:
    from opsctl.services.registry import RegisterRequest

_ERRORS: dict[str, type[OpsctlError]] = {
    "UsageError": UsageError,
    "ConflictError": ConflictError,
    "IntegrityError": IntegrityError,
    "ConfirmationRequired": ConfirmationRequired,
}


# Called as bytes go out: (file name, bytes sent, total bytes).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SseMessage:
    id: int | None
    event: str
    data: str


class DaemonClient:
    """A thin, typed wrapper over the daemon's HTTP API."""

    def __init__(self, *, socket_path: str | None = None, base_url: str | None = None, token: str | None = None,
                 connect_timeout: float = 0.5, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
                 ) -> None:
        if transport is None:
            # No TLS on a Unix socket: skip loading the CA bundle (half the client's start-up time).
            transport = httpx.HTTPTransport(uds=socket_path, verify=False) if socket_path else httpx.HTTPTransport()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.where = socket_path or base_url or "daemon"
        self._http = httpx.Client(transport=transport, base_url=base_url or "http://opsctl", headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=connect_timeout))

    @classmethod
    def from_settings(cls, settings: Settings) -> DaemonClient:
        return cls(socket_path=settings.daemon.socket, connect_timeout=settings.daemon.connect_timeout_seconds,
                   timeout=settings.daemon.request_timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError, ConnectionRefusedError) as error:
            raise DaemonUnavailableError(f"the daemon does not answer on {self.where}: {error}") from error
        except httpx.TransportError as error:
            # The request may have reached the daemon: never retry a change elsewhere behind its back.
            raise OpsctlError(f"the daemon on {self.where} did not complete the request ({error}); it may or may"
                              " not have been applied, check `opsctl history`") from error
        if response.status_code >= 400:
            raise _error_from(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def upload(self, path: Path, progress: Progress | None = None) -> dict[str, Any]:
        """Stream a regular file to ``POST /v1/uploads``; returns {name, sha256, size_bytes}.

        The sha256 is computed first (one read) and sent ahead of the body, which the daemon checks before
        keeping anything. The body has no timeout (a large artifact takes what it takes); connecting does.
        """
        from opsctl.adapters.artifacts import file_chunks, safe_suffix

        digest = hashlib.sha256()
        total = 0
        for chunk in file_chunks(path):
            digest.update(chunk)
            total += len(chunk)
        sha256 = digest.hexdigest()

        def body() -> Iterator[bytes]:
            sent = 0
            for chunk in file_chunks(path):
                sent += len(chunk)
                if progress is not None:
                    progress(path.name, sent, total)
                yield chunk

        headers = {"X-Opsctl-Sha256": sha256, "X-Opsctl-Filename": safe_suffix(path.name) or "artifact",
                   "Content-Type": "application/octet-stream", "Content-Length": str(total)}
        answer = self.request("POST", "/v1/uploads", content=body(), headers=headers,
                              timeout=httpx.Timeout(None, connect=self._http.timeout.connect))
        if answer.get("sha256") != sha256:
            raise IntegrityError(f"the daemon stored {path} with sha256 {answer.get('sha256')!r}, not {sha256}")
        return {"name": answer["name"], "sha256": sha256}

    def events(self, last_id: int | None = None) -> Iterator[SseMessage]:
        """Follow ``/v1/events`` (blocking; one SSE message at a time)."""
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        try:
            with self._http.stream("GET", "/v1/events", headers=headers,
                                   timeout=httpx.Timeout(None, connect=self._http.timeout.connect)) as response:
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if not line:
                        if "data" in fields:
                            raw_id = fields.get("id")
                            yield SseMessage(int(raw_id) if raw_id and raw_id.isdigit() else None,
                                             fields.get("event", "message"), fields["data"])
                        fields = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        fields[key] = value[1:] if value.startswith(" ") else value
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError) as error:
            raise DaemonUnavailableError(f"the daemon does not answer on {self.where}: {error}") from error
        except httpx.TransportError as error:
            raise DaemonUnavailableError(f"lost the event stream from {self.where}: {error}") from error


def _error_from(response: httpx.Response) -> OpsctlError:
    try:
        error = response.json()["error"]
        kind, message = error["type"], error["message"]
    except (ValueError, KeyError, TypeError):
        return OpsctlError(f"daemon answered HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code == 404 or kind == "NotFoundError":
        return NotFoundError("", "", message=message)
    return _ERRORS.get(kind, OpsctlError)(message)


class DaemonBackend:
    """The CLI's backend when the daemon answers: changes are attributed by the daemon (SO_PEERCRED)."""

    via = "daemon"

    def __init__(self, client: DaemonClient) -> None:
        self.client = client

    def models(self) -> list[ModelSummary]:
        return [ModelSummary.from_json(m) for m in self.client.get("/v1/models")]

    def versions(self, model: str) -> list[ModelVersion]:
        return [ModelVersion.from_json(v) for v in self.client.get(f"/v1/models/{_seg(model)}/versions")]

    def deployments(self) -> list[Deployment]:
        return [Deployment.from_json(d) for d in self.client.get("/v1/status")["models"]]

    def register(self, request: RegisterRequest, *, reason: str, progress: Progress | None = None) -> ModelVersion:
        """Upload the artifact (and reference sample) as bytes, then register them: the daemon never opens a
        path of ours. Retrying after a lost answer is safe (same bytes: the version already registered)."""
        body: dict[str, Any] = {"version": request.version, "metrics": request.metrics, "tags": request.tags,
                                "description": request.description, "lineage": request.lineage.to_json(),
                                "reason": reason}
        body["artifact"] = self.client.upload(Path(str(request.artifact)), progress)
        if request.reference is not None:
            body["reference"] = self.client.upload(Path(str(request.reference)), progress)
        return ModelVersion.from_json(self.client.post(f"/v1/models/{_seg(request.model)}/versions", body))

    def plan_promote(self, model: str, version: str) -> ChangePlan:
        return ChangePlan.from_json(self.client.get(f"/v1/models/{_seg(model)}/plan/promote", version=version))

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult:
        return ChangeResult.from_json(self.client.post(
            f"/v1/models/{_seg(model)}/promote",
            {"version": version, "reason": reason, "expected_generation": expected_generation}))

    def plan_rollback(self, model: str, to: str | None) -> ChangePlan:
        return ChangePlan.from_json(self.client.get(f"/v1/models/{_seg(model)}/plan/rollback", to=to))

    def rollback(self, model: str, *, to: str | None, reason: str, expected_generation: int | None) -> ChangeResult:
        return ChangeResult.from_json(self.client.post(
            f"/v1/models/{_seg(model)}/rollback", {"to": to, "reason": reason,
                                                   "expected_generation": expected_generation}))

    def history(self, model: str | None, limit: int) -> list[AuditEvent]:
        return [AuditEvent.from_json(e) for e in self.client.get("/v1/history", model=model, limit=limit)]

    def verify(self, model: str, version: str) -> str:
        self.client.post(f"/v1/models/{_seg(model)}/versions/{_seg(version)}/verify", {})
        return version


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
