"""Helpers for the TUI tests: seed a daemon over its API, wait inside a Pilot session, read the screen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from tests.fixtures.daemon import DaemonProcess, upload

MODELS = {"fraud-detector": ("1.0.0", "1.1.0"), "churn": ("2.0.0",)}


def seed(daemon: DaemonProcess) -> None:
    """fraud-detector: 1.0.0 then 1.1.0 in production (so a rollback has somewhere to go); churn: 2.0.0."""
    http = daemon.http()
    for model, versions in MODELS.items():
        for version in versions:
            artifact = daemon.env.root / f"{model}-{version}.bin"
            artifact.write_bytes(f"{model} {version}".encode())
            response = http.post(f"/v1/models/{model}/versions",
                                 json={"version": version, "artifact": upload(http, artifact),
                                       "metrics": {"auc": 0.9}, "lineage": {"code_version": "abc123"}})
            assert response.status_code == 201, response.text
            response = http.post(f"/v1/models/{model}/promote", json={"version": version, "reason": "seed"})
            assert response.status_code == 200, response.text
    http.close()


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 10,
                   message: str = "condition") -> Any:
    """Let the app run until ``predicate()`` is truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await pilot.pause(0.02)


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (for assertions about what a person would read)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def cell(app: Any, model: str, column: str) -> str:
    table = app.overview.table
    if model not in table.rows:
        return ""
    return str(table.get_cell(model, column))
