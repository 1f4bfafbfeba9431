"""What goes over the ``opsctl_events`` channel: notices parse back, anything else is ignored, an event larger
than PostgreSQL's 8000-byte NOTIFY limit is sent with its small fields, marked truncated; and a listener on a
real PostgreSQL publishes exactly the entries other processes committed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsctl.adapters.registry import Registry, open_registry
from opsctl.adapters.registry_engine import RegistrySettings
from opsctl.adapters.registry_events import MAX_PAYLOAD_BYTES, AuditNotice, CrossDaemonEvents, RelayedEvent
from opsctl.domain import Actor, Outcome
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.wait import wait_for

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_notices_and_relayed_events_parse_back_and_anything_else_is_ignored() -> None:
    assert AuditNotice.parse('{"origin":"ab12","audit_id":7}') == AuditNotice("ab12", 7)
    event = RelayedEvent("ab12", "job", {"job": "health", "ok": True})
    assert RelayedEvent.parse(event.payload()) == event
    for junk in ("", "7", "not json", '{"origin":"x"}', '{"origin":"x","audit_id":"seven"}', "[1, 2]"):
        assert AuditNotice.parse(junk) is None
    for junk in ("", "null", '{"origin":"x","kind":"job","data":[1]}', '{"origin":"x","audit_id":3}'):
        assert RelayedEvent.parse(junk) is None


def test_an_event_over_the_payload_limit_keeps_its_small_fields_and_says_it_is_truncated() -> None:
    data = {"model": "fraud", "version": "2", "status": "degraded", "checks": [{"name": "x" * 100}] * 200,
            "reason": "r" * 5000}
    payload = RelayedEvent("ab12", "health", data).payload()
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    sent = RelayedEvent.parse(payload)
    assert sent is not None and sent.kind == "health"
    assert sent.data == {"model": "fraud", "version": "2", "status": "degraded", "truncated": True}
    small = {"model": "fraud", "status": "healthy"}
    assert json.loads(RelayedEvent("ab12", "health", small).payload())["data"] == small


def _append(registry: Registry, action: str) -> int:
    with registry.write() as tx:
        return tx.append_audit(actor=Actor("alice", 1000), action=action, model="fraud", from_version=None,
                               to_version="1", reason="", outcome=Outcome.OK, now=T0)


def test_only_other_processes_entries_are_published_once_even_when_an_id_was_rolled_back(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    here, there = (open_registry(RegistrySettings(url=url), tmp_path / name / "registry.db", publish_routing=False)
                   for name in ("here", "there"))
    published: list[tuple[str, dict[str, Any]]] = []
    listener = CrossDaemonEvents(here, lambda kind, data: published.append((kind, data)))
    try:
        _append(here, "before")  # history before the listener started is not news
        assert listener.start()
        mine = _append(here, "mine")
        # An append rolled back here: the id is free again, and the row another process commits under it is news.
        with pytest.raises(RuntimeError), here.write() as tx:
            rolled_back = tx.append_audit(actor=Actor("alice", 1000), action="rolled-back", model="fraud",
                                          from_version=None, to_version=None, reason="", outcome=Outcome.OK, now=T0)
            raise RuntimeError("the change failed after its audit row")
        theirs = _append(there, "theirs")
        assert theirs == rolled_back == mine + 1
        wait_for(lambda: [d for k, d in published if k == "audit" and d["id"] == theirs], 5, what="their entry")
        _append(here, "mine again")
        last = _append(there, "theirs again")
        wait_for(lambda: [d for k, d in published if k == "audit" and d["id"] == last], 5, what="the last entry")
        assert [(d["id"], d["action"]) for k, d in published if k == "audit"] == [(theirs, "theirs"),
                                                                                 (last, "theirs again")]
    finally:
        listener.stop()
        here.close()
        there.close()
