"""SQL for the alert engine's state: ``alerts`` (one row per fingerprint), ``alert_history`` and ``silences``.

The engine itself is pure (:mod:`opsctl.core.alerts`); this module persists what it returns, so the
alert states, acks and silences survive a daemon restart. An :class:`AlertState` is stored as a JSON
document that, unlike ``AlertState.to_json()``, also keeps the notifier bookkeeping (``last_sent_at``,
``resolved_sent``): a restarted daemon neither re-pages for an alert it already sent nor forgets to send
a resolution.

Every method takes either an open :class:`~opsctl.adapters.registry.RegistryTx` or the
:class:`~opsctl.adapters.registry.Registry` (then it runs in a transaction of its own). Load, step and
save inside one write transaction so an ack arriving meanwhile is never overwritten::

    with registry.write() as tx:
        before = store.load(tx)
        after, notifications = step(before, conditions, now, silences=store.silences(tx, active_at=now))
        transitions = store.apply(tx, before, after, now)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from opsctl.adapters.health_store import Target, open_tx
from opsctl.clock import parse_utc, utc_iso
from opsctl.core.alerts import Ack, AlertPhase, AlertSource, AlertState, Matcher, Severity, Silence
from opsctl.errors import ConflictError, NotFoundError

# What alert_history.status says when step() forgot an alert: a pending alert whose condition went
# away before its ``for:`` ("dropped"), or a resolved alert past its retention ("expired").
DROPPED = "dropped"
EXPIRED = "expired"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)


def alert_to_document(alert: AlertState) -> dict[str, Any]:
    """Everything needed to rebuild the state exactly (see :func:`alert_from_document`)."""
    return {
        **alert.to_json(),
        "last_sent_at": _iso(alert.last_sent_at),
        "resolved_sent": alert.resolved_sent,
    }


def alert_from_document(document: dict[str, Any]) -> AlertState:
    ack_doc = document.get("ack")
    ack = None
    if ack_doc is not None:
        at = parse_utc(ack_doc["at"])
        ack = Ack(by=ack_doc["by"], at=at, until=_moment(ack_doc.get("until")), comment=ack_doc.get("comment", ""))
    value = document.get("value")
    return AlertState(
        fingerprint=document["fingerprint"],
        rule=document["rule"],
        severity=Severity(document["severity"]),
        source=AlertSource(document["source"]),
        labels=dict(document["labels"]),
        annotations=dict(document.get("annotations", {})),
        phase=AlertPhase(document["state"]),
        starts_at=parse_utc(document["starts_at"]),
        fired_at=_moment(document.get("fired_at")),
        resolved_at=_moment(document.get("resolved_at")),
        value=None if value is None else float(value),
        summary=document.get("summary", ""),
        ack=ack,
        last_sent_at=_moment(document.get("last_sent_at")),
        resolved_sent=bool(document.get("resolved_sent", False)),
    )


def silence_to_document(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        # Structured, not str(Matcher): values may hold quotes and backslashes.
        "matchers": [{"name": m.name, "op": m.op, "value": m.value} for m in silence.matchers],
        "author": silence.author,
        "comment": silence.comment,
        "starts_at": utc_iso(silence.starts_at),
        "ends_at": utc_iso(silence.ends_at),
    }


def silence_from_document(document: dict[str, Any]) -> Silence:
    return Silence(
        id=document["id"],
        matchers=tuple(Matcher(m["name"], m["op"], m["value"]) for m in document["matchers"]),
        author=document["author"],
        comment=document["comment"],
        starts_at=parse_utc(document["starts_at"]),
        ends_at=parse_utc(document["ends_at"]),
    )


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class AlertTransition:
    """One change worth telling people about: a new alert, a phase change, an ack, or a forgotten alert.

    ``previous`` is None for a new alert; ``phase`` is a phase value, or ``dropped`` / ``expired``."""

    alert: AlertState
    previous: str | None
    phase: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.alert.id,
            "fingerprint": self.alert.fingerprint,
            "rule": self.alert.rule,
            "severity": self.alert.severity.value,
            "labels": dict(self.alert.labels),
            "from": self.previous,
            "to": self.phase,
            "summary": self.alert.summary,
        }


class AlertStore:
    """Reads and writes ``alerts``, ``alert_history`` and ``silences``."""

    # -- alert states ------------------------------------------------------------------------

    def load(self, target: Target) -> list[AlertState]:
        """Every stored alert (pending, firing, or resolved within its retention), oldest first."""
        with open_tx(target, write=False) as tx:
            rows = tx.conn.execute("SELECT state FROM alerts").fetchall()
        alerts = [alert_from_document(json.loads(row["state"])) for row in rows]
        return sorted(alerts, key=lambda a: (a.starts_at, a.fingerprint))

    def save(self, target: Target, alert: AlertState, now: datetime) -> None:
        """Insert or replace one alert's state."""
        with open_tx(target, write=True) as tx:
            tx.conn.execute(
                "INSERT INTO alerts(fingerprint, status, state, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(fingerprint) DO UPDATE SET status = excluded.status, state = excluded.state, "
                "updated_at = excluded.updated_at",
                (alert.fingerprint, alert.phase.value, _dump(alert_to_document(alert)), utc_iso(now)),
            )

    def record_history(self, target: Target, alert: AlertState, status: str, now: datetime) -> None:
        with open_tx(target, write=True) as tx:
            tx.conn.execute(
                "INSERT INTO alert_history(at, fingerprint, status, state) VALUES (?, ?, ?, ?)",
                (utc_iso(now), alert.fingerprint, status, _dump(alert_to_document(alert))),
            )

    def apply(
        self, target: Target, before: Iterable[AlertState], after: Iterable[AlertState], now: datetime
    ) -> list[AlertTransition]:
        """Persist the result of one ``step``: upsert what changed, delete what it forgot, and write a
        history row for every new alert, phase change, ack change and forgotten alert."""
        old = {a.fingerprint: a for a in before}
        new = {a.fingerprint: a for a in after}
        transitions: list[AlertTransition] = []
        with open_tx(target, write=True) as tx:
            for fp, alert in new.items():
                previous = old.get(fp)
                if previous == alert:
                    continue
                self.save(tx, alert, now)
                if previous is None or previous.phase is not alert.phase:
                    transitions.append(
                        AlertTransition(alert, None if previous is None else previous.phase.value, alert.phase.value)
                    )
                    self.record_history(tx, alert, alert.phase.value, now)
                elif previous.ack != alert.ack:
                    self.record_history(tx, alert, f"{alert.phase.value}:ack", now)
            for fp, alert in old.items():
                if fp in new:
                    continue
                status = DROPPED if alert.phase is AlertPhase.PENDING else EXPIRED
                tx.conn.execute("DELETE FROM alerts WHERE fingerprint = ?", (fp,))
                self.record_history(tx, alert, status, now)
                transitions.append(AlertTransition(alert, alert.phase.value, status))
        return transitions

    def history(self, target: Target, *, fingerprint: str | None = None, limit: int = 100
                ) -> list[tuple[datetime, str, AlertState]]:
        """(when, status, state) rows, oldest first; ``fingerprint`` may be a prefix (an alert id)."""
        with open_tx(target, write=False) as tx:
            if fingerprint is None:
                rows = tx.conn.execute(
                    "SELECT at, status, state FROM alert_history ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = tx.conn.execute(
                    "SELECT at, status, state FROM alert_history WHERE fingerprint LIKE ? ESCAPE '\\' "
                    "ORDER BY id DESC LIMIT ?",
                    (_like_prefix(fingerprint), limit),
                ).fetchall()
        return [(parse_utc(r["at"]), r["status"], alert_from_document(json.loads(r["state"])))
                for r in reversed(rows)]

    # -- silences -----------------------------------------------------------------------------

    def add_silence(self, target: Target, silence: Silence) -> None:
        with open_tx(target, write=True) as tx:
            if tx.conn.execute("SELECT 1 FROM silences WHERE id = ?", (silence.id,)).fetchone():
                raise ConflictError(f"silence {silence.id} already exists")
            tx.conn.execute(
                "INSERT INTO silences(id, ends_at, silence) VALUES (?, ?, ?)",
                (silence.id, utc_iso(silence.ends_at), _dump(silence_to_document(silence))),
            )

    def get_silence(self, target: Target, silence_id: str) -> Silence:
        with open_tx(target, write=False) as tx:
            row = tx.conn.execute("SELECT silence FROM silences WHERE id = ?", (silence_id,)).fetchone()
        if row is None:
            raise NotFoundError("silence", silence_id, "see `opsctl alerts silences`")
        return silence_from_document(json.loads(row["silence"]))

    def silences(self, target: Target, *, active_at: datetime | None = None) -> list[Silence]:
        """Every stored silence, or only those in force at ``active_at``; ordered by start."""
        # Filtered here, not in SQL: ISO text without microseconds does not sort like time.
        with open_tx(target, write=False) as tx:
            rows = tx.conn.execute("SELECT silence FROM silences").fetchall()
        found = [silence_from_document(json.loads(r["silence"])) for r in rows]
        if active_at is not None:
            found = [s for s in found if s.active(active_at)]
        return sorted(found, key=lambda s: (s.starts_at, s.id))

    def expire_silence(self, target: Target, silence_id: str, now: datetime) -> Silence:
        """End a silence now (kept for the record); a ConflictError if it has already ended."""
        with open_tx(target, write=True) as tx:
            silence = self.get_silence(tx, silence_id)
            if silence.ends_at <= now:
                raise ConflictError(f"silence {silence_id} already ended at {utc_iso(silence.ends_at)}")
            # A silence must end after it starts; one expired in the microsecond it began ends just after.
            ends = max(now, silence.starts_at + timedelta(microseconds=1))
            expired = replace(silence, ends_at=ends)
            tx.conn.execute(
                "UPDATE silences SET ends_at = ?, silence = ? WHERE id = ?",
                (utc_iso(ends), _dump(silence_to_document(expired)), silence_id),
            )
        return expired

    def prune_silences(self, target: Target, *, before: datetime) -> int:
        """Forget silences that ended before ``before``."""
        with open_tx(target, write=True) as tx:
            gone = [s.id for s in self.silences(tx) if s.ends_at < before]
            tx.conn.executemany("DELETE FROM silences WHERE id = ?", [(i,) for i in gone])
        return len(gone)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
