"""The TUI's connection to the daemon: runs in thread workers, talks to the app only by messages.

Two loops, each in its own thread worker:

* the **event loop** follows ``/v1/events`` (SSE) and posts every event; it owns
  connectivity: a failed connect posts ``Connection(False)`` and retries with
  exponential backoff; a successful one posts ``Connection(True)`` and asks the
  status loop for a fresh document (the daemon may have restarted);
* the **status loop** fetches ``/v1/status``, the audit tail, ``/v1/alerts`` and
  ``/v1/health`` when asked, and otherwise every ``refresh_seconds`` so
  job-computed panels stay current. Events that the app can apply by themselves
  (deployments, canary documents, alert transitions, retrain logs) never cause a
  fetch; the others ask for one on a debounce (:data:`DEBOUNCE_SECONDS`), so a
  burst of events costs one fetch. No tight polling: the fast path is the stream.

Actions (plans, promote, rollback, versions) are plain blocking calls meant to be
run from a thread worker; each opens its own short-lived client.
"""

from __future__ import annotations

import contextlib
import json
import socket as socket_module
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message

from opsctl.client import DaemonBackend, DaemonClient
from opsctl.clock import Clock, SystemClock
from opsctl.domain import ChangePlan, ChangeResult, ModelVersion
from opsctl.errors import DaemonUnavailableError, NotFoundError, OpsctlError

if TYPE_CHECKING:
    from opsctl.tui.actions import Action

BACKOFF_START_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 4.0
DEBOUNCE_SECONDS = 0.3
# Events the app applies from their payload alone; anything else asks for a (debounced) status fetch.
SELF_CONTAINED = frozenset({"deployment", "canary", "drift", "performance", "silence"})


class StatusArrived(Message):
    """A whole ``/v1/status`` document (and the audit tail), fetched at ``at``."""

    def __init__(self, document: dict[str, Any], history: list[dict[str, Any]], at: datetime, *,
                 alerts: dict[str, Any] | None = None, health: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.document = document
        self.history = history
        self.at = at
        self.alerts = alerts
        self.health = health


class EventArrived(Message):
    """One SSE event from the daemon."""

    def __init__(self, kind: str, event: dict[str, Any], at: datetime) -> None:
        super().__init__()
        self.kind = kind
        self.event = event
        self.at = at


class Connection(Message):
    """The daemon became reachable (``up``) or not; ``retry_in`` is the next attempt's delay."""

    def __init__(self, up: bool, error: str = "", retry_in: float | None = None) -> None:
        super().__init__()
        self.up = up
        self.error = error
        self.retry_in = retry_in


Post = Callable[[Message], object]


class Feed(Protocol):
    """What the app needs from a data source (the daemon, or a fixed document for snapshots)."""

    where: str

    def run_events(self, post: Post) -> None: ...
    def run_status(self, post: Post) -> None: ...
    def refresh(self) -> None: ...
    def stop(self) -> None: ...
    def versions(self, model: str) -> list[ModelVersion]: ...
    def history(self, model: str | None, limit: int) -> list[dict[str, Any]]: ...
    def plan(self, action: str, model: str, version: str | None) -> ChangePlan: ...
    def change(self, action: str, model: str, version: str | None, *, reason: str,
               expected_generation: int) -> ChangeResult: ...
    def act(self, action: Action, reason: str) -> dict[str, Any]: ...
    def drift(self, model: str, *, history: int | None = None) -> dict[str, Any]: ...
    def performance(self, model: str) -> dict[str, Any]: ...
    def retrain_runs(self, model: str, *, limit: int = 10) -> list[dict[str, Any]]: ...
    def retrain_run(self, run_id: str) -> dict[str, Any]: ...
    def silences(self) -> list[dict[str, Any]]: ...


def needs_status(kind: str, event: Mapping[str, Any]) -> bool:
    """Whether an SSE event changes what only a status fetch can tell (see the module doc)."""
    if kind in SELF_CONTAINED:
        return False
    if kind == "job":
        return False  # a job's result is announced by its own event (health, alert, canary...)
    if kind == "retrain":
        return (event.get("data") or {}).get("event") == "status"
    return True


class DaemonFeed:
    """The live feed over the daemon's Unix socket."""

    def __init__(self, socket_path: str, *, connect_timeout: float = 0.5, timeout: float = 5.0,
                 refresh_seconds: float = 15.0, clock: Clock | None = None) -> None:
        self.socket_path = socket_path
        self.where = socket_path
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.refresh_seconds = refresh_seconds
        self.clock = clock or SystemClock()
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._due: float | None = None  # monotonic time of the debounced fetch
        self._lock = threading.Lock()
        self._sse_socket: socket_module.socket | None = None
        self.last_event_id: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask both loops to end; unblocks the SSE read by shutting its socket down."""
        self._stop.set()
        self._wanted.set()
        with self._lock:
            sock = self._sse_socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket_module.SHUT_RDWR)

    def refresh(self) -> None:
        """Fetch now."""
        with self._lock:
            self._due = None
        self._wanted.set()

    def refresh_soon(self, delay: float = DEBOUNCE_SECONDS) -> None:
        """Fetch within ``delay`` seconds; more calls before then share the same fetch."""
        with self._lock:
            if self._wanted.is_set() and self._due is None:
                return  # an immediate fetch is already asked for
            due = time.monotonic() + delay
            self._due = due if self._due is None else min(self._due, due)
        self._wanted.set()

    def client(self) -> DaemonClient:
        """A new client of the daemon (close it, or use it as a context manager)."""
        return DaemonClient(socket_path=self.socket_path, connect_timeout=self.connect_timeout, timeout=self.timeout)

    # -- the loops ---------------------------------------------------------------------------

    def run_status(self, post: Post) -> None:
        """Fetch the status document when asked (or every refresh_seconds) until stopped."""
        while not self._stop.is_set():
            self._wanted.wait(self.refresh_seconds)
            with self._lock:
                due, self._due = self._due, None
            if due is not None and self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._wanted.clear()
            if self._stop.is_set():
                return
            client = self.client()
            try:
                document = client.status_json()
                history = [e.to_json() for e in client.models.history(limit=50)]
                alerts = _optional(lambda c=client: dict(c.alerts.list(include_resolved=True).json))
                health = _optional(lambda c=client: dict(c.health.get().json))
            except OpsctlError:
                continue  # the event loop reports connectivity; it will ask again once reconnected
            finally:
                client.close()
            post(StatusArrived(document, history, self.clock.now(), alerts=alerts, health=health))

    def run_events(self, post: Post) -> None:
        """Follow the SSE stream, reconnecting with backoff, until stopped."""
        backoff = BACKOFF_START_SECONDS
        while not self._stop.is_set():
            try:
                for kind, event in self._stream(on_open=lambda: self._opened(post)):
                    backoff = BACKOFF_START_SECONDS
                    post(EventArrived(kind, event, self.clock.now()))
                    if needs_status(kind, event):
                        # Health checks, alert lists and the audit log's actor and reason are only in the
                        # documents; a burst of events shares one fetch.
                        self.refresh_soon()
                backoff = BACKOFF_START_SECONDS
            except DaemonUnavailableError as error:
                if self._stop.is_set():
                    return
                post(Connection(False, str(error), retry_in=backoff))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _opened(self, post: Post) -> None:
        post(Connection(True))
        self.refresh()

    def _stream(self, on_open: Callable[[], None]) -> Iterator[tuple[str, dict[str, Any]]]:
        def opened(sock: socket_module.socket | None) -> None:
            with self._lock:
                self._sse_socket = sock
            if not self._stop.is_set():
                on_open()

        client = DaemonClient(socket_path=self.socket_path, connect_timeout=self.connect_timeout)
        try:
            for message in client.events(self.last_event_id, on_open=opened):
                if self._stop.is_set():
                    return
                parsed = _parse({"event": message.event, "data": message.data})
                if parsed is not None:
                    event_id = parsed[1].get("id")
                    if isinstance(event_id, int):
                        self.last_event_id = event_id
                    yield parsed
            if not self._stop.is_set():
                raise DaemonUnavailableError(f"the daemon on {self.where} closed its event stream")
        finally:
            client.close()
            with self._lock:
                self._sse_socket = None

    # -- actions (blocking; call from a thread worker) ---------------------------------------

    def versions(self, model: str) -> list[ModelVersion]:
        client = self.client()
        try:
            return DaemonBackend(client).versions(model)
        finally:
            client.close()

    def history(self, model: str | None, limit: int) -> list[dict[str, Any]]:
        client = self.client()
        try:
            return [e.to_json() for e in client.models.history(model, limit)]
        finally:
            client.close()

    def plan(self, action: str, model: str, version: str | None) -> ChangePlan:
        client = self.client()
        try:
            backend = DaemonBackend(client)
            if action == "promote":
                assert version is not None
                return backend.plan_promote(model, version)
            return backend.plan_rollback(model, version)
        finally:
            client.close()

    def change(self, action: str, model: str, version: str | None, *, reason: str,
               expected_generation: int) -> ChangeResult:
        client = self.client()
        try:
            backend = DaemonBackend(client)
            if action == "promote":
                assert version is not None
                return backend.promote(model, version, reason=reason, expected_generation=expected_generation)
            return backend.rollback(model, to=version, reason=reason, expected_generation=expected_generation)
        finally:
            client.close()


    def act(self, action: Action, reason: str) -> dict[str, Any]:
        """One audited action through the daemon's client (ack, silence, canary command, retrain)."""
        with self.client() as client:
            return action.send(client, reason)

    def drift(self, model: str, *, history: int | None = None) -> dict[str, Any]:
        with self.client() as client:
            return dict(client.drift.get(model, history=history).json)

    def performance(self, model: str) -> dict[str, Any]:
        with self.client() as client:
            return dict(client.drift.performance(model).json)

    def retrain_runs(self, model: str, *, limit: int = 10) -> list[dict[str, Any]]:
        with self.client() as client:
            return [dict(r.json) for r in client.retrain.runs(model, limit=limit)]

    def retrain_run(self, run_id: str) -> dict[str, Any]:
        with self.client() as client:
            return dict(client.retrain.show(run_id).json)

    def silences(self) -> list[dict[str, Any]]:
        """Silences in force, as the daemon lists them."""
        with self.client() as client:
            return [dict(s.json) for s in client.alerts.silences()]


def _optional(fetch: Callable[[], Any]) -> Any:
    """A document from a subsystem that may not be loaded in this daemon: None when it is not there."""
    try:
        return fetch()
    except NotFoundError:
        return None


def _parse(fields: Mapping[str, str]) -> tuple[str, dict[str, Any]] | None:
    try:
        event = json.loads(fields["data"])
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    return fields.get("event") or str(event.get("kind", "message")), event


class StaticFeed:
    """A fixed status document and audit tail: deterministic snapshots, benchmarks, demos without a daemon."""

    where = "fixed document"

    def __init__(self, document: dict[str, Any], history: list[dict[str, Any]] | None = None,
                 versions: dict[str, list[ModelVersion]] | None = None, *, clock: Clock | None = None,
                 up: bool = True, alerts: dict[str, Any] | None = None, health: dict[str, Any] | None = None,
                 documents: dict[tuple[str, str], Any] | None = None) -> None:
        self.document = document
        self.alerts = alerts
        self.health = health
        self.documents = documents or {}
        self.acts: list[tuple[str, dict[str, Any]]] = []
        self._history = history or []
        self._versions = versions or {}
        self.clock = clock or SystemClock()
        self.up = up
        self._stop = threading.Event()
        self.changes: list[tuple[str, str, str | None, str, int]] = []

    def run_status(self, post: Post) -> None:
        post(StatusArrived(self.document, self._history, self.clock.now(), alerts=self.alerts, health=self.health))

    def run_events(self, post: Post) -> None:
        post(Connection(self.up, "" if self.up else "the daemon is not running (fixed document)",
                        retry_in=None if self.up else 1.0))

    def refresh(self) -> None:
        pass

    def refresh_soon(self, delay: float = DEBOUNCE_SECONDS) -> None:
        pass

    def stop(self) -> None:
        self._stop.set()

    def act(self, action: Action, reason: str) -> dict[str, Any]:
        self.acts.append((action.name, action.request(reason)))
        raise OpsctlError("this is a fixed document; nothing was changed")

    def _document(self, kind: str, key: str) -> Any:
        if (kind, key) not in self.documents:
            raise NotFoundError(kind, key)
        return self.documents[(kind, key)]

    def drift(self, model: str, *, history: int | None = None) -> dict[str, Any]:
        return dict(self._document("drift", model))

    def performance(self, model: str) -> dict[str, Any]:
        return dict(self._document("performance", model))

    def retrain_runs(self, model: str, *, limit: int = 10) -> list[dict[str, Any]]:
        return list(self._document("retrain_runs", model))[:limit]

    def retrain_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._document("retrain_run", run_id))

    def silences(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.documents.get(("silences", ""), [])]

    def versions(self, model: str) -> list[ModelVersion]:
        return list(self._versions.get(model, []))

    def history(self, model: str | None, limit: int) -> list[dict[str, Any]]:
        return [h for h in self._history if model is None or h.get("model") == model][-limit:]

    def plan(self, action: str, model: str, version: str | None) -> ChangePlan:
        deployment = next((d for d in self.document.get("models", []) if d["model"] == model), None)
        if deployment is None:
            raise OpsctlError(f"no model {model!r}")
        previous = (deployment.get("previous_versions") or [None])[-1]
        target = version if action == "promote" else (version or previous)
        return ChangePlan(action=action, model=model, from_version=deployment.get("production_version"),
                          to_version=target, generation=int(deployment.get("generation", 0)), noop=False,
                          description=f"{action} {model} to {target}")

    def change(self, action: str, model: str, version: str | None, *, reason: str,
               expected_generation: int) -> ChangeResult:
        self.changes.append((action, model, version, reason, expected_generation))
        raise OpsctlError("this is a fixed document; nothing was changed")
