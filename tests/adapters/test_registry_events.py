"""What goes over the ``opsctl_events`` channel: notices parse back, anything else is ignored, and an event
larger than PostgreSQL's 8000-byte NOTIFY limit is sent with its small fields, marked truncated."""

from __future__ import annotations

import json

from opsctl.adapters.registry_events import MAX_PAYLOAD_BYTES, AuditNotice, RelayedEvent


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
