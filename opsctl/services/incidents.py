"""Use case: the incident timeline of the last while, and its postmortem draft."""

from __future__ import annotations

from datetime import timedelta

from opsctl.adapters.incident_store import read_entries
from opsctl.adapters.registry_reader import Where
from opsctl.clock import Clock
from opsctl.core.incident import IncidentTimeline, merge

__all__ = ["IncidentTimeline", "incident_timeline"]


def incident_timeline(registry: Where, clock: Clock, since_seconds: float,
                      model: str | None = None) -> IncidentTimeline:
    """Every recorded change, transition and verdict of the last ``since_seconds``, in time order."""
    until = clock.now()
    since = until - timedelta(seconds=since_seconds)
    entries, sources = read_entries(registry, since, model)
    return IncidentTimeline(since, until, model, tuple(sources), merge(e for e in entries if e.at <= until))
