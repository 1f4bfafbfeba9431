"""SQL for the ``health_results`` table: every health cycle's verdict per deployed model version.

Rows hold a :class:`~opsctl.core.sla.HealthResult` as its ``to_json()`` document; ``model``, ``version``,
``status`` and ``at`` are columns so queries can filter on them. Old rows are pruned by the daemon's
housekeeping job (``RegistryTx.prune``, ``[daemon] retention_days``).

Every method takes either an open :class:`~opsctl.adapters.registry.RegistryTx` (to join a larger
transaction) or the :class:`~opsctl.adapters.registry.Registry` (one transaction of its own).

    store = HealthStore()
    store.record(registry, results)            # one write transaction
    latest = store.latest(registry, model="fraud")
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opsctl.adapters.registry import Registry, RegistryTx
from opsctl.clock import parse_utc, utc_iso
from opsctl.core.sla import Check, HealthResult, HealthStatus, Verdict

Target = Registry | RegistryTx


@contextmanager
def open_tx(target: Target, *, write: bool) -> Iterator[RegistryTx]:
    """The given transaction, or a new one on the registry (write or read)."""
    if isinstance(target, RegistryTx):
        yield target
        return
    with target.write() if write else target.read() as tx:
        yield tx


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def health_result_from_json(document: dict[str, Any]) -> HealthResult:
    """Rebuild a HealthResult from its ``to_json()`` document (infinite values come back as None)."""
    checks = tuple(
        Check(
            name=c["name"],
            value=_float(c["value"]),
            threshold=_float(c["threshold"]),
            unit=c["unit"],
            verdict=Verdict(c["verdict"]),
            reason=c["reason"],
        )
        for c in document["checks"]
    )
    return HealthResult(
        model=document["model"],
        version=document["version"],
        status=HealthStatus(document["status"]),
        checks=checks,
        sample_age_seconds=_float(document.get("sample_age_seconds")),
        evaluated_at=parse_utc(document["evaluated_at"]),
    )


class HealthStore:
    """Reads and writes ``health_results``."""

    def record(self, target: Target, results: Iterable[HealthResult]) -> int:
        """Append one row per result; returns how many were written."""
        rows = [
            (utc_iso(r.evaluated_at), r.model, r.version, r.status.value,
             json.dumps(r.to_json(), sort_keys=True, separators=(",", ":")))
            for r in results
        ]
        with open_tx(target, write=True) as tx:
            tx.conn.executemany(
                "INSERT INTO health_results(at, model, version, status, result) VALUES (?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def latest(self, target: Target, *, model: str | None = None) -> list[HealthResult]:
        """The newest result of every (model, version) ever recorded, ordered by model and version."""
        sql = (
            "SELECT result FROM health_results WHERE id IN "
            "(SELECT MAX(id) FROM health_results {where} GROUP BY model, version) ORDER BY model, version"
        )
        with open_tx(target, write=False) as tx:
            if model is None:
                rows = tx.conn.execute(sql.format(where="")).fetchall()
            else:
                rows = tx.conn.execute(sql.format(where="WHERE model = ?"), (model,)).fetchall()
        return [health_result_from_json(json.loads(row["result"])) for row in rows]

    def history(self, target: Target, model: str, version: str, *, limit: int = 100) -> list[HealthResult]:
        """The last ``limit`` results of one version, oldest first."""
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        with open_tx(target, write=False) as tx:
            rows = tx.conn.execute(
                "SELECT result FROM health_results WHERE model = ? AND version = ? ORDER BY id DESC LIMIT ?",
                (model, version, limit),
            ).fetchall()
        return [health_result_from_json(json.loads(row["result"])) for row in reversed(rows)]

    def count(self, target: Target) -> int:
        with open_tx(target, write=False) as tx:
            return int(tx.conn.execute("SELECT COUNT(*) FROM health_results").fetchone()[0])
