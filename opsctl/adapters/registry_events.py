"""Changes other daemons made, for this daemon's event stream: PostgreSQL LISTEN/NOTIFY over the audit log.

Several daemons share one PostgreSQL registry; an SSE client on any of them must see every change,
whichever daemon (or direct CLI) made it. Each audit append sends ``NOTIFY opsctl_events`` in its
own transaction (:class:`opsctl.adapters.registry_postgres.PostgresDialect`), so a notice arrives
only once the change is committed, and commits arrive in audit-id order (writers are serialised).
:class:`CrossDaemonEvents` LISTENs on a connection of its own, in a thread, and publishes the audit
entries this process did not append as ``audit`` events (and, after a promote, rollback or canary
step, the model's deployment as a ``deployment`` event), each exactly once.

The registry stays the source of truth: the listener keeps the highest audit id it has passed, and
every notice above it reads the rows after it. A notice sent while the connection was down is lost
(PostgreSQL keeps none for a listener that is gone), so on reconnecting the listener reads every row
after its high-water mark before waiting again: nothing committed in between is skipped, and each
model those rows changed gets a ``deployment`` event with its deployment as it is now.

Everything else on a daemon's bus (job results, health, alerts, canary and drift news, ``deployment``)
is relayed as it is published (:meth:`CrossDaemonEvents.relay`): after the change it reports has
committed, by a sender thread, as ``{"origin", "kind", "data"}`` (a document over the 8000-byte
payload limit goes with its scalar fields only, marked ``truncated``). Those are live news, not
replayed after a reconnect: what they report is in the registry (``opsctl health``, ``alerts``...).
Not relayed: ``audit`` (the notices above carry it) and ``leader`` (it is about the daemon itself).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from opsctl.adapters.registry import Registry
from opsctl.adapters.registry_postgres import CONNECT_TIMEOUT_S, EVENTS_CHANNEL, PostgresDialect
from opsctl.core.model_changes import is_model_change
from opsctl.errors import OpsctlError

log = logging.getLogger("opsctld.events")

Publish = Callable[[str, dict[str, Any]], object]
# Rows read per query while catching up (a daemon that was cut off for long reads in pages).
PAGE = 500
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
NOT_RELAYED = frozenset({"audit", "leader"})
# Events waiting for the sender; past this (PostgreSQL unreachable for long) the newest are dropped and counted.
RELAY_QUEUE = 10_000


@dataclass(frozen=True)
class AuditNotice:
    """One ``opsctl_events`` notice: which process appended which audit row."""

    origin: str
    audit_id: int

    @staticmethod
    def parse(payload: str) -> AuditNotice | None:
        """The notice in ``payload``; None for anything else on the channel."""
        try:
            body = json.loads(payload)
            return AuditNotice(str(body["origin"]), int(body["audit_id"]))
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class RelayedEvent:
    """One bus event another daemon relayed: its kind and data."""

    origin: str
    kind: str
    data: dict[str, Any]

    @staticmethod
    def parse(payload: str) -> RelayedEvent | None:
        try:
            body = json.loads(payload)
            if isinstance(body.get("kind"), str) and isinstance(body.get("data"), dict):
                return RelayedEvent(str(body["origin"]), body["kind"], body["data"])
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
        return None

    def payload(self) -> str:
        """The NOTIFY payload: the whole event, or its scalar fields marked ``truncated`` when too large."""
        text = json.dumps({"origin": self.origin, "kind": self.kind, "data": self.data}, default=str,
                          separators=(",", ":"))
        if len(text.encode()) <= MAX_PAYLOAD_BYTES:
            return text
        small = {k: v for k, v in self.data.items() if isinstance(v, str | int | float | bool | None)
                 and len(str(v)) <= 200}
        text = json.dumps({"origin": self.origin, "kind": self.kind, "data": {**small, "truncated": True}},
                          separators=(",", ":"))
        if len(text.encode()) <= MAX_PAYLOAD_BYTES:
            return text
        return json.dumps({"origin": self.origin, "kind": self.kind, "data": {"truncated": True}})


@dataclass(frozen=True)
class EventsStatus:
    """How the cross-daemon event stream is doing (the ``events`` section of ``GET /v1/status``)."""

    listening: bool
    after_audit_id: int | None  # the last audit entry passed (published, or this daemon's own)
    reconnects: int
    caught_up: int  # entries published by reading the audit log after a reconnect
    relay_dropped: int  # events this daemon could not send on to the others

    def to_json(self) -> dict[str, Any]:
        return {"listening": self.listening, "after_audit_id": self.after_audit_id, "reconnects": self.reconnects,
                "caught_up": self.caught_up, "relay_dropped": self.relay_dropped}


class CrossDaemonEvents:
    """Publishes onto ``publish`` (the daemon's event bus) the audit entries other processes append."""

    def __init__(self, registry: Registry, publish: Publish, *, retry_seconds: float = 1.0) -> None:
        if registry.postgres is None:
            raise OpsctlError("cross-daemon events need a PostgreSQL registry")
        self._registry = registry
        self._url = registry.postgres.url
        dialect = registry.dialect
        assert isinstance(dialect, PostgresDialect)
        self._dialect = dialect
        self._publish = publish
        self._retry_seconds = retry_seconds
        self._high_water: int | None = None  # the last audit id passed (published, or skipped as our own)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        # What a status page or a test can read: reconnections, and entries published by catching up after one.
        self.reconnects = 0
        self.caught_up = 0
        self.relay_dropped = 0
        self.application_name = f"opsctl-events:{os.getpid()}"
        self._outbox: queue.Queue[RelayedEvent | None] = queue.Queue(RELAY_QUEUE)
        self._sender: threading.Thread | None = None

    def start(self, wait_seconds: float = 5.0) -> bool:
        """Start listening; True once it listens (changes committed from then on are all published)."""
        self._thread = threading.Thread(target=self._run, name="opsctl-events", daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send, name="opsctl-events-relay", daemon=True)
        self._sender.start()
        return self._listening.wait(wait_seconds)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):  # full: the sender sees _stop after its current send
            self._outbox.put_nowait(None)
        for thread in (self._thread, self._sender):
            if thread is not None:
                thread.join(timeout=5)

    def status(self) -> EventsStatus:
        return EventsStatus(self._listening.is_set(), self._high_water, self.reconnects, self.caught_up,
                            self.relay_dropped)

    def relay(self, kind: str, data: dict[str, Any]) -> None:
        """Send a bus event on to the other daemons (never blocks: a sender thread does the NOTIFY)."""
        if kind in NOT_RELAYED:
            return
        try:
            self._outbox.put_nowait(RelayedEvent(self._dialect.origin, kind, data))
        except queue.Full:
            self.relay_dropped += 1

    # -- the relaying thread ------------------------------------------------------------

    def _send(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            while not self._stop.is_set():
                event = self._outbox.get()
                if event is None:
                    return
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                               application_name=f"opsctl-relay:{os.getpid()}")
                    conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, event.payload()))
                except psycopg.Error as error:
                    self.relay_dropped += 1
                    log.warning("cannot relay an event to the other daemons; dropped",
                                extra={"kind": event.kind, "error": str(error).strip()})
                    if conn is not None:
                        conn.close()
                    conn = None
                    self._stop.wait(self._retry_seconds)
        finally:
            if conn is not None:
                conn.close()

    # -- the listening thread -----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (psycopg.Error, OpsctlError) as error:
                self._listening.clear()
                if self._stop.is_set():
                    return
                log.warning("lost the registry's event connection; reconnecting",
                            extra={"error": str(error).strip(), "retry_seconds": self._retry_seconds})
            self._stop.wait(self._retry_seconds)

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                             application_name=self.application_name) as conn:
            conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            if self._high_water is None:
                # From now on every commit notifies us; what came before is history, not news.
                self._high_water = self._last_audit_id()
                log.info("listening for other daemons' changes", extra={"after_audit_id": self._high_water})
            else:
                self.reconnects += 1
                # The deployment events relayed meanwhile were lost with the connection: say where each
                # model changed by a missed entry stands now.
                published = self._catch_up(deployments=True)
                self.caught_up += published
                log.warning("registry event connection back; caught up",
                            extra={"published": published, "after_audit_id": self._high_water})
            self._listening.set()
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=0.5):
                    notice = AuditNotice.parse(notify.payload)
                    if notice is not None:
                        self._on_notice(notice)
                        continue
                    relayed = RelayedEvent.parse(notify.payload)
                    if relayed is not None and relayed.origin != self._dialect.origin:
                        self._publish(relayed.kind, relayed.data)

    def _on_notice(self, notice: AuditNotice) -> None:
        high_water = self._high_water or 0
        if notice.audit_id <= high_water:
            return  # already read while catching up
        if notice.origin == self._dialect.origin and notice.audit_id == high_water + 1:
            self._passed(notice.audit_id)  # our own, next in line: our bus already carried it
            return
        self._catch_up()

    def _last_audit_id(self) -> int:
        with self._registry.read() as tx:
            return int(tx.conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0])

    def _catch_up(self, *, deployments: bool = False) -> int:
        """Publish every audit row after the high-water mark that this process did not append; how many."""
        published = 0
        changed_models: list[str] = []
        while True:
            with self._registry.read() as tx:
                rows = tx.conn.execute(
                    "SELECT id, at, actor, via, action, model, from_version, to_version, reason, outcome, detail"
                    " FROM audit_log WHERE id > ? ORDER BY id LIMIT ?", (self._high_water or 0, PAGE)).fetchall()
            for row in rows:
                if not self._dialect.made_here(int(row["id"])):
                    self._publish("audit", _audit_event(row))
                    published += 1
                    if (deployments and row["model"] and is_model_change(row["action"])
                            and row["model"] not in changed_models):
                        changed_models.append(row["model"])
                self._passed(int(row["id"]))
            if len(rows) < PAGE:
                break
        for model in changed_models:
            deployment = self._registry.get_deployment(model)
            if deployment is not None:
                self._publish("deployment", deployment.to_json())
        return published

    def _passed(self, audit_id: int) -> None:
        self._high_water = audit_id
        self._dialect.forget_made_here(audit_id)


def _audit_event(row: Any) -> dict[str, Any]:
    """An ``audit`` event's data for a row another process appended (the local events' fields, and who)."""
    return {"id": int(row["id"]), "action": row["action"], "model": row["model"],
            "from_version": row["from_version"], "to_version": row["to_version"], "at": row["at"],
            "actor": row["actor"], "via": row["via"], "outcome": row["outcome"], "reason": row["reason"],
            "detail": row["detail"], "remote": True}
