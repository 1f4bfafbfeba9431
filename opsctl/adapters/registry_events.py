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
after its high-water mark before waiting again: nothing committed in between is skipped.
"""

from __future__ import annotations

import json
import logging
import os
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
        self.application_name = f"opsctl-events:{os.getpid()}"

    def start(self, wait_seconds: float = 5.0) -> bool:
        """Start listening; True once it listens (changes committed from then on are all published)."""
        self._thread = threading.Thread(target=self._run, name="opsctl-events", daemon=True)
        self._thread.start()
        return self._listening.wait(wait_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

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
                published = self._catch_up()
                self.caught_up += published
                log.warning("registry event connection back; caught up",
                            extra={"published": published, "after_audit_id": self._high_water})
            self._listening.set()
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=0.5):
                    notice = AuditNotice.parse(notify.payload)
                    if notice is not None:
                        self._on_notice(notice)

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

    def _catch_up(self) -> int:
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
                    if row["model"] and is_model_change(row["action"]) and row["model"] not in changed_models:
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
