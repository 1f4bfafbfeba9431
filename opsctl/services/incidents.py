"""Use case: the incident timeline of the last while, and its postmortem draft."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsctl.adapters.incident_store import read_entries
from opsctl.clock import Clock, parse_utc, utc_iso
from opsctl.core.incident import TimelineEntry, merge, render_markdown, render_postmortem, summarize


@dataclass(frozen=True)
class IncidentTimeline:
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


def incident_timeline(registry_path: Path, clock: Clock, since_seconds: float,
                      model: str | None = None) -> IncidentTimeline:
    """Every recorded change, transition and verdict of the last ``since_seconds``, in time order."""
    until = clock.now()
    since = until - timedelta(seconds=since_seconds)
    entries, sources = read_entries(registry_path, since, model)
    return IncidentTimeline(since, until, model, tuple(sources), merge(e for e in entries if e.at <= until))
