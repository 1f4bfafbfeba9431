"""Game day: when the TUI is connected to the demo fleet, inject and clear faults from the palette.

The demo (``opsctl demo``) writes ``demo.json`` in its root, the parent of the daemon's state dir and the
folder of its ``opsctl.toml``. Faults go through :class:`opsctl.demo.control.DemoControl`, the same client
``opsctl demo fault`` uses. Blocking: call from a thread worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from opsctl.demo.control import DemoControl


class GameDay:
    """The running demo a TUI is connected to; one line of text per action, for the feed."""

    def __init__(self, control: DemoControl) -> None:
        self.control = control

    @classmethod
    def detect(cls, places: Iterable[str | Path | None]) -> GameDay | None:
        """The first of ``places`` (or its parent) that holds a ``demo.json``; None when not a demo."""
        control = DemoControl.detect(places)
        return cls(control) if control is not None else None

    def models(self) -> list[str]:
        """The models the demo serves (empty when demo.json is gone or unreadable)."""
        return self.control.models()

    def inject(self, model: str, kind: str) -> str:
        with DemoControl(self.control.layout) as demo:  # one HTTP client per action: workers run concurrently
            results = demo.inject(model, kind)
        return "; ".join(f"injected {r.fault.kind} (level {r.fault.level:g}) into {model} at {r.server.url}"
                         + (" (the server exits now)" if r.exiting else "") for r in results)

    def clear(self, model: str) -> str:
        with DemoControl(self.control.layout) as demo:
            results = demo.clear(model)
        return "; ".join(f"cleared {', '.join(f.kind for f in r.cleared) or 'nothing'} on {model} at {r.server.url}"
                         for r in results)
