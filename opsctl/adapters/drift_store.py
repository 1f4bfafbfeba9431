"""SQL for ``drift_results``, and the per-version cache of reference summaries.

``drift_results`` holds one row per check and model version: ``kind`` is ``drift`` (data and
prediction drift against the version's reference sample) or ``performance`` (metrics of the labelled
window against the version's baseline); ``verdict`` is the check's one-word outcome (see
:data:`DRIFT_VERDICTS` and :mod:`opsctl.core.performance`); ``report`` the whole result as JSON. Old
rows are pruned by the daemon's housekeeping job (``RegistryTx.prune``).

:class:`SummaryCache` summarizes a version's reference CSV once
(:func:`opsctl.core.drift.summarize_reference`) and keeps the summary under
``STATE_DIR/summaries/<reference sha256>.b<psi_bins>.npz`` (plain arrays, no pickle): the CSV is
read and checked against its registered sha256 once per version, never on the scheduled path.

    store = DriftStore()
    store.record(registry, DriftResult(now, "fraud", "v3", "drift", "drift", document))
    store.latest(registry, "fraud", "drift")            # newest row per version
    summary = SummaryCache(state_dir / "summaries", artifacts).get(name, sha256, psi_bins=10)
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.adapters.health_store import Target, open_tx
from opsctl.clock import parse_utc, utc_iso
from opsctl.errors import IntegrityError, UsageError

if TYPE_CHECKING:
    from opsctl.adapters.artifact_storage import ArtifactStorage
    from opsctl.core.drift import DriftReport, ReferenceSummary

KINDS = ("drift", "performance")
# Verdicts of a drift check: the dataset verdict, or why there is none.
DRIFT_VERDICTS = ("drift", "no_drift", "insufficient_data", "no_reference", "error")
# Reference columns compared with the logged model outputs (prediction drift).
PREDICTION_SCORE = "prediction_score"
PREDICTED_CLASS = "predicted_class"


@dataclass(frozen=True)
class DriftResult:
    """One stored check of one model version; ``document`` is the check's JSON document."""

    at: datetime
    model: str
    version: str
    kind: str
    verdict: str
    document: dict[str, Any]
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": utc_iso(self.at), "model": self.model, "version": self.version,
                "kind": self.kind, "verdict": self.verdict, **self.document}


def _row(row: Any) -> DriftResult:
    return DriftResult(at=parse_utc(row["at"]), model=row["model"], version=row["version"], kind=row["kind"],
                       verdict=row["verdict"], document=json.loads(row["report"]), id=int(row["id"]))


class DriftStore:
    """Reads and writes ``drift_results``."""

    def record(self, target: Target, result: DriftResult) -> int:
        """Append one row; returns its id."""
        payload = json.dumps(result.document, sort_keys=True, separators=(",", ":"), allow_nan=False)
        with open_tx(target, write=True) as tx:
            return tx.insert_id(
                "INSERT INTO drift_results(at, model, version, kind, verdict, report) VALUES (?, ?, ?, ?, ?, ?)",
                (utc_iso(result.at), result.model, result.version, result.kind, result.verdict, payload),
            )

    def latest(self, target: Target, model: str, kind: str, *, version: str | None = None) -> list[DriftResult]:
        """The newest result of every version of ``model`` (or of one version), ordered by version."""
        where, params = "model = ? AND kind = ?", [model, kind]
        if version is not None:
            where += " AND version = ?"
            params.append(version)
        with open_tx(target, write=False) as tx:
            rows = tx.conn.execute(
                f"SELECT * FROM drift_results WHERE id IN (SELECT MAX(id) FROM drift_results WHERE {where} "
                "GROUP BY version) ORDER BY version", params,
            ).fetchall()
        return [_row(r) for r in rows]

    def latest_everywhere(self, target: Target, kind: str) -> dict[tuple[str, str], DriftResult]:
        """The newest result of every (model, version), in one query (the status page lists them all)."""
        with open_tx(target, write=False) as tx:
            rows = tx.conn.execute(
                "SELECT * FROM drift_results WHERE id IN (SELECT MAX(id) FROM drift_results WHERE kind = ? "
                "GROUP BY model, version)", (kind,),
            ).fetchall()
        results = [_row(r) for r in rows]
        return {(r.model, r.version): r for r in results}

    def history(self, target: Target, model: str, kind: str, *, limit: int = 20) -> list[DriftResult]:
        """The last ``limit`` results of ``model`` (every version), newest first."""
        if limit <= 0:
            raise UsageError(f"history must be a positive number of results, got {limit}")
        with open_tx(target, write=False) as tx:
            rows = tx.conn.execute(
                "SELECT * FROM drift_results WHERE model = ? AND kind = ? ORDER BY id DESC LIMIT ?",
                (model, kind, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def count(self, target: Target, *, model: str | None = None) -> int:
        with open_tx(target, write=False) as tx:
            if model is None:
                return int(tx.conn.execute("SELECT COUNT(*) FROM drift_results").fetchone()[0])
            return int(tx.conn.execute("SELECT COUNT(*) FROM drift_results WHERE model = ?", (model,)).fetchone()[0])


def drift_report_from_json(document: dict[str, Any]) -> DriftReport:
    """Rebuild a :class:`~opsctl.core.drift.DriftReport` from its ``to_json()`` document (for Markdown)."""
    from opsctl.core.drift import DriftPolicy, DriftReport, FeatureDrift

    try:
        features = tuple(FeatureDrift.from_json(feature) for feature in document["features"])
        policy = DriftPolicy(**document["policy"])
        return DriftReport(features=features, dataset_drift=document["dataset_drift"],
                           drifted_count=int(document["drifted_count"]), share_drifted=document["share_drifted"],
                           rows_reference=int(document["rows_reference"]),
                           rows_current=int(document["rows_current"]), policy=policy)
    except (KeyError, TypeError, ValueError) as error:
        raise IntegrityError(f"not a drift report document: {error}") from error


# --------------------------------------------------------------------------- reference summaries


def _is_text(series: Any) -> bool:
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)


class SummaryCache:
    """Reference summaries by reference sha256: built once, kept on disk and (a few) in memory.

    Which columns are categorical is read from the reference itself: text and boolean columns are
    categorical, numerical columns numerical (a category coded as numbers is therefore tested as a
    number; write such codes as text, e.g. ``"c07"``), except ``predicted_class``, always a category.
    """

    def __init__(self, directory: str | os.PathLike[str], artifacts: ArtifactStorage, *, keep_in_memory: int = 16
                 ) -> None:
        self.directory = Path(directory)
        self.artifacts = artifacts
        self.keep_in_memory = keep_in_memory
        self._memory: OrderedDict[str, ReferenceSummary] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self.built = 0  # summaries computed from a CSV by this cache (not loaded from disk)

    def path_for(self, sha256: str, psi_bins: int) -> Path:
        if not sha256 or not all(c in "0123456789abcdef" for c in sha256):
            raise IntegrityError(f"refusing reference sha256 {sha256!r}: not a hex digest")
        return self.directory / f"{sha256}.b{psi_bins}.npz"

    def get(self, reference_name: str, sha256: str, *, psi_bins: int = 10) -> ReferenceSummary:
        """The summary of a registered reference sample (IntegrityError if the CSV fails verification)."""
        from opsctl.core.drift import ReferenceSummary

        path = self.path_for(sha256, psi_bins)
        key = path.name
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one builder per summary; the others wait and then load its file
            with self._lock:
                found = self._memory.get(key)
            if found is None:
                summary: ReferenceSummary | None = None
                if path.is_file():
                    try:
                        summary = ReferenceSummary.load(path)
                    except IntegrityError:
                        summary = None  # a torn or foreign file: build it again
                if summary is None:
                    summary = self._build(reference_name, sha256, psi_bins)
                    self._write(path, summary.to_bytes())
                found = summary
            with self._lock:
                self._memory[key] = found
                self._memory.move_to_end(key)
                while len(self._memory) > self.keep_in_memory:
                    self._memory.popitem(last=False)
        return found

    def _build(self, reference_name: str, sha256: str, psi_bins: int) -> ReferenceSummary:
        from opsctl.adapters.frames import read_frame
        from opsctl.core.drift import summarize_reference

        source = self.artifacts.verified_path(reference_name, sha256)
        frame = read_frame(source)  # the stored name keeps the file's suffix: .csv or .parquet
        if PREDICTED_CLASS in frame.columns:  # a class is a category even when it is written as a number
            frame[PREDICTED_CLASS] = frame[PREDICTED_CLASS].astype("string")
        categorical = [name for name in frame.columns if _is_text(frame[name])]
        summary = summarize_reference(frame, categorical, psi_bins=psi_bins)
        self.built += 1
        return summary

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
