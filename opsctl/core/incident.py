"""An incident's timeline: entries from every store merged in time order, its key moments, a postmortem.

Pure: the entries come from ``opsctl.adapters.incident_store``; nothing here reads a clock or a file.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> e = [TimelineEntry(t0 + timedelta(seconds=30), "alert", "firing", "fraud", "v2", "opsctld", "x", "", ()),
...      TimelineEntry(t0, "health", "degraded", "fraud", "v2", "opsctld", "x", "", ())]
>>> [x.kind for x in merge(e)]
['degraded', 'firing']
>>> summarize(merge(e)).detection_seconds
30.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.clock import parse_utc, utc_iso

# Tie-break for entries with the same timestamp: cause before effect.
_SOURCE_ORDER = {"health": 0, "drift": 1, "canary": 2, "alert": 3, "audit": 4, "retrain": 5}


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened: when, from which store, to what, done by whom, why, with its numbers."""

    at: datetime
    source: str  # audit | alert | health | canary | drift | retrain
    kind: str  # e.g. rollback, firing, resolved, degraded, healthy, fail, drift, succeeded
    model: str | None
    version: str | None
    who: str
    what: str
    why: str
    numbers: tuple[tuple[str, float], ...]

    def to_json(self) -> dict[str, Any]:
        return {"at": utc_iso(self.at), "source": self.source, "kind": self.kind, "model": self.model,
                "version": self.version, "who": self.who, "what": self.what, "why": self.why,
                "numbers": dict(self.numbers)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimelineEntry:
        """The inverse of :meth:`to_json` (a timeline the daemon sent)."""
        return cls(parse_utc(data["at"]), str(data["source"]), str(data["kind"]), data.get("model"),
                   data.get("version"), str(data.get("who", "")), str(data.get("what", "")),
                   str(data.get("why", "")), tuple((str(k), float(v)) for k, v in (data.get("numbers") or {}).items()))


def merge(entries: Iterable[TimelineEntry]) -> tuple[TimelineEntry, ...]:
    """All entries in time order (ties: health, drift, canary, alert, audit, retrain)."""
    return tuple(sorted(entries, key=lambda e: (e.at, _SOURCE_ORDER.get(e.source, 9))))


@dataclass(frozen=True)
class IncidentSummary:
    """The key moments of a timeline; None where the timeline does not show it."""

    first_degraded: datetime | None
    first_firing: datetime | None
    first_rollback: datetime | None
    last_resolved: datetime | None
    rollback_by: str | None
    rollback_reason: str | None

    @property
    def impact_start(self) -> datetime | None:
        moments = [m for m in (self.first_degraded, self.first_firing) if m is not None]
        return min(moments) if moments else None

    @property
    def detection_seconds(self) -> float | None:
        """From the first degraded health result to the first alert firing."""
        if self.first_degraded is None or self.first_firing is None:
            return None
        return (self.first_firing - self.first_degraded).total_seconds()

    @property
    def rollback_seconds(self) -> float | None:
        """From the start of impact to the first rollback."""
        start = self.impact_start
        if start is None or self.first_rollback is None:
            return None
        return (self.first_rollback - start).total_seconds()

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else utc_iso(moment)

        return {"impact_start": iso(self.impact_start), "first_degraded": iso(self.first_degraded),
                "first_alert_firing": iso(self.first_firing), "first_rollback": iso(self.first_rollback),
                "last_alert_resolved": iso(self.last_resolved), "rollback_by": self.rollback_by,
                "rollback_reason": self.rollback_reason, "detection_seconds": self.detection_seconds,
                "time_to_rollback_seconds": self.rollback_seconds}


def summarize(entries: Sequence[TimelineEntry]) -> IncidentSummary:
    """Key moments of a merged timeline."""
    degraded = next((e for e in entries if e.source == "health" and e.kind == "degraded"), None)
    firing = next((e for e in entries if e.source == "alert" and e.kind == "firing"), None)
    rollback = next((e for e in entries if e.source == "audit" and e.kind == "rollback"
                     and (firing is None or e.at >= (degraded or firing).at)), None)
    resolved = [e for e in entries if e.source == "alert" and e.kind == "resolved"]
    return IncidentSummary(
        first_degraded=degraded.at if degraded else None,
        first_firing=firing.at if firing else None,
        first_rollback=rollback.at if rollback else None,
        last_resolved=resolved[-1].at if resolved else None,
        rollback_by=rollback.who if rollback else None,
        rollback_reason=rollback.why if rollback else None,
    )


def _numbers(entry: TimelineEntry) -> str:
    return ", ".join(f"{name}={value:g}" for name, value in entry.numbers)


def render_markdown(entries: Sequence[TimelineEntry]) -> str:
    """The timeline as a Markdown table."""
    lines = ["| time (UTC) | source | model | what | who | why | numbers |", "|---|---|---|---|---|---|---|"]
    for e in entries:
        target = " ".join(x for x in (e.model, e.version) if x)
        cells = [utc_iso(e.at), e.source, target, e.what, e.who, e.why, _numbers(e)]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (not in the timeline)"
    minutes, secs = divmod(round(seconds), 60)
    return f"{seconds:.0f} s" if minutes == 0 else f"{minutes} min {secs} s ({seconds:.0f} s)"


def render_postmortem(entries: Sequence[TimelineEntry], since: datetime, until: datetime,
                      model: str | None) -> str:
    """A postmortem draft: what the timeline shows filled in, what only people know left as headings."""
    s = summarize(entries)

    def iso(moment: datetime | None) -> str:
        return utc_iso(moment) if moment else "unknown (not in the timeline)"

    scope = model or "all models"
    return "\n".join([
        f"# Postmortem draft: {scope}, {utc_iso(since)} to {utc_iso(until)}",
        "",
        "## Summary",
        "",
        "_What happened, in two sentences (to fill)._",
        "",
        f"- Impact window: {iso(s.impact_start)} to {iso(s.last_resolved)}",
        f"- First degraded health result: {iso(s.first_degraded)}",
        f"- First alert firing: {iso(s.first_firing)}",
        f"- Detection time (degraded to alert firing): {_duration(s.detection_seconds)}",
        f"- Rollback: {iso(s.first_rollback)} by {s.rollback_by or 'unknown'}"
        f" ({s.rollback_reason or 'no reason recorded'})",
        f"- Time to rollback (impact start to rollback): {_duration(s.rollback_seconds)}",
        f"- Last alert resolved: {iso(s.last_resolved)}",
        "",
        "## Impact",
        "",
        "_Users or requests affected, for how long (to fill)._",
        "",
        "## Timeline",
        "",
        render_markdown(entries),
        "## Root cause",
        "",
        "_To fill._",
        "",
        "## What went well",
        "",
        "_To fill._",
        "",
        "## What went badly",
        "",
        "_To fill._",
        "",
        "## Action items",
        "",
        "_Owner, due date (to fill)._",
        "",
    ])


@dataclass(frozen=True)
class IncidentTimeline:
    """A merged timeline over ``[since, until]`` (one model or all), with the stores it was read from."""

    since: datetime
    until: datetime
    model: str | None
    sources: tuple[str, ...]
    entries: tuple[TimelineEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"since": utc_iso(self.since), "until": utc_iso(self.until), "model": self.model,
                "sources": list(self.sources), "summary": summarize(self.entries).to_json(),
                "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IncidentTimeline:
        """The inverse of :meth:`to_json` (what ``GET /v1/incident/timeline`` returns)."""
        return cls(parse_utc(data["since"]), parse_utc(data["until"]), data.get("model"),
                   tuple(data.get("sources", ())), tuple(TimelineEntry.from_json(e) for e in data["entries"]))

    def markdown(self) -> str:
        return render_markdown(self.entries)

    def postmortem(self) -> str:
        return render_postmortem(self.entries, self.since, self.until, self.model)
