"""Counts of model changes (promotes, rollbacks, canary steps) in the audit log, read incrementally.

The audit log is append-only and never pruned, so counting its rows gives a counter that survives daemon
restarts and includes changes made directly on the registry while the daemon was down (counted when the
daemon reads them). Each :meth:`ModelChangeCounts.refresh` reads only the rows after the last one read.
"""

from __future__ import annotations

import threading
from contextlib import closing

from opsctl.adapters.registry_reader import Where, connect_read_only
from opsctl.core.model_changes import CHANGE_KINDS, is_model_change
from opsctl.errors import OpsctlError, StorageError


class ModelChangeCounts:
    """(model, change) -> how many successful changes the audit log holds, for every model the audit log
    names and every change kind (0 until it happens)."""

    def __init__(self, registry: Where) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._last_id = 0
        self._counts: dict[tuple[str, str], int] = {}
        self._models: set[str] = set()

    def refresh(self) -> None:
        """Count the audit rows written since the last refresh (StorageError when the registry cannot be read)."""
        with self._lock:
            try:
                with closing(connect_read_only(self._registry)) as conn:
                    rows = conn.execute("SELECT id, model, action, outcome FROM audit_log WHERE id > ? ORDER BY id",
                                        (self._last_id,)).fetchall()
            except OpsctlError as error:
                raise StorageError(f"cannot read the audit log in {self._registry}: {error}") from error
            for row in rows:
                self._last_id = row["id"]
                if row["model"]:
                    self._models.add(row["model"])
                if row["outcome"] == "ok" and row["model"] and is_model_change(row["action"]):
                    key = (row["model"], row["action"])
                    self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {(model, kind): self._counts.get((model, kind), 0) for model in sorted(self._models)
                    for kind in CHANGE_KINDS}
