"""The alert engine: rules, per-fingerprint state (pending -> firing -> resolved), acks, silences.

Pure: no I/O and no clock reads; every function takes ``now``. The daemon feeds :func:`step` with the
conditions its jobs computed (health, drift, canary, job results), persists the returned states and
hands the returned notifications to a notifier (``opsctl.adapters.alertmanager``).

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> rule = AlertRule("SlaDegraded", Severity.CRITICAL, for_seconds=60)
>>> cond = Condition(rule, {"model": "fraud", "model_version": "v3"}, active=True)
>>> alerts, sent = step((), [cond], t0)
>>> alerts[0].phase, sent
(<AlertPhase.PENDING: 'pending'>, ())
>>> alerts, sent = step(alerts, [cond], t0 + timedelta(seconds=60))
>>> alerts[0].phase, sent[0].kind
(<AlertPhase.FIRING: 'firing'>, 'firing')

Semantics worth knowing:

* The fingerprint is the sha256 of the rule name and the alert's sorted labels, so the same rule for
  the same model version is one alert however often it is evaluated.
* An alert that stops being active while pending is dropped (it never fired); while firing it becomes
  ``resolved``. Alerts of a source that was not evaluated this step are left alone, so the hourly drift
  job does not see its alerts resolved by the 15-second health job.
* An ack (who, until when) or a matching silence suppresses *firing* notifications only: the alert's
  state keeps moving, an acked alert still resolves, and a resolution is sent once to whoever saw it
  fire (so Alertmanager does not keep paging for something that is over).
* A silence matches with Alertmanager's rules (=, !=, =~, !~; regexes anchored; a missing label is
  the empty string) and only ever hides alerts whose labels satisfy every matcher.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from opsctl.clock import utc_iso
from opsctl.errors import ConflictError, NotFoundError, UsageError


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertSource(StrEnum):
    HEALTH = "health"
    DRIFT = "drift"
    CANARY = "canary"
    JOB = "job"


class AlertPhase(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class AlertRule:
    """A rule: fires when its condition has held for ``for_seconds``; labels are added to every alert."""

    name: str
    severity: Severity = Severity.WARNING
    for_seconds: float = 0.0
    source: AlertSource = AlertSource.HEALTH
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("alert rule name must not be empty")
        if self.for_seconds < 0:
            raise ValueError(f"for_seconds must be >= 0, got {self.for_seconds}")
        for name in self.labels:
            _check_label_name(name)


@dataclass(frozen=True)
class Condition:
    """One evaluation of a rule for one label set: is it active right now?"""

    rule: AlertRule
    labels: Mapping[str, str]
    active: bool
    value: float | None = None
    summary: str = ""


def _check_label_name(name: str) -> None:
    if not _LABEL_NAME.match(name):
        raise ValueError(f"invalid label name {name!r}")


def alert_labels(rule: AlertRule, labels: Mapping[str, str]) -> dict[str, str]:
    """The full label set of an alert: alertname, severity, the rule's labels, then the condition's."""
    merged = {"alertname": rule.name, "severity": rule.severity.value, **rule.labels}
    for name, value in labels.items():
        _check_label_name(name)
        merged[name] = str(value)
    return merged


def fingerprint(rule_name: str, labels: Mapping[str, str]) -> str:
    """Stable sha256 of the rule name and the sorted labels (JSON-encoded so no two sets collide)."""
    payload = json.dumps([rule_name, sorted(labels.items())], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- acks and silences


@dataclass(frozen=True)
class Ack:
    by: str
    at: datetime
    until: datetime | None = None
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "at": utc_iso(self.at),
            "until": None if self.until is None else utc_iso(self.until),
            "comment": self.comment,
        }


MatchOp = Literal["=", "!=", "=~", "!~"]
_MATCHER = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        _check_label_name(self.name)
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as error:
                raise ValueError(f"bad regex in matcher {self.name}{self.op}{self.value!r}: {error}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        # Alertmanager semantics: a missing label is the empty string; regexes match the whole value.
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex`` (quotes optional)."""
        found = _MATCHER.match(text)
        if not found:
            raise UsageError(f"bad matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~RE or NAME!~RE")
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        try:
            return cls(name, op, value)  # type: ignore[arg-type]
        except ValueError as error:
            raise UsageError(str(error)) from None

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"

    def to_json(self) -> dict[str, Any]:
        # The shape of Alertmanager's v2 silence matchers.
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.op in ("=~", "!~"),
            "isEqual": self.op in ("=", "=~"),
        }


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")
        if not self.comment.strip():
            raise ValueError("a silence needs a comment saying why")

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def silences(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.active(now) and self.matches(labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "author": self.author,
            "comment": self.comment,
            "starts_at": utc_iso(self.starts_at),
            "ends_at": utc_iso(self.ends_at),
        }


def new_silence(
    matchers: Iterable[Matcher | str], *, author: str, comment: str, now: datetime, duration_seconds: float
) -> Silence:
    """A silence starting now; its id is derived from its content so it is stable and pure."""
    parsed = tuple(m if isinstance(m, Matcher) else Matcher.parse(m) for m in matchers)
    if duration_seconds <= 0:
        raise UsageError(f"silence duration must be positive, got {duration_seconds}s")
    payload = json.dumps([[str(m) for m in parsed], author, comment, utc_iso(now), duration_seconds])
    silence_id = hashlib.sha256(payload.encode()).hexdigest()[:12]
    try:
        return Silence(silence_id, parsed, author, comment, now, now + timedelta(seconds=duration_seconds))
    except ValueError as error:
        raise UsageError(str(error)) from None


# --------------------------------------------------------------------------- alert state


@dataclass(frozen=True)
class AlertState:
    """One alert, identified by its fingerprint."""

    fingerprint: str
    rule: str
    severity: Severity
    source: AlertSource
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    phase: AlertPhase
    starts_at: datetime  # when the condition became active (pending began)
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    value: float | None = None
    summary: str = ""
    ack: Ack | None = None
    last_sent_at: datetime | None = None  # last firing notification handed to the notifier
    resolved_sent: bool = False

    @property
    def id(self) -> str:
        """Short id for humans (``opsctl alerts ack ID``): the fingerprint's first 12 hex digits."""
        return self.fingerprint[:12]

    def acked(self, now: datetime) -> bool:
        return self.ack is not None and self.ack.active(now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "severity": self.severity.value,
            "source": self.source.value,
            "state": self.phase.value,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "summary": self.summary,
            "value": self.value,
            "starts_at": utc_iso(self.starts_at),
            "fired_at": None if self.fired_at is None else utc_iso(self.fired_at),
            "resolved_at": None if self.resolved_at is None else utc_iso(self.resolved_at),
            "ack": None if self.ack is None else self.ack.to_json(),
        }


@dataclass(frozen=True)
class Notification:
    """An alert to push now. ``ends_at`` is the resolution time, or for a firing alert the time after
    which the receiver may consider it resolved if we stop re-sending (like Prometheus does)."""

    kind: Literal["firing", "resolved"]
    alert: AlertState
    ends_at: datetime

    @property
    def labels(self) -> Mapping[str, str]:
        return self.alert.labels

    @property
    def annotations(self) -> Mapping[str, str]:
        notes = dict(self.alert.annotations)
        if self.alert.summary and "summary" not in notes:
            notes["summary"] = self.alert.summary
        return notes


@dataclass(frozen=True)
class AlertPolicy:
    """The ``[alerts]`` section (times in seconds)."""

    resend_interval_seconds: float = 60.0
    resolved_retention_seconds: float = 3600.0
    # A firing alert tells the receiver to treat it as resolved after this many missed re-sends.
    ends_after_resends: int = 4

    def __post_init__(self) -> None:
        if self.resend_interval_seconds <= 0:
            raise ValueError(f"resend_interval_seconds must be > 0, got {self.resend_interval_seconds}")
        if self.resolved_retention_seconds < 0:
            raise ValueError("resolved_retention_seconds must be >= 0")
        if self.ends_after_resends < 1:
            raise ValueError("ends_after_resends must be >= 1")


def suppressed_by(alert: AlertState, silences: Iterable[Silence], now: datetime) -> str | None:
    """Why notifications for this alert are held back right now (ack or silence id), or None."""
    if alert.acked(now):
        assert alert.ack is not None
        return f"acked by {alert.ack.by}"
    for silence in silences:
        if silence.silences(alert.labels, now):
            return f"silenced by {silence.id}"
    return None


def step(
    alerts: Iterable[AlertState],
    conditions: Iterable[Condition],
    now: datetime,
    *,
    silences: Iterable[Silence] = (),
    policy: AlertPolicy = AlertPolicy(),
    evaluated_sources: Collection[AlertSource] | None = None,
) -> tuple[tuple[AlertState, ...], tuple[Notification, ...]]:
    """Advance every alert to ``now`` given this round's conditions; return new states and what to send.

    ``evaluated_sources`` says which sources produced a full set of conditions this round (default: the
    sources of the given conditions); alerts of other sources are left untouched.
    """
    silences = tuple(silences)
    current = {a.fingerprint: a for a in alerts}
    seen: dict[str, tuple[Condition, dict[str, str]]] = {}
    for condition in conditions:
        labels = alert_labels(condition.rule, condition.labels)
        fp = fingerprint(condition.rule.name, labels)
        if fp not in seen or condition.active:  # the same alert reported twice: active wins
            seen[fp] = (condition, labels)
    sources = (
        {c.rule.source for c, _ in seen.values()} if evaluated_sources is None else set(evaluated_sources)
    )

    updated: dict[str, AlertState] = {}
    for fp, (condition, labels) in seen.items():
        existing = current.get(fp)
        if condition.active:
            updated[fp] = _activate(existing, condition, labels, fp, now)
        elif existing is not None:
            kept = _deactivate(existing, now, policy)
            if kept is not None:
                updated[fp] = kept
    for fp, existing in current.items():
        if fp in seen:
            continue
        kept = _deactivate(existing, now, policy) if existing.source in sources else existing
        if kept is not None:
            updated[fp] = kept

    notifications: list[Notification] = []
    for fp, alert in updated.items():
        outgoing, updated[fp] = _notify(alert, silences, now, policy)
        if outgoing is not None:
            notifications.append(outgoing)
    ordered = tuple(sorted(updated.values(), key=lambda a: (a.starts_at, a.fingerprint)))
    notifications.sort(key=lambda n: (n.alert.starts_at, n.alert.fingerprint))
    return ordered, tuple(notifications)


def _activate(
    existing: AlertState | None, condition: Condition, labels: dict[str, str], fp: str, now: datetime
) -> AlertState:
    rule = condition.rule
    if existing is None or existing.phase is AlertPhase.RESOLVED:
        existing = AlertState(
            fingerprint=fp,
            rule=rule.name,
            severity=rule.severity,
            source=rule.source,
            labels=labels,
            annotations=dict(rule.annotations),
            phase=AlertPhase.PENDING,
            starts_at=now,
        )
    alert = replace(existing, value=condition.value, summary=condition.summary)
    held = (now - alert.starts_at).total_seconds()
    if alert.phase is AlertPhase.PENDING and held >= rule.for_seconds:
        alert = replace(alert, phase=AlertPhase.FIRING, fired_at=now)
    return alert


def _deactivate(alert: AlertState, now: datetime, policy: AlertPolicy) -> AlertState | None:
    if alert.phase is AlertPhase.PENDING:
        return None  # never fired: nothing to resolve
    if alert.phase is AlertPhase.FIRING:
        return replace(alert, phase=AlertPhase.RESOLVED, resolved_at=now)
    assert alert.resolved_at is not None
    if (now - alert.resolved_at).total_seconds() > policy.resolved_retention_seconds and alert.resolved_sent:
        return None
    return alert


def _notify(
    alert: AlertState, silences: tuple[Silence, ...], now: datetime, policy: AlertPolicy
) -> tuple[Notification | None, AlertState]:
    if alert.phase is AlertPhase.FIRING:
        if suppressed_by(alert, silences, now) is not None:
            return None, alert
        due = alert.last_sent_at is None or (
            (now - alert.last_sent_at).total_seconds() >= policy.resend_interval_seconds
        )
        if not due:
            return None, alert
        ends = now + timedelta(seconds=policy.resend_interval_seconds * policy.ends_after_resends)
        sent = replace(alert, last_sent_at=now)
        return Notification("firing", sent, ends), sent
    if alert.phase is AlertPhase.RESOLVED and not alert.resolved_sent:
        done = replace(alert, resolved_sent=True)
        if alert.last_sent_at is None:
            return None, done  # nobody was told it fired; nobody needs to hear it resolved
        assert alert.resolved_at is not None
        return Notification("resolved", done, alert.resolved_at), done
    return None, alert


def find_alert(alerts: Iterable[AlertState], alert_id: str) -> AlertState:
    """The alert whose fingerprint starts with ``alert_id`` (at least 6 hex digits)."""
    wanted = alert_id.strip().lower()
    if len(wanted) < 6:
        raise UsageError(f"alert id {alert_id!r} is too short: give at least 6 characters")
    found = [a for a in alerts if a.fingerprint.startswith(wanted)]
    if not found:
        raise NotFoundError("alert", alert_id)
    if len(found) > 1:
        raise UsageError(f"alert id {alert_id!r} is ambiguous: {', '.join(a.id for a in found)}")
    return found[0]


def acknowledge(
    alerts: Iterable[AlertState],
    alert_id: str,
    *,
    by: str,
    now: datetime,
    for_seconds: float | None = None,
    comment: str = "",
) -> tuple[AlertState, ...]:
    """Ack one alert (until ``now + for_seconds``, or until it resolves when None)."""
    alerts = tuple(alerts)
    target = find_alert(alerts, alert_id)
    if target.phase is AlertPhase.RESOLVED:
        raise ConflictError(f"alert {target.id} ({target.rule}) is already resolved")
    if for_seconds is not None and for_seconds <= 0:
        raise UsageError(f"ack duration must be positive, got {for_seconds}s")
    until = None if for_seconds is None else now + timedelta(seconds=for_seconds)
    acked = replace(target, ack=Ack(by=by, at=now, until=until, comment=comment))
    return tuple(acked if a.fingerprint == target.fingerprint else a for a in alerts)


# --------------------------------------------------------------------------- health -> conditions

SLA_DEGRADED = AlertRule(
    "ModelSlaDegraded",
    Severity.CRITICAL,
    for_seconds=60.0,
    source=AlertSource.HEALTH,
    annotations={"description": "A deployed model version violates its SLA (see opsctl health)."},
)
HEALTH_UNKNOWN = AlertRule(
    "ModelHealthUnknown",
    Severity.WARNING,
    for_seconds=300.0,
    source=AlertSource.HEALTH,
    annotations={"description": "No usable metrics for a deployed model version (no data, stale, or "
                                "Prometheus down)."},
)


def health_conditions(
    results: Iterable[Any],
    *,
    degraded_rule: AlertRule = SLA_DEGRADED,
    unknown_rule: AlertRule = HEALTH_UNKNOWN,
    model_label: str = "model",
    version_label: str = "model_version",
) -> list[Condition]:
    """Conditions for both health rules from ``opsctl.core.sla.HealthResult`` values (one pair each)."""
    conditions = []
    for result in results:
        labels = {model_label: result.model, version_label: result.version}
        status = str(result.status)
        summary = f"{result.model} {result.version} is {status}: {result.reason}" if result.reason else ""
        conditions.append(Condition(degraded_rule, labels, status == "degraded", summary=summary))
        conditions.append(Condition(unknown_rule, labels, status == "unknown", summary=summary))
    return conditions
