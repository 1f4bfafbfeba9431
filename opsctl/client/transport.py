"""The daemon client's transport: httpx over the Unix socket (or TCP with a bearer token).

Timeouts are short enough for an incident: connecting takes at most
``connect_timeout_seconds`` (0.5 s by default), so a dead daemon is noticed at
once and the CLI can fall back to the registry. A daemon that does not answer is
one :class:`DaemonUnavailableError` whose message names the socket and how to start
the daemon (:func:`unavailable`), built here and nowhere else.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opsctl.errors import (
    ConfirmationRequired,
    ConflictError,
    DaemonUnavailableError,
    IntegrityError,
    NotFoundError,
    OpsctlError,
    UsageError,
)

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


START_HINT = "start it with `systemctl start opsctl` (or `opsctl daemon` in the foreground)"


def unavailable(problem: str) -> DaemonUnavailableError:
    """The one daemon-unavailable error: ``the daemon <problem, naming the socket>; start it with ...``."""
    return DaemonUnavailableError(f"the daemon {problem}; {START_HINT}")


class Transport:
    """Requests to the daemon's HTTP API: JSON in and out, its error documents raised as opsctl errors."""

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

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError, ConnectionRefusedError) as error:
            raise unavailable(f"does not answer on {self.where} ({error})") from error
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

    def events(self, last_id: int | None = None,
               on_open: Callable[[socket.socket | None], None] | None = None) -> Iterator[SseMessage]:
        """Follow ``/v1/events`` (blocking; one SSE message at a time).

        ``on_open`` gets the stream's socket once the daemon has answered (None when the transport hides
        it): shutting that socket down is how another thread ends a read that would block forever."""
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        try:
            with self._http.stream("GET", "/v1/events", headers=headers,
                                   timeout=httpx.Timeout(None, connect=self._http.timeout.connect)) as response:
                if response.status_code != 200:
                    raise DaemonUnavailableError(f"the daemon answered HTTP {response.status_code} for its events")
                if on_open is not None:
                    stream = response.extensions.get("network_stream")
                    on_open(stream.get_extra_info("socket") if stream is not None else None)
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
            raise unavailable(f"does not answer on {self.where} ({error})") from error
        except (httpx.TransportError, OSError) as error:
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
