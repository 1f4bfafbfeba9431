"""What a promote or rollback did, in words: the registry change, then whether traffic followed.

Shared by the CLI and the TUI so both say the same thing. A change whose traffic half failed or is
unknown is never reported as done (``reached_traffic`` is False and the CLI exits 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsctl.domain import ChangeResult, Outcome
from opsctl.traffic import TrafficChange


@dataclass(frozen=True)
class ChangeReport:
    """The lines to print and the facts behind them (``-o json`` carries the facts as fields)."""

    lines: tuple[str, ...]
    reached_traffic: bool
    traffic: TrafficChange | None
    daemon_up: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"reached_traffic": self.reached_traffic, "daemon_up": self.daemon_up,
                "traffic": self.traffic.to_json() if self.traffic else None, "report": list(self.lines)}


def report_change(result: ChangeResult, *, daemon_up: bool | None, start_command: str) -> ChangeReport:
    """Describe ``result``; ``daemon_up`` False means the change was made on the registry directly."""
    if result.outcome is Outcome.NOOP:
        return ChangeReport((result.message,), True, None, daemon_up)
    raw = result.extra.get("traffic")
    traffic = TrafficChange.from_json(raw) if isinstance(raw, dict) else None
    where = "through the daemon" if daemon_up else "directly on the registry: the daemon is down"
    registry_line = f"registry: {result.message} (audit #{result.audit_id}; {where})"
    if traffic is None:
        return ChangeReport((registry_line, "traffic: unknown: the daemon did not say whether traffic followed;"
                             " check `opsctl rollback --verify`-style metrics before trusting it"),
                            False, None, daemon_up)
    if not traffic.applied:
        return ChangeReport((registry_line, f"traffic: NOT changed: {traffic.detail}"), False, traffic, daemon_up)
    if traffic.via == "routing_document" and daemon_up is False:
        line = (f"traffic: {traffic.detail}; routers reading the routing document follow within their refresh"
                " interval. Routers that only ask the daemon (GET /v1/routing) keep the old split until it"
                f" starts: start it with `{start_command}` (it keeps this change)")
    elif traffic.via == "routing_document":
        line = f"traffic: {traffic.detail}; the daemon serves the same split"
    else:
        line = f"traffic: {traffic.detail}"
    return ChangeReport((registry_line, line), True, traffic, daemon_up)
