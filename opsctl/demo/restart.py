"""Bringing a demo process back on request: ``opsctl demo restart daemon``.

A killed daemon stays down (the supervisor never restarts it by itself), so the game day can practise
the break-glass path: ``opsctl rollback`` with the daemon gone. Another terminal asks for it back by
dropping a request file into ``STATE_DIR/requests/``; the supervisor (``opsctl demo``) notices it
within half a second, starts the daemon again with the same command line, updates ``demo.json`` and
answers in ``requests/restart-daemon.done`` (JSON: ``ok``, ``pid``, ``message``). The new daemon
converges from the registry: it keeps whatever changed while it was away.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.demo.fleet import FleetLayout

RESTARTABLE = ("daemon",)


@dataclass(frozen=True)
class RestartAnswer:
    """The supervisor's answer to one restart request."""

    name: str
    ok: bool
    pid: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "pid": self.pid, "message": self.message}


def _requests(layout: FleetLayout) -> Path:
    return layout.root / "requests"


def _request_file(layout: FleetLayout, name: str) -> Path:
    return _requests(layout) / f"restart-{name}"


def _answer_file(layout: FleetLayout, name: str) -> Path:
    return _requests(layout) / f"restart-{name}.done"


def request_restart(layout: FleetLayout, name: str) -> None:
    """Ask the running demo's supervisor to start ``name`` again (clears any earlier answer)."""
    if name not in RESTARTABLE:
        raise ValueError(f"only {', '.join(RESTARTABLE)} can be restarted on request, not {name!r}")
    _requests(layout).mkdir(parents=True, exist_ok=True)
    _answer_file(layout, name).unlink(missing_ok=True)
    _write_atomically(_request_file(layout, name), json.dumps({"requested_at": time.time(), "by": os.getpid()}))


def pending(layout: FleetLayout) -> list[str]:
    """Names with an unanswered restart request (for the supervisor's loop)."""
    return [name for name in RESTARTABLE if _request_file(layout, name).exists()]


def answer(layout: FleetLayout, result: RestartAnswer) -> None:
    """The supervisor's answer; removes the request."""
    _write_atomically(_answer_file(layout, result.name), json.dumps(result.to_json()))
    _request_file(layout, result.name).unlink(missing_ok=True)


def wait_for_answer(layout: FleetLayout, name: str, *, timeout_seconds: float,
                    sleep: Callable[[float], None] = time.sleep) -> RestartAnswer | None:
    """The supervisor's answer, or None when it did not answer within ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    path = _answer_file(layout, name)
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            sleep(0.2)
            continue
        return RestartAnswer(str(data["name"]), bool(data["ok"]), data.get("pid"), str(data["message"]))
    return None


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)
