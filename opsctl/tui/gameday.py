"""Game day: when the TUI is connected to the demo fleet, inject and clear faults from the palette.

The demo (``opsctl demo``) writes ``demo.json`` in its root, the parent of the daemon's state dir and the
folder of its ``opsctl.toml``. Faults go to the demo's model servers exactly as ``opsctl demo fault`` sends
them (its helpers are reused, not copied); they are practice, not production changes, so they are not
audited: what the daemon then sees and does (alerts, canary rollbacks) is, as in a real incident.
Blocking: call from a thread worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opsctl.demo.faults import FaultKind
from opsctl.demo.fleet import FleetLayout, read_state
from opsctl.errors import NotFoundError

FAULT_KINDS = tuple(kind.value for kind in FaultKind)


class GameDay:
    """The running demo under ``root``."""

    def __init__(self, root: Path) -> None:
        self.layout = FleetLayout.at(root)

    @classmethod
    def detect(cls, places: Iterable[str | Path | None]) -> GameDay | None:
        """The first of ``places`` (or its parent) that holds a ``demo.json``; None when not a demo."""
        for place in places:
            if not place:
                continue
            path = Path(place)
            for candidate in (path, path.parent):
                if (candidate / "demo.json").is_file():
                    return cls(candidate)
        return None

    def _state(self) -> Any:
        state = read_state(self.layout)
        if state is None:
            raise NotFoundError("running demo", str(self.layout.root), "start one with `opsctl demo`")
        return state

    def models(self) -> list[str]:
        """The models the demo serves (empty when demo.json is gone or unreadable)."""
        try:
            state = self._state()
        except Exception:  # a half-written or vanished demo.json: offer nothing rather than fail the palette
            return []
        return sorted({server.model for server in state.servers})

    def inject(self, model: str, kind: str) -> str:
        from opsctl.cli.demo.handlers import _call, _http, _servers

        lines = []
        with _http() as client:
            for server in _servers(self._state(), model):
                answer = _call(client, "POST", server, "/fault", json={"kind": kind})
                applied = answer.get("fault") or {}
                lines.append(f"injected {applied.get('kind', kind)} (level {applied.get('level', '?')}) into {model}"
                             f" at {server.url}" + (" (the server exits now)" if answer.get("exiting") else ""))
        return "; ".join(lines)

    def clear(self, model: str) -> str:
        from opsctl.cli.demo.handlers import _call, _http, _servers

        lines = []
        with _http() as client:
            for server in _servers(self._state(), model):
                answer = _call(client, "DELETE", server, "/fault")
                kinds = ", ".join(f["kind"] for f in answer.get("cleared", [])) or "nothing"
                lines.append(f"cleared {kinds} on {model} at {server.url}")
        return "; ".join(lines)
