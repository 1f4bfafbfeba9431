"""SQL for the ``retrain_runs`` table: one row per retraining run.

Rows hold a :class:`~opsctl.core.retrain.RetrainRun` as its ``to_json()`` document; ``model``,
``trigger``, ``status``, the timestamps and ``candidate_version`` are columns so queries can filter
on them. Methods take an open :class:`~opsctl.adapters.registry.RegistryTx`, so the single-flight
check and the insert of a new run share one ``BEGIN IMMEDIATE`` transaction (and so one lock,
across threads and processes).
"""

from __future__ import annotations

import json

from opsctl.adapters.registry import RegistryTx
from opsctl.clock import utc_iso
from opsctl.core.retrain import ACTIVE_STATUSES, RetrainRun


def _from_row(row: object) -> RetrainRun:
    return RetrainRun.from_json(json.loads(row["run"]))  # type: ignore[index]


def insert_run(tx: RegistryTx, run: RetrainRun) -> None:
    tx.conn.execute(
        """INSERT INTO retrain_runs(id, model, trigger, status, started_at, finished_at, candidate_version, run)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (run.id, run.model, run.trigger, run.status.value, utc_iso(run.started_at),
         utc_iso(run.finished_at) if run.finished_at else None, run.candidate_version,
         json.dumps(run.to_json(), sort_keys=True)),
    )


def update_run(tx: RegistryTx, run: RetrainRun) -> None:
    tx.conn.execute(
        "UPDATE retrain_runs SET status = ?, finished_at = ?, candidate_version = ?, run = ? WHERE id = ?",
        (run.status.value, utc_iso(run.finished_at) if run.finished_at else None, run.candidate_version,
         json.dumps(run.to_json(), sort_keys=True), run.id),
    )


def get_run(tx: RegistryTx, run_id: str) -> RetrainRun | None:
    row = tx.conn.execute("SELECT run FROM retrain_runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else _from_row(row)


def latest_run(tx: RegistryTx, model: str) -> RetrainRun | None:
    row = tx.conn.execute(
        "SELECT run FROM retrain_runs WHERE model = ? ORDER BY started_at DESC, rowid DESC LIMIT 1", (model,)
    ).fetchone()
    return None if row is None else _from_row(row)


def list_runs(tx: RegistryTx, model: str | None = None, limit: int = 50) -> list[RetrainRun]:
    """Newest first."""
    if model is None:
        rows = tx.conn.execute(
            "SELECT run FROM retrain_runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = tx.conn.execute(
            "SELECT run FROM retrain_runs WHERE model = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (model, limit)).fetchall()
    return [_from_row(row) for row in rows]


def active_runs(tx: RegistryTx) -> list[RetrainRun]:
    statuses = sorted(s.value for s in ACTIVE_STATUSES)
    marks = ", ".join("?" for _ in statuses)
    rows = tx.conn.execute(
        f"SELECT run FROM retrain_runs WHERE status IN ({marks}) ORDER BY started_at", statuses).fetchall()
    return [_from_row(row) for row in rows]
