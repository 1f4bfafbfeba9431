"""The routing document: every model's desired traffic split, as a file next to the registry.

Routers (the SDK's :class:`~opsctl.sdk.router.RoutingTableClient`, the demo's model servers) read
it, so traffic follows a change even when the daemon is down: the registry adapter rewrites it after
every committed change of a deployment, whoever made it (the daemon, the one-shot CLI acting on the
registry directly, the canary job), and the daemon rewrites it from the registry when it starts.

Format (``routing.json`` in the registry's directory)::

    {"format": "opsctl-routing/1", "generation": 7, "written_at": "2026-...Z", "writer": "pid 4242",
     "models": {"fraud-detector": {"splits": [{"version": "1.0.0", "weight": 100.0}],
                                   "generation": 12, "updated_at": "2026-...Z"}}}

``generation`` (top level) grows by one with every rewrite; each model's ``generation`` is its
deployment's generation in the registry, so a router holding two answers (this file and the daemon's
``GET /v1/routing/{model}``) keeps the newer one.

Why a rewrite is safe: it happens under an exclusive ``flock`` and reads the deployments *inside*
the lock, after the caller's commit, so the last writer always publishes the newest committed state
(a writer killed between its commit and its rewrite leaves the file one change behind until the next
rewrite or daemon start, never ahead of the registry). The file is replaced atomically (temporary
file, ``fsync``, ``rename``, ``fsync`` of the directory): a reader sees the old or the new document,
never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.clock import utc_iso
from opsctl.domain import Deployment

FORMAT = "opsctl-routing/1"
FILE_NAME = "routing.json"


def document_path(registry_path: Path) -> Path:
    """Where the routing document of the registry at ``registry_path`` lives."""
    return Path(registry_path).parent / FILE_NAME


@dataclass(frozen=True)
class Publication:
    """The result of one rewrite: the document's generation, or the error that kept it from being written."""

    path: Path
    generation: int | None
    changed: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "generation": self.generation, "changed": self.changed,
                "error": self.error}


def _model_entry(deployment: Deployment) -> dict[str, Any]:
    return {
        "splits": [{"version": version, "weight": weight} for version, weight in deployment.splits()],
        "generation": deployment.generation,
        "updated_at": utc_iso(deployment.updated_at) if deployment.updated_at else None,
    }


class RoutingDocument:
    """Reads and (re)writes one routing document."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict[str, Any] | None:
        """The document as JSON, or None when there is none (or it cannot be parsed)."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return None
        return document

    def publish(self, read_deployments: Callable[[], Sequence[Deployment]]) -> Publication:
        """Rewrite the document from ``read_deployments()`` (called under the lock); never raises."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Read-only is enough for flock, so an operator can lock a file the daemon's user created.
            lock = os.open(self._lock_path, os.O_RDONLY | os.O_CREAT, 0o664)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                models = {d.model: _model_entry(d) for d in read_deployments()}
                current = self.read()
                generation = int(current.get("generation", 0)) if current else 0
                if current is not None and current.get("models") == models:
                    return Publication(self.path, generation, changed=False)
                generation += 1
                self._write({"format": FORMAT, "generation": generation,
                             "written_at": utc_iso(_now()), "writer": f"pid {os.getpid()}", "models": models})
                return Publication(self.path, generation, changed=True)
            finally:
                os.close(lock)  # closing releases the lock
        except Exception as error:  # the registry change is committed either way: report, never raise
            return Publication(self.path, None, changed=False, error=f"{type(error).__name__}: {error}")

    def _write(self, document: dict[str, Any]) -> None:
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(document, handle, sort_keys=True, indent=1)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _now() -> Any:
    from opsctl.clock import SystemClock

    return SystemClock().now()
