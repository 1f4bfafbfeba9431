"""The TUI's view state: what the daemon last told us, kept on the UI thread, no I/O.

The daemon's documents come in as JSON (``/v1/status``, SSE events); this module
turns them into per-model rows and tells the screens *which* rows changed, so a
refresh touches only those cells. Panels for health, alerts, canary and drift
read optional sections of the status document; when a section is absent the
value is ``None`` and the screen says "no data yet" instead of inventing one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.clock import parse_utc

# Names under which later subsystems may publish their sections in /v1/status.
HEALTH_KEYS = ("health", "sla")
ALERT_KEYS = ("alerts",)
CANARY_KEYS = ("canaries", "canary")
DRIFT_KEYS = ("drift",)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("production", "production"),
    ("canary", "canary"),
    ("sla", "SLA"),
    ("alerts", "alerts"),
)

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

    def cells(self) -> dict[str, str]:
        canary = f"{self.canary} {self.canary_weight:g}%" if self.canary else "-"
        return {
            "model": self.model,
            "production": self.production or "-",
            "canary": canary,
            "sla": self.sla or "-",
            "alerts": "-" if self.alerts is None else str(self.alerts),
        }


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
        self.drift: dict[str, dict[str, Any]] | None = None
        self.daemon: dict[str, Any] = {}
        self.jobs: list[dict[str, Any]] = []
        self.feed: OrderedDict[str, dict[str, Any]] = OrderedDict()
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
        )

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
        self.health = by_model(_first(document, HEALTH_KEYS))
        self.alert_counts, self.alerts = _alert_counts(_first(document, ALERT_KEYS))
        self.canaries = by_model(_first(document, CANARY_KEYS))
        self.drift = by_model(_first(document, DRIFT_KEYS))
        incoming = {d["model"]: dict(d) for d in document.get("models") or [] if isinstance(d, Mapping)}
        removed = set(self.deployments) - set(incoming)
        self.deployments = incoming
        for name in removed:
            self._rows.pop(name, None)
        added, changed = self._diff(incoming)
        return added, changed, removed

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
        key = f"audit:{data.get('id')}" if kind == "audit" and "id" in data else f"{kind}:{event.get('id')}"
        self.feed[key] = {"kind": kind, "at": event.get("at"), "data": dict(data)}
        self.feed.move_to_end(key)
        while len(self.feed) > FEED_LIMIT:
            self.feed.popitem(last=False)

    def apply_history(self, audit: Iterable[Mapping[str, Any]]) -> None:
        """The audit log's tail (``/v1/history``) as feed entries, keyed by audit id so SSE does not duplicate."""
        for entry in audit:
            # The audit log's entry is richer than the SSE event (actor, reason): it wins.
            self.feed[f"audit:{entry['id']}"] = {"kind": "audit", "at": entry.get("at"), "data": dict(entry)}
        ordered = sorted(self.feed.items(), key=lambda kv: kv[1].get("at") or "")
        self.feed = OrderedDict(ordered[-FEED_LIMIT:])


def describe_event(entry: Mapping[str, Any]) -> str:
    """One human line for a feed entry."""
    kind, data = entry["kind"], entry.get("data") or {}
    at = entry.get("at") or ""
    when = at[11:19] if len(at) >= 19 else at
    if kind == "audit":
        versions = " -> ".join(v for v in (data.get("from_version"), data.get("to_version")) if v)
        who = f" by {data['actor']}" if data.get("actor") else ""
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"{when} {data.get('action', '?')} {data.get('model') or ''} {versions}{who}{reason}".rstrip()
    if kind == "job":
        verdict = "ok" if data.get("ok") else "FAILED"
        return f"{when} job {data.get('job', '?')} {verdict} {data.get('summary') or ''}".rstrip()
    if kind == "deployment":
        return f"{when} deployment {data.get('model', '?')} generation {data.get('generation', '?')}"
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
