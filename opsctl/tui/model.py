"""The TUI's view state: what the daemon last told us, kept on the UI thread, no I/O.

The daemon's documents come in as JSON (``/v1/status``, SSE events); this module
turns them into per-model rows and tells the screens *which* rows changed, so a
refresh touches only those cells. Panels for health, alerts, canary and drift
read optional sections of the status document; when a section is absent the
value is ``None`` and the screen says "no data yet" instead of inventing one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.clock import parse_utc
from opsctl.documents import DriftSection, ModelDrift, StatusDocument, VersionDrift

COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("production", "production"),
    ("canary", "canary"),
    ("sla", "SLA"),
    ("alerts", "alerts"),
    ("drift", "drift"),
    ("trend", "p95 trend"),
)

# The overview's word for a model's drift verdict (see opsctl.documents.worst_drift_verdict).
DRIFT_CELL = {"drift": "DRIFT", "no_drift": "ok", "insufficient_data": "unknown", "no_reference": "no reference",
              "error": "error", None: "not checked"}

# The health checks whose values the sparklines follow (check name, label), newest last.
TRENDS: tuple[tuple[str, str], ...] = (("latency_p95", "p95 latency"), ("error_rate", "error rate"),
                                       ("request_rate", "request rate"))
TREND_POINTS = 60
_BLOCKS = "▁▂▃▄▅▆▇█"

NO_DATA = "no data yet"
FEED_LIMIT = 200


@dataclass(frozen=True)
class ModelRow:
    """One line of the overview; ``None`` means the daemon has not said (shown as "-")."""

    model: str
    production: str | None
    canary: str | None
    canary_weight: float
    sla: str | None
    alerts: int | None
    trend: str = ""
    # The model's drift verdict; None: the daemon publishes no drift section (or not this model).
    drift: ModelDrift | None = None

    def cells(self) -> dict[str, str]:
        canary = f"{self.canary} {self.canary_weight:g}%" if self.canary else "-"
        return {
            "model": self.model,
            "production": self.production or "-",
            "canary": canary,
            "sla": self.sla or "-",
            "alerts": "-" if self.alerts is None else str(self.alerts),
            "drift": "-" if self.drift is None or not self.drift.versions
                     else DRIFT_CELL.get(self.drift.verdict, str(self.drift.verdict)),
            "trend": self.trend or "-",
        }


# The unit of each trend, as the SLA checks carry it.
TREND_UNITS = {"latency_p95": "ms", "error_rate": "%", "request_rate": "req/s"}


def spark_scale(values: Iterable[float | None], width: int = 8) -> tuple[float, float] | None:
    """The scale :func:`spark_text` draws the last ``width`` values on: from zero (so a flat 20 ms reads flat,
    not as a cliff) to the highest value; None when there is none."""
    present = [v for v in list(values)[-width:] if v is not None]
    if not present:
        return None
    return min(0.0, min(present)), max(present)


def spark_label(values: Iterable[float | None], unit: str, width: int = 8) -> str:
    """A sparkline with its scale said: ``▂▄█ 0–412 ms``; '' when there is no value."""
    points = list(values)
    scale = spark_scale(points, width)
    if scale is None:
        return ""
    return f"{spark_text(points, width, scale=scale)} {scale[0]:.3g}–{scale[1]:.3g} {unit}".rstrip()


def spark_text(values: Iterable[float | None], width: int = 8, *,
               scale: tuple[float, float] | None = None) -> str:
    """A one-line sparkline of the last ``width`` values (a gap for a missing one); '' when none.

    ``scale`` (low, high) draws on a given scale, shared with other lines or from zero; without it
    the lowest value is the bottom block and the highest the top."""
    points = list(values)[-width:]
    present = [v for v in points if v is not None]
    if not present:
        return ""
    low, high = scale if scale is not None else (min(present), max(present))
    low, high = min(low, min(present)), max(high, max(present))
    span = high - low
    out = []
    for value in points:
        if value is None:
            out.append(" ")
        else:
            out.append(_BLOCKS[0 if span == 0 else min(7, int((value - low) / span * 7.999))])
    return "".join(out)


def _older(document: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    """Whether a canary document is an older state than ``than``: an earlier canary of the model, or an earlier
    revision of the same one. Documents without these numbers are never called older."""
    keys = [(d.get("id"), d.get("revision")) for d in (document, than)]
    if not all(isinstance(v, int) and not isinstance(v, bool) for pair in keys for v in pair):
        return False
    return keys[0] < keys[1]


def by_model(section: Any) -> dict[str, dict[str, Any]] | None:
    """A status section as ``{model: document}``; accepts a list of documents or a mapping; None if absent."""
    if section is None:
        return None
    if isinstance(section, Mapping):
        if "model" in section and isinstance(section.get("model"), str):
            return {section["model"]: dict(section)}
        for key in ("models", "items"):  # e.g. the health section: {"evaluated_at", "models": [...]}
            if isinstance(section.get(key), list):
                return by_model(section[key])
        return {str(k): v for k, v in section.items() if isinstance(v, Mapping)}
    if isinstance(section, list):
        out: dict[str, dict[str, Any]] = {}
        for item in section:
            if isinstance(item, Mapping):
                name = item.get("model") or (item.get("labels") or {}).get("model")
                if isinstance(name, str):
                    out[name] = dict(item)
        return out
    return None


def _first(document: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if key in document:
            return document[key]
    return None


def _alert_counts(section: Any) -> tuple[dict[str, int] | None, list[dict[str, Any]]]:
    """Firing alerts per model (labels.model), and the flat list of alert documents."""
    if section is None:
        return None, []
    items = section.get("alerts", section.get("items", [])) if isinstance(section, Mapping) else section
    if not isinstance(items, list):
        return None, []
    counts: dict[str, int] = {}
    alerts: list[dict[str, Any]] = []
    for alert in items:
        if not isinstance(alert, Mapping):
            continue
        alerts.append(dict(alert))
        model = alert.get("model") or (alert.get("labels") or {}).get("model")
        if isinstance(model, str) and alert.get("state", "firing") == "firing":
            counts[model] = counts.get(model, 0) + 1
    return counts, alerts


class Fleet:
    """Everything the screens show, updated from daemon documents; methods return what changed."""

    def __init__(self) -> None:
        self.deployments: dict[str, dict[str, Any]] = {}
        self.health: dict[str, dict[str, Any]] | None = None
        self.alert_counts: dict[str, int] | None = None
        self.alerts: list[dict[str, Any]] = []
        self.canaries: dict[str, dict[str, Any]] | None = None
        self.drift: dict[str, ModelDrift] | None = None
        self.drift_seconds: float | None = None
        # /v1/health: every deployed version's checks, per model; and the values seen per model over time.
        self.health_detail: dict[str, list[dict[str, Any]]] | None = None
        self.health_meta: dict[str, Any] = {}
        self.trends: dict[str, dict[str, deque[float | None]]] = {}
        self._trend_at: dict[str, str] = {}
        self._spark: dict[str, str] = {}  # the overview's p95 sparkline, redrawn only when a point is added
        self.alerts_fetched = False
        self.daemon: dict[str, Any] = {}
        self.jobs: list[dict[str, Any]] = []
        self.feed: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.feed_version = 0  # bumped whenever the feed's text would change
        self.status_at: datetime | None = None
        self.event_at: datetime | None = None
        self._rows: dict[str, ModelRow] = {}

    # -- reading ---------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return sorted(self.deployments)

    def row(self, model: str) -> ModelRow:
        deployment = self.deployments.get(model, {})
        health = (self.health or {}).get(model)
        canary = deployment.get("canary_version")
        return ModelRow(
            model=model,
            production=deployment.get("production_version"),
            canary=canary,
            canary_weight=float(deployment.get("canary_weight") or 0.0),
            sla=health.get("status") if health else None,
            alerts=None if self.alert_counts is None else self.alert_counts.get(model, 0),
            trend=self._spark.get(model, ""),
            drift=None if self.drift is None else self.drift.get(model),
        )

    def trend(self, model: str, check: str) -> list[float | None]:
        """The production version's values of one check, oldest first (what the sparklines draw)."""
        series = self.trends.get(model, {}).get(check)
        return list(series) if series else []

    @property
    def updated_at(self) -> datetime | None:
        """When the daemon last told us anything (status document or event)."""
        stamps = [t for t in (self.status_at, self.event_at) if t is not None]
        return max(stamps) if stamps else None

    # -- applying documents ------------------------------------------------------------------

    def apply_status(self, document: Mapping[str, Any], at: datetime) -> tuple[set[str], set[str], set[str]]:
        """Take a whole ``/v1/status`` document; returns (added, changed, removed) model names."""
        self.status_at = at
        self.daemon = dict(document.get("daemon") or {})
        self.jobs = list(document.get("jobs") or [])
        typed = StatusDocument.from_json(document)
        self.health = None if typed.health is None else {m.model: m.to_json() for m in typed.health.models}
        incoming_canaries = None if typed.canaries is None else by_model(list(typed.canaries))
        if incoming_canaries is not None and self.canaries:
            # A status document fetched before a canary event (or an action's answer) arrived must not bring the
            # older state back: an aborted canary would read as running again, its keys offered again.
            for model, held in self.canaries.items():
                if model in incoming_canaries and _older(incoming_canaries[model], held):
                    incoming_canaries[model] = held
        self.canaries = incoming_canaries
        self.apply_drift_section(typed.drift)
        incoming = {d["model"]: dict(d) for d in document.get("models") or [] if isinstance(d, Mapping)}
        removed = set(self.deployments) - set(incoming)
        self.deployments = incoming
        for name in removed:
            self._rows.pop(name, None)
        added, changed = self._diff(incoming)
        return added, changed, removed

    def apply_drift_section(self, section: DriftSection | None) -> None:
        """The status document's ``drift`` section (None: this daemon runs no drift checks)."""
        if section is None:
            self.drift = None
            return
        self.drift_seconds = section.drift_seconds
        self.drift = section.by_model()

    def apply_drift_event(self, event: Mapping[str, Any]) -> str | None:
        """An SSE ``drift`` event (one version checked): that model's verdict now; returns the model."""
        model, version = event.get("model"), event.get("version")
        if not isinstance(model, str) or not isinstance(version, str) or self.drift is None:
            return None  # without the section we do not know the model's other versions: wait for a fetch
        check = VersionDrift(version=version, role=str(event.get("role") or "production"),
                             verdict=event.get("verdict"), checked_at=event.get("checked_at"),
                             drifted_features=tuple(event.get("drifted_features") or ()),
                             share_drifted=event.get("share_drifted"), error=event.get("error"))
        self.drift[model] = self.drift.get(model, ModelDrift(model)).with_check(check)
        return model

    def apply_alerts(self, document: Mapping[str, Any] | None) -> None:
        """``/v1/alerts?all=1``: every alert (pending, firing, resolved); counts firing ones per model."""
        if document is None:
            return
        self.alerts_fetched = True
        self.alert_counts, self.alerts = _alert_counts(document)

    def apply_alert_event(self, transition: Mapping[str, Any]) -> set[str]:
        """An SSE ``alert`` transition (id, labels, from, to): the alert's new state; returns models touched."""
        alert_id = transition.get("id")
        if not isinstance(alert_id, str) or transition.get("to") is None:
            return set()
        for alert in self.alerts:
            if alert.get("id") == alert_id:
                alert["state"] = transition["to"]
                if "ack" in transition:
                    alert["ack"] = transition["ack"]
                break
        else:
            self.alerts.append({"id": alert_id, "rule": transition.get("rule"), "severity": transition.get("severity"),
                                "state": transition["to"], "labels": dict(transition.get("labels") or {}),
                                "summary": transition.get("summary", ""), "ack": transition.get("ack")})
        self.alert_counts, self.alerts = _alert_counts(self.alerts)
        self.alerts_fetched = True
        model = (transition.get("labels") or {}).get("model")
        return {model} if isinstance(model, str) else set()

    def apply_health(self, document: Mapping[str, Any] | None) -> set[str]:
        """``/v1/health``: per-version checks; a new evaluation adds a point to each model's trends.

        Returns the models whose trend moved (their overview rows need the new sparkline)."""
        if document is None:
            return set()
        self.health_meta = {k: v for k, v in document.items() if k != "models"}
        detail: dict[str, list[dict[str, Any]]] = {}
        for item in document.get("models") or []:
            if isinstance(item, Mapping) and isinstance(item.get("model"), str):
                detail.setdefault(item["model"], []).append(dict(item))
        self.health_detail = detail
        moved: set[str] = set()
        for model, versions in detail.items():
            production = next((v for v in versions if v.get("role") == "production"), versions[0])
            stamp = str(production.get("evaluated_at"))
            if self._trend_at.get(model) == stamp:
                continue  # the same evaluation fetched again: no new point
            self._trend_at[model] = stamp
            checks = {c.get("name"): c.get("value") for c in production.get("checks") or []}
            series = self.trends.setdefault(model, {})
            for name, _ in TRENDS:
                series.setdefault(name, deque(maxlen=TREND_POINTS)).append(_float(checks.get(name)))
            self._spark[model] = spark_text(series["latency_p95"], scale=spark_scale(series["latency_p95"]))
            moved.add(model)
        return moved

    def apply_canary(self, document: Mapping[str, Any]) -> str | None:
        """An SSE ``canary`` event carries the whole status document of that canary."""
        model = document.get("model")
        if not isinstance(model, str):
            return None
        if self.canaries is None:
            self.canaries = {}
        held = self.canaries.get(model)
        if held is not None and _older(document, held):
            return None  # an answer or event overtaken by a newer one: nothing changes
        self.canaries[model] = dict(document)
        return model

    def diff(self, names: Iterable[str]) -> tuple[set[str], set[str]]:
        """(added, changed) among ``names`` compared with what the screen shows."""
        return self._diff(names)

    def _diff(self, names: Iterable[str]) -> tuple[set[str], set[str]]:
        added: set[str] = set()
        changed: set[str] = set()
        for name in names:
            row = self.row(name)
            old = self._rows.get(name)
            if old is None:
                added.add(name)
            elif old != row:
                changed.add(name)
        return added, changed

    def committed(self, name: str) -> ModelRow | None:
        """The row as the screen currently shows it."""
        return self._rows.get(name)

    def commit(self, names: Iterable[str]) -> None:
        """Record that the screen now shows these rows."""
        for name in names:
            self._rows[name] = self.row(name)

    def apply_deployment(self, deployment: Mapping[str, Any], at: datetime) -> bool:
        """A ``deployment`` SSE event; True when the model is new to us."""
        self.event_at = at
        name = str(deployment["model"])
        new = name not in self.deployments
        self.deployments[name] = dict(deployment)
        return new

    def apply_event(self, kind: str, event: Mapping[str, Any], at: datetime) -> None:
        """Any SSE event goes to the feed (newest last, bounded)."""
        self.event_at = at
        data = event.get("data") or {}
        if kind == "job" and data.get("ok"):
            return  # routine successful job runs would push the audit trail off the panel
        if kind == "retrain" and data.get("event") in ("log", "progress", "held", "skipped"):
            # A training's log lines belong to the retrain panel; a held trigger's audit entry is its feed line.
            return
        if kind == "deployment":
            return  # the audit entry of the same change says what moved, who asked and why
        if not is_news(kind, data):
            return  # a check that found what it found last time: a heartbeat, not news
        if kind == "canary" and not canary_news(data, (self.canaries or {}).get(str(data.get("model")))):
            return  # an evaluation that changed nothing a reader sees (apply_canary runs after this)
        key = f"audit:{data.get('id')}" if kind == "audit" and "id" in data else f"{kind}:{event.get('id')}"
        self.feed[key] = {"kind": kind, "at": event.get("at"), "data": dict(data)}
        self.feed.move_to_end(key)
        self.feed_version += 1
        while len(self.feed) > FEED_LIMIT:
            self.feed.popitem(last=False)

    def apply_history(self, audit: Iterable[Mapping[str, Any]]) -> None:
        """The audit log's tail (``/v1/history``) as feed entries, keyed by audit id so SSE does not duplicate."""
        changed = False
        for entry in audit:
            # The audit log's entry is richer than the SSE event (actor, reason): it wins.
            key = f"audit:{entry['id']}"
            new = {"kind": "audit", "at": entry.get("at"), "data": dict(entry)}
            if self.feed.get(key) != new:
                self.feed[key] = new
                changed = True
        if not changed:
            return
        self.feed_version += 1
        ordered = sorted(self.feed.items(), key=lambda kv: kv[1].get("at") or "")
        self.feed = OrderedDict(ordered[-FEED_LIMIT:])


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


CANARY_COMMANDS = ("pause", "resume", "promote", "abort")
# Phases in which each canary command makes sense (the daemon refuses the others anyway).
CANARY_PHASES: dict[str, frozenset[str]] = {
    "pause": frozenset({"pending", "progressing", "promoting"}),
    "resume": frozenset({"paused"}),
    "promote": frozenset({"pending", "progressing", "paused", "promoting"}),
    "abort": frozenset({"pending", "progressing", "paused", "promoting"}),
}
_VERDICT_FIELD = {"drift": "verdict", "performance": "verdict", "health": "status"}


def is_news(kind: str, data: Mapping[str, Any]) -> bool:
    """Whether an event belongs in the feed: a periodic check only when its verdict changed.

    Drift, performance and health checks publish an event per run (every 30 s); only a verdict that differs
    from the previous one is a state change. A check with no verdict at all says nothing and is left out.
    """
    field = _VERDICT_FIELD.get(kind)
    if field is None:
        return True
    verdict = data.get(field)
    return verdict is not None and verdict != data.get("previous")


# Audit actions of the drift -> retrain -> canary story whose detail says what happened.
STORY_ACTIONS = frozenset({"drift", "retrain", "retrain-held", "retrain-skipped", "retrain-trained",
                           "retrain-decision"})


_CANARY_NEWS = ("canary_version", "phase", "stage", "weight", "failed_checks", "verdict", "actuator_error")


def canary_news(document: Mapping[str, Any], previous: Mapping[str, Any] | None) -> bool:
    """Whether a canary event says something the last one did not: phase, stage, weight, failed checks or the
    gates' verdict (every evaluation publishes one, every few seconds)."""
    if previous is None:
        return True
    return any(document.get(key) != previous.get(key) for key in _CANARY_NEWS)


def describe_event(entry: Mapping[str, Any]) -> str:
    """One human line for a feed entry."""
    kind, data = entry["kind"], entry.get("data") or {}
    at = entry.get("at") or ""
    when = at[11:19] if len(at) >= 19 else at
    if kind == "audit":
        action = str(data.get("action", "?"))
        who = f" by {data['actor']}" if data.get("actor") else ""
        if data.get("detail") and (action in STORY_ACTIONS or action.startswith("canary_")):
            # What happened, in its own words: a decision or a verdict is not a version change.
            return f"{when} {action} {data.get('model') or ''}: {data['detail']}{who}"
        versions = " -> ".join(v for v in (data.get("from_version"), data.get("to_version")) if v)
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"{when} {action} {data.get('model') or ''} {versions}{who}{reason}".rstrip()
    if kind == "job":
        verdict = "ok" if data.get("ok") else "FAILED"
        return f"{when} job {data.get('job', '?')} {verdict} {data.get('summary') or ''}".rstrip()
    if kind == "deployment":
        return f"{when} deployment {data.get('model', '?')} generation {data.get('generation', '?')}"
    if kind == "health":
        return (f"{when} health {data.get('model', '?')} {data.get('version', '')}"
                f" {data.get('previous') or '-'} -> {data.get('status', '?')}").rstrip()
    if kind == "alert" and "to" in data:
        model = (data.get("labels") or {}).get("model", "")
        return f"{when} alert {data.get('rule', '?')} {model} {data.get('from') or '-'} -> {data['to']}"
    if kind == "canary":
        why = data.get("transition") or data.get("reason") or ""
        gates = f" gates {data['verdict']}" if data.get("verdict") else ""
        failed = f" failed checks {data['failed_checks']}" if data.get("failed_checks") else ""
        return (f"{when} canary {data.get('model', '?')} {data.get('canary_version', '')} {data.get('phase', '?')}"
                f" stage {data.get('stage', '?')}/{data.get('stages', '?')} {data.get('weight', 0):g}%{gates}{failed}"
                f" {why}").rstrip()
    if kind == "alert" and data.get("source") and data.get("status"):
        # A canary's or a retrain's own notice (not an alert-engine transition): its state, and why.
        return (f"{when} alert {data['source']} {data.get('model', '')} {data['status']}:"
                f" {data.get('summary') or ''}").rstrip()
    if kind in ("drift", "performance"):
        features = list(data.get("drifted_features") or [])
        detail = f" ({len(features)} features: {', '.join(features[:3])}{'…' if len(features) > 3 else ''})"
        return (f"{when} {kind} {data.get('model', '?')} {data.get('version', '')}"
                f" {data.get('previous') or '-'} -> {data.get('verdict')}{detail if features else ''}")
    if kind == "retrain":
        status = data.get("status") or data.get("event") or ""
        candidate = f" {data['candidate_version']}" if data.get("candidate_version") else ""
        message = f": {data['message']}" if data.get("message") else ""
        return f"{when} retrain {data.get('model', '?')}{candidate} {status}{message}".rstrip()
    summary = data.get("summary") or data.get("reason") or data.get("model") or ""
    return f"{when} {kind} {summary}".rstrip()


def age_text(seconds: float | None) -> str:
    """'12s', '3m', '2h' — compact ages for panel titles."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def parse_at(value: str | None) -> datetime | None:
    return parse_utc(value) if value else None
