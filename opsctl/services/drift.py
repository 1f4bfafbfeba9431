"""Ingestion, the live window, drift and performance checks, tied together for the daemon.

Three entry points, each called by a scheduled job in a worker thread (never on the event loop):

* :meth:`DriftService.ingest` (``[jobs] ingest_seconds``): finds the SDK's logs in the ``[ingest]
  log_dirs`` (``{model}.predictions.jsonl`` and ``{model}.feedback.jsonl``), reads what was appended
  since the last tick with one :class:`~opsctl.adapters.ingest.LogTailer` per file, adds the records
  to the bounded per-model :class:`~opsctl.core.window.WindowSet`, then commits the tailer's offset to
  the registry (``ingest_offsets``). Delivery is at-least-once and the window ignores a prediction id
  it already holds, so a crash between the two re-reads a batch without double-counting it.
  :meth:`DriftService.ingest_records` takes the same records from ``POST /v1/ingest``.
* :meth:`DriftService.check_drift` (``[jobs] drift_seconds``): for every deployed version (production
  and canary) with a reference sample, the window's rows of that version against the version's
  reference summary (built once, :class:`~opsctl.adapters.drift_store.SummaryCache`), under
  ``[drift]``. Prediction drift: a reference column named ``prediction_score`` is compared with the
  logged ``score``, one named ``predicted_class`` with the logged ``prediction``. Reference columns that
  no record of the window carries (a label column, say) are left out and listed as ``unlogged``.
* :meth:`DriftService.check_performance` (``[jobs] performance_seconds``): the labelled rows of each
  deployed version against its registered baseline metrics, under ``[performance]``.

Every result is stored in ``drift_results``, exported as gauges, announced as an SSE event (``drift``,
``performance``), and turned into alert conditions for :data:`DATA_DRIFT` and
:data:`PERFORMANCE_DEGRADED` (source ``drift``), stepped by the alert engine over the states stored in
the registry. A production version that drifts or degrades asks for a retraining run through the
``retrain`` hook (the retraining service applies its own single flight and cooldown).

The statistics run in the job's thread: a check works on the window (at most
``[window] max_kept_records`` rows per model) against a precomputed summary, a few milliseconds per
version, and numpy releases the GIL while it sorts; a process pool would cost more in pickling the
window than it saves.

The window lives in memory: after a restart the offsets make sure no line is read twice, and the
window fills again from the lines written since (a restarted daemon judges fewer rows for up to one
window length).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.adapters.alert_store import AlertStore
from opsctl.adapters.drift_gauges import DriftGauges
from opsctl.adapters.drift_store import PREDICTED_CLASS, PREDICTION_SCORE, DriftResult, DriftStore, SummaryCache
from opsctl.adapters.ingest import LogTailer, Malformed, Offset, OffsetStore
from opsctl.adapters.registry import Registry
from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.alerts import AlertRule, AlertSource, Condition, Notification, Severity, step
from opsctl.core.performance import BaselineMetrics, canonical_label, evaluate_window, severity_of
from opsctl.core.window import PredictionRecord, Record, WindowSet, WindowSnapshot, WindowStats
from opsctl.documents import DriftSection, ModelDrift, VersionDrift
from opsctl.domain import Actor, AuditEvent, Outcome
from opsctl.errors import NotFoundError, OpsctlError

if TYPE_CHECKING:
    import pandas as pd

    from opsctl.adapters.alert_store import AlertTransition
    from opsctl.adapters.artifact_storage import ArtifactStorage
    from opsctl.config import Settings
    from opsctl.core.drift import ReferenceSummary

log = logging.getLogger("opsctl.drift")

PREDICTIONS_SUFFIX = ".predictions.jsonl"
FEEDBACK_SUFFIX = ".feedback.jsonl"
SCORE_COLUMN = PREDICTION_SCORE
CLASS_COLUMN = PREDICTED_CLASS
_POLLS_PER_TICK = 16  # per file and tick, each at most max_bytes_per_poll: bounds one tick's work

DATA_DRIFT = AlertRule(
    "ModelDataDrift", Severity.WARNING, for_seconds=0.0, source=AlertSource.DRIFT,
    annotations={"description": "The live inputs or predictions of a deployed model version drifted from its"
                                " reference sample (see opsctl drift MODEL)."},
)
PERFORMANCE_DEGRADED = AlertRule(
    "ModelPerformanceDegraded", Severity.CRITICAL, for_seconds=0.0, source=AlertSource.DRIFT,
    annotations={"description": "Accuracy, AUC, precision or recall of a deployed model version on labelled"
                                " traffic fell below its baseline (see opsctl performance MODEL)."},
)
# Who records a drift verdict change in the audit log: the drift job.
DRIFT_ACTOR = Actor(user="opsctld", uid=None, via="drift")
# The same alert at warning: a significant drop, but not confidently twice the allowed one.
PERFORMANCE_DEGRADED_WARNING = replace(PERFORMANCE_DEGRADED, severity=Severity.WARNING)

EventSink = Callable[[str, dict[str, Any]], None]
# (model, trigger "drift" | "performance", reason) -> None; raises OpsctlError when it cannot.
RetrainHook = Callable[[str, str, str], None]
NotifyHook = Callable[[Sequence[Notification]], None]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Target:
    """A deployed version the checks look at."""

    model: str
    version: str
    role: str  # production | canary
    reference_name: str | None
    reference_sha256: str | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class IngestTick:
    """What one ingest tick did."""

    files: int
    records: int
    malformed: int
    committed: int

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class IngestReceipt:
    """What ``POST /v1/ingest`` added to the window."""

    accepted: int
    predictions: int
    feedback: int
    duplicates: int  # prediction ids the window already held (ignored)

    def to_json(self) -> dict[str, int]:
        return {"accepted": self.accepted, "predictions": self.predictions, "feedback": self.feedback,
                "duplicates": self.duplicates}


@dataclass(frozen=True)
class WindowInfo:
    """The size of one model's live window."""

    rows: int
    seen: int
    labelled: int
    sampled: bool
    inclusion_probability: float

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "seen": self.seen, "labelled": self.labelled, "sampled": self.sampled,
                "inclusion_probability": self.inclusion_probability}


@dataclass(frozen=True)
class VersionCheck:
    """The newest stored check of one deployed version (None: not checked yet)."""

    version: str
    role: str  # production | canary
    result: DriftResult | None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "role": self.role,
                "result": None if self.result is None else self.result.to_json()}


@dataclass(frozen=True)
class CheckReport:
    """``GET /v1/drift/{model}`` (kind ``drift``) or ``GET /v1/performance/{model}`` (kind ``performance``)."""

    model: str
    kind: str  # drift | performance
    versions: tuple[VersionCheck, ...]
    window: WindowInfo
    interval_seconds: float  # of the job that makes these checks
    history: tuple[DriftResult, ...] | None = None  # newest first, when asked for

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"model": self.model, "versions": [v.to_json() for v in self.versions],
                                    "window": self.window.to_json(), f"{self.kind}_seconds": self.interval_seconds}
        if self.history is not None:
            document["history"] = [_history_row(r) for r in self.history]
        return document


@dataclass(frozen=True)
class IngestedFile:
    """One log file the ingest job follows, with its counters."""

    path: str
    kind: str  # predictions | feedback
    records: int
    malformed: int
    rotations: int
    truncations: int
    lost_rotations: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "records": self.records, "malformed": self.malformed,
                "rotations": self.rotations, "truncations": self.truncations, "lost_rotations": self.lost_rotations}


@dataclass(frozen=True)
class IngestStatus:
    """The ``ingest`` section of ``/v1/status``: what ingestion read and what the window holds."""

    log_dirs: tuple[str, ...]
    last_ingest_at: datetime | None
    files: tuple[IngestedFile, ...]
    http_records: int
    recent_malformed: tuple[Malformed, ...]
    window: WindowStats
    kept: Mapping[str, int]  # predictions held per model
    pending_labels: int
    summaries_built: int

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files) + self.http_records

    @property
    def malformed(self) -> int:
        return sum(f.malformed for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "log_dirs": list(self.log_dirs),
            "last_ingest_at": None if self.last_ingest_at is None else utc_iso(self.last_ingest_at),
            "files": [f.to_json() for f in self.files],
            "records": self.records,
            "http_records": self.http_records,
            "malformed": self.malformed,
            "recent_malformed": [m.to_json() for m in self.recent_malformed],
            "window": {**self.window.to_json(), "kept": dict(self.kept), "pending_labels": self.pending_labels},
            "summaries_built": self.summaries_built,
        }


@dataclass
class _FileState:
    tailer: LogTailer
    kind: str  # predictions | feedback
    committed: Offset | None = None
    records: int = 0
    malformed: int = 0


def _remove(gauge: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never exported, or already removed
        gauge.remove(*labels)


class DriftService:
    """See the module docstring. Thread-safe: ingestion, checks and API reads may run concurrently."""

    def __init__(
        self,
        registry: Registry,
        artifacts: ArtifactStorage,
        *,
        settings: Callable[[], Settings],
        summaries_dir: Path,
        offsets: OffsetStore,
        clock: Clock | None = None,
        events: EventSink | None = None,
        gauges: DriftGauges | None = None,
        notify: NotifyHook | None = None,
        retrain: RetrainHook | None = None,
        config_dir: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self._settings = settings
        self.clock = clock or SystemClock()
        self.store = DriftStore()
        self.alert_store = AlertStore()
        self.summaries = SummaryCache(summaries_dir, artifacts)
        self.offsets = offsets
        self._events = events
        self.gauges = gauges
        self._notify = notify
        self._retrain = retrain
        self.config_dir = config_dir
        current = settings()
        seed = current.section("ingest").seed
        self.windows = WindowSet(current.window, rng=rng or random.Random(seed))
        self._lock = threading.Lock()  # guards the window (WindowSet is single-owner)
        self._ingest_lock = threading.Lock()  # one ingest tick at a time
        self._files: dict[str, _FileState] = {}
        self._recent_malformed: deque[Malformed] = deque(maxlen=20)
        self._http_records = 0
        self._last_ingest_at: datetime | None = None
        self._exported_drift: dict[tuple[str, str], set[str]] = {}
        self._exported_performance: dict[tuple[str, str], set[str]] = {}

    @property
    def settings(self) -> Settings:
        return self._settings()

    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self._events is None:
            return
        try:
            self._events(kind, payload)
        except Exception:  # a subscriber must never break a check
            log.exception("publishing a %s event failed", kind)

    # ------------------------------------------------------------------------------- ingestion

    def log_dirs(self) -> list[Path]:
        dirs = []
        for entry in self.settings.section("ingest").log_dirs:
            path = Path(entry).expanduser()
            if not path.is_absolute() and self.config_dir is not None:
                path = self.config_dir / path
            dirs.append(path)
        return dirs

    def _discover(self) -> list[tuple[Path, str]]:
        found: list[tuple[Path, str]] = []
        for directory in self.log_dirs():
            try:
                entries = sorted(directory.iterdir())
            except FileNotFoundError:
                continue
            except OSError as error:
                log.warning("cannot list log dir %s: %s", directory, error)
                continue
            for entry in entries:
                if entry.name.endswith(PREDICTIONS_SUFFIX):
                    found.append((entry, "predictions"))
                elif entry.name.endswith(FEEDBACK_SUFFIX):
                    found.append((entry, "feedback"))
        # Predictions first: a label read in the same tick as its prediction joins at once.
        found.sort(key=lambda item: (item[1] != "predictions", str(item[0])))
        return found

    def ingest(self) -> IngestTick:
        """Read what the logs gained since the last tick into the window, then commit the offsets."""
        ingest = self.settings.section("ingest")
        with self._ingest_lock:
            records = malformed = committed = 0
            files = self._discover()
            for path, kind in files:
                key = str(path.resolve())
                state = self._files.get(key)
                if state is None:
                    tailer = LogTailer(path, self.offsets, key, max_bytes_per_poll=ingest.max_bytes_per_poll,
                                       max_line_bytes=ingest.max_line_bytes)
                    state = self._files[key] = _FileState(tailer, kind)
                for _ in range(_POLLS_PER_TICK):
                    batch = state.tailer.poll()
                    if batch.records:
                        now = self.clock.now()
                        with self._lock:
                            self.windows.add_all(batch.records, now)
                    if batch.offset is not None and batch.offset != state.committed:
                        state.tailer.commit(batch)  # after the window has the records: at-least-once
                        state.committed = batch.offset
                        committed += 1
                    state.records += len(batch.records)
                    state.malformed += len(batch.malformed)
                    records += len(batch.records)
                    malformed += len(batch.malformed)
                    self._recent_malformed.extend(batch.malformed)
                    if not batch.records and not batch.malformed:
                        break
            with self._lock:
                self.windows.expire(self.clock.now())
            self._last_ingest_at = self.clock.now()
        if self.gauges is not None:
            self.gauges.ingest_records.labels("logs").inc(records)
            self.gauges.ingest_malformed.inc(malformed)
        return IngestTick(files=len(files), records=records, malformed=malformed, committed=committed)

    def ingest_records(self, records: Sequence[Record]) -> IngestReceipt:
        """Add records that came over HTTP (already validated by ``parse_batch``)."""
        now = self.clock.now()
        with self._lock:
            before = self.windows.stats.duplicates
            self.windows.add_all(records, now)
            duplicates = self.windows.stats.duplicates - before
        self._http_records += len(records)
        if self.gauges is not None:
            self.gauges.ingest_records.labels("http").inc(len(records))
        predictions = sum(1 for r in records if isinstance(r, PredictionRecord))
        return IngestReceipt(accepted=len(records), predictions=predictions, feedback=len(records) - predictions,
                             duplicates=duplicates)

    def snapshot(self, model: str, version: str | None = None) -> WindowSnapshot:
        with self._lock:
            return self.windows.snapshot(model, self.clock.now(), version=version)

    def label_counts(self, model: str, version: str, since: datetime) -> tuple[int, int]:
        """(labelled, correct): the version's predictions in the window made at or after ``since``
        whose label has arrived (joined by ``prediction_id``), and how many were right.

        The canary's accuracy gate reads it; when the window is sampled, so are the counts.
        """
        snap = self.snapshot(model, version)
        labelled = correct = 0
        for when, prediction, label in zip(snap.timestamps, snap.predictions, snap.labels, strict=True):
            if label is None or when < since:
                continue
            labelled += 1
            correct += int(canonical_label(prediction) == canonical_label(label))
        return labelled, correct

    # ------------------------------------------------------------------------------- targets

    def deployed(self, model: str | None = None) -> list[Target]:
        """Production and canary versions (of one model, or of all), production first."""
        targets: list[Target] = []
        seen: set[tuple[str, str]] = set()
        with self.registry.read() as tx:
            deployments = tx.list_deployments()
            if model is not None:
                deployments = [d for d in deployments if d.model == model]
            # One query for all of them: a query per version is a round trip each on PostgreSQL.
            versions = tx.deployed_versions() if model is None else {
                (v.model, v.version): v for v in tx.list_versions(model)}
            for deployment in deployments:
                for role, version in (("production", deployment.production_version),
                                      ("canary", deployment.canary_version)):
                    if not version or (deployment.model, version) in seen:
                        continue
                    found = versions.get((deployment.model, version))
                    if found is None:
                        continue
                    seen.add((deployment.model, version))
                    targets.append(Target(deployment.model, version, role, found.reference_name,
                                          found.reference_sha256, dict(found.metrics)))
        return targets

    # ------------------------------------------------------------------------------- drift

    def check_drift(self) -> list[DriftResult]:
        """One drift check of every deployed version; results stored, exported, announced, alerted."""
        results = [self._check_drift_one(target) for target in self.deployed()]
        self._export_drift(results)
        self.step_alerts()
        for result in results:
            if result.verdict == "drift" and result.document.get("role") == "production":
                drifted = ", ".join(result.document.get("drifted_features", [])) or "dataset"
                self._ask_retrain(result.model, "drift",
                                  f"data drift on {result.model} {result.version}: {drifted}")
        return results

    def _check_drift_one(self, target: Target) -> DriftResult:
        now = self.clock.now()
        policy = self.settings.drift
        snap = self.snapshot(target.model, target.version)
        document: dict[str, Any] = {
            "role": target.role, "evaluated_at": utc_iso(now), "window_rows": snap.rows, "window_seen": snap.seen,
            "sampled": snap.sampled, "reference": target.reference_name, "unlogged": [], "drifted_features": [],
            "report": None, "error": None,
        }
        if not target.reference_name or not target.reference_sha256:
            verdict = "no_reference"
            document["error"] = (f"{target.model} {target.version} has no reference sample; register it with"
                                 " --reference FILE.csv to check drift")
        else:
            try:
                summary = self.summaries.get(target.reference_name, target.reference_sha256,
                                             psi_bins=policy.psi_bins)
                summary, current, unlogged = current_frame(summary, snap)
                document["unlogged"] = unlogged
                if not summary.columns:
                    raise NotFoundError("", "", message="no column of the reference sample appears in the logged"
                                        " records" if snap.rows else "no logged records in the window yet")
                from opsctl.core.drift import detect_drift

                report = detect_drift(summary, current, policy)
                document["report"] = report.to_json()
                document["drifted_features"] = [f.name for f in report.features if f.drifted]
                verdict = {True: "drift", False: "no_drift", None: "insufficient_data"}[report.dataset_drift]
            except NotFoundError as error:
                verdict, document["error"] = "insufficient_data", str(error)
            except OpsctlError as error:
                verdict, document["error"] = "error", f"{type(error).__name__}: {error}"
                log.warning("drift check failed", extra={"model": target.model, "version": target.version,
                                                         "error": str(error)})
        result = DriftResult(now, target.model, target.version, "drift", verdict, document)
        previous = self.store.latest(self.registry, target.model, "drift", version=target.version)
        before = previous[0].verdict if previous else None
        audit = None
        with self.registry.write() as tx:
            result = replace(result, id=self.store.record(tx, result))
            if (verdict == "drift") != (before == "drift") and verdict in ("drift", "no_drift"):
                # Into or out of drift: a verdict of the story (retrain follows), not a heartbeat.
                detail = drift_verdict_text(target, result, before)
                audit_id = tx.append_audit(actor=DRIFT_ACTOR, action="drift", model=target.model,
                                           from_version=target.version, to_version=None, reason="",
                                           outcome=Outcome.OK, detail=detail, now=now)
                audit = AuditEvent(audit_id, now, DRIFT_ACTOR.user, DRIFT_ACTOR.uid, DRIFT_ACTOR.via, "drift",
                                   target.model, target.version, None, "", Outcome.OK, detail).to_json()
        if audit is not None:
            self._publish("audit", audit)
        report = document["report"] or {}
        self._publish("drift", {
            "model": target.model, "version": target.version, "role": target.role, "verdict": verdict,
            "checked_at": utc_iso(now), "previous": previous[0].verdict if previous else None,
            "drifted_features": document["drifted_features"], "share_drifted": report.get("share_drifted"),
            "rows": snap.rows, "error": document["error"]})
        return result

    def _export_drift(self, results: Iterable[DriftResult]) -> None:
        if self.gauges is None:
            return
        g = self.gauges
        seen: dict[tuple[str, str], set[str]] = {}
        for result in results:
            key = (result.model, result.version)
            report = result.document.get("report")
            features: set[str] = set()
            if report is not None:
                for feature in report["features"]:
                    name = feature["name"]
                    features.add(name)
                    if feature["statistic"] is None:
                        _remove(g.feature_statistic, *key, name)
                    else:
                        g.feature_statistic.labels(*key, name).set(feature["statistic"])
                    if feature["drifted"] is None:
                        _remove(g.feature_drifted, *key, name)
                    else:
                        g.feature_drifted.labels(*key, name).set(1.0 if feature["drifted"] else 0.0)
            if report is not None and report["dataset_drift"] is not None:
                g.dataset_drifted.labels(*key).set(1.0 if report["dataset_drift"] else 0.0)
            else:
                _remove(g.dataset_drifted, *key)
            for gone in self._exported_drift.get(key, set()) - features:
                _remove(g.feature_statistic, *key, gone)
                _remove(g.feature_drifted, *key, gone)
            seen[key] = features
        for key, features in self._exported_drift.items():
            if key in seen:
                continue
            _remove(g.dataset_drifted, *key)
            for name in features:
                _remove(g.feature_statistic, *key, name)
                _remove(g.feature_drifted, *key, name)
        self._exported_drift = seen

    # ------------------------------------------------------------------------------- performance

    def check_performance(self) -> list[DriftResult]:
        """One performance check of every deployed version; stored, exported, announced, alerted."""
        results = [self._check_performance_one(target) for target in self.deployed()]
        self._export_performance(results)
        self.step_alerts()
        for result in results:
            if result.verdict == "degraded" and result.document.get("role") == "production":
                worst = [f"{m['name']} {m['value']:.3f} < floor {m['floor']:.3f}"
                         if isinstance(m.get("value"), int | float) and isinstance(m.get("floor"), int | float)
                         else str(m["name"])
                         for m in result.document["metrics"] if m["state"] == "degraded"]
                labelled = result.document.get("labelled")
                self._ask_retrain(result.model, "performance",
                                  f"performance drop on {result.model} {result.version}: {', '.join(worst)}"
                                  f" ({labelled} labelled)")
        return results

    def _check_performance_one(self, target: Target) -> DriftResult:
        now = self.clock.now()
        snap = self.snapshot(target.model, target.version)
        error = None
        try:
            baseline = BaselineMetrics.from_mapping(target.metrics)
        except ValueError as caught:
            baseline, error = BaselineMetrics(), f"unusable baseline metrics: {caught}"
        report = evaluate_window(snap, baseline, self.settings.performance)
        document = {"role": target.role, "evaluated_at": utc_iso(now), "window_rows": snap.rows,
                    "window_seen": snap.seen, "sampled": snap.sampled, "error": error, **report.to_json()}
        verdict = report.verdict
        document.pop("verdict")
        result = DriftResult(now, target.model, target.version, "performance", verdict, document)
        previous = self.store.latest(self.registry, target.model, "performance", version=target.version)
        result = replace(result, id=self.store.record(self.registry, result))
        self._publish("performance", {
            "model": target.model, "version": target.version, "role": target.role, "verdict": verdict,
            "checked_at": utc_iso(now), "previous": previous[0].verdict if previous else None,
            "labelled": report.labelled,
            "metrics": {m.name: m.value for m in report.metrics}})
        return result

    def _export_performance(self, results: Iterable[DriftResult]) -> None:
        if self.gauges is None:
            return
        g = self.gauges
        seen: dict[tuple[str, str], set[str]] = {}
        for result in results:
            key = (result.model, result.version)
            g.labelled.labels(*key).set(result.document["labelled"])
            names: set[str] = set()
            for metric in result.document["metrics"]:
                if metric["value"] is None:
                    _remove(g.metric, *key, metric["name"])
                else:
                    g.metric.labels(*key, metric["name"]).set(metric["value"])
                    names.add(metric["name"])
            for gone in self._exported_performance.get(key, set()) - names:
                _remove(g.metric, *key, gone)
            seen[key] = names
        for key, names in self._exported_performance.items():
            if key in seen:
                continue
            _remove(g.labelled, *key)
            for name in names:
                _remove(g.metric, *key, name)
        self._exported_performance = seen

    # ------------------------------------------------------------------------------- alerts, retraining

    def conditions(self) -> list[Condition]:
        """Both rules for every deployed version, from the newest stored results (survives restarts)."""
        conditions = []
        for target in self.deployed():
            labels = {"model": target.model, "model_version": target.version}
            drift = self.store.latest(self.registry, target.model, "drift", version=target.version)
            performance = self.store.latest(self.registry, target.model, "performance", version=target.version)
            if drift:
                d = drift[0]
                report = d.document.get("report") or {}
                features = ", ".join(d.document.get("drifted_features", []))
                conditions.append(Condition(
                    DATA_DRIFT, labels, d.verdict == "drift", value=report.get("share_drifted"),
                    summary=f"{target.model} {target.version}: drift in {features}" if features else ""))
            if performance:
                p = performance[0]
                degraded = [m for m in p.document.get("metrics", []) if m["state"] == "degraded"]
                text = ", ".join(f"{m['name']} {m['value']:.3f} < {m['floor']:.3f}" for m in degraded)
                severity = severity_of(p.document.get("metrics", [])) if p.verdict == "degraded" else None
                for rule, level in ((PERFORMANCE_DEGRADED, "critical"), (PERFORMANCE_DEGRADED_WARNING, "warning")):
                    conditions.append(Condition(
                        rule, labels, severity == level,
                        value=degraded[0]["value"] if degraded and severity == level else None,
                        summary=f"{target.model} {target.version}: {text}" if text and severity == level else ""))
        return conditions

    def step_alerts(self) -> list[AlertTransition]:
        """Step the alert engine for source ``drift``; other sources' alerts are left alone."""
        settings = self.settings
        conditions = self.conditions()
        now = self.clock.now()
        with self.registry.write() as tx:
            before = self.alert_store.load(tx)
            silences = self.alert_store.silences(tx, active_at=now)
            after, notifications = step(before, conditions, now, silences=silences, policy=settings.alerts,
                                        evaluated_sources=(AlertSource.DRIFT,))
            transitions = self.alert_store.apply(tx, before, after, now)
        for transition in transitions:
            self._publish("alert", transition.to_json())
        if notifications and self._notify is not None:
            try:
                self._notify(notifications)
            except Exception:  # delivery trouble is the notifier's to retry; never fail the check
                log.exception("sending drift alert notifications failed")
        return transitions

    def _ask_retrain(self, model: str, trigger: str, reason: str) -> None:
        if self._retrain is None:
            return
        try:
            self._retrain(model, trigger, reason)
        except OpsctlError as error:
            log.warning("retrain trigger failed", extra={"model": model, "trigger": trigger, "error": str(error)})
        except Exception:
            log.exception("retrain trigger crashed")

    # ------------------------------------------------------------------------------- reads

    def _window_info(self, model: str) -> WindowInfo:
        snap = self.snapshot(model)
        return WindowInfo(rows=snap.rows, seen=snap.seen, labelled=len(snap.labelled_indices()),
                          sampled=snap.sampled, inclusion_probability=snap.inclusion_probability)

    def _require_model(self, model: str) -> list[Target]:
        if self.registry.get_deployment(model) is None:
            raise NotFoundError("model", model, "see `opsctl models`")
        return self.deployed(model)

    def drift(self, model: str, *, history: int | None = None) -> CheckReport:
        """``GET /v1/drift/{model}``: the newest check of each deployed version, the window, history."""
        targets = self._require_model(model)
        versions = []
        for target in targets:
            latest = self.store.latest(self.registry, model, "drift", version=target.version)
            versions.append(VersionCheck(target.version, target.role, latest[0] if latest else None))
        rows = None if history is None else tuple(self.store.history(self.registry, model, "drift", limit=history))
        return CheckReport(model=model, kind="drift", versions=tuple(versions), window=self._window_info(model),
                           interval_seconds=self.settings.jobs.drift_seconds, history=rows)

    def performance(self, model: str) -> CheckReport:
        """``GET /v1/performance/{model}``: the newest check of each deployed version and the window."""
        targets = self._require_model(model)
        versions = []
        for target in targets:
            latest = self.store.latest(self.registry, model, "performance", version=target.version)
            versions.append(VersionCheck(target.version, target.role, latest[0] if latest else None))
        return CheckReport(model=model, kind="performance", versions=tuple(versions),
                           window=self._window_info(model),
                           interval_seconds=self.settings.jobs.performance_seconds)

    def drift_status(self) -> DriftSection:
        """``/v1/status`` section ``drift``: the newest check of every deployed version, per model."""
        models: dict[str, list[VersionDrift]] = {}
        # One query for every version: a query per version costs a round trip each on PostgreSQL.
        newest = self.store.latest_everywhere(self.registry, "drift")
        for target in self.deployed():
            result = newest.get((target.model, target.version))
            entry = VersionDrift(target.version, target.role)
            if result is not None:
                report = result.document.get("report") or {}
                entry = VersionDrift(target.version, target.role, verdict=result.verdict,
                                     checked_at=utc_iso(result.at),
                                     drifted_features=tuple(result.document.get("drifted_features") or ()),
                                     share_drifted=report.get("share_drifted"), error=result.document.get("error"))
            models.setdefault(target.model, []).append(entry)
        return DriftSection(drift_seconds=self.settings.jobs.drift_seconds,
                            models=tuple(ModelDrift(name, tuple(versions))
                                         for name, versions in sorted(models.items())))

    def status(self) -> IngestStatus:
        """``/v1/status`` section: ingestion counters and the window's size per model."""
        with self._lock:
            stats = replace(self.windows.stats)
            models = {m: self.windows.kept(m) for m in self.windows.models()}
            pending = self.windows.pending_labels()
        files = tuple(IngestedFile(path=key, kind=s.kind, records=s.records, malformed=s.malformed,
                                   rotations=s.tailer.stats.rotations, truncations=s.tailer.stats.truncations,
                                   lost_rotations=s.tailer.stats.lost_rotations)
                      for key, s in sorted(self._files.items()))
        return IngestStatus(log_dirs=tuple(str(d) for d in self.log_dirs()), last_ingest_at=self._last_ingest_at,
                            files=files, http_records=self._http_records,
                            recent_malformed=tuple(self._recent_malformed), window=stats, kept=models,
                            pending_labels=pending, summaries_built=self.summaries.built)


def drift_verdict_text(target: Target, result: DriftResult, previous: str | None) -> str:
    """The audit line of a drift verdict change, with the features and their effect sizes.

    ``drift detected on 1.0.0 (production): v1 (wasserstein_norm 0.81, p 1e-30), v2 (...); 2 of 10
    features drifted (share 0.20) over 4000 rows; was no_drift``.
    """
    report = result.document.get("report") or {}
    rows = result.document.get("window_rows")
    where = f"{target.version} ({target.role})"
    was = f"; was {previous}" if previous else ""
    if result.verdict != "drift":
        return f"drift cleared on {where}: no feature drifted over {rows} rows{was}"
    parts = []
    for feature in report.get("features") or []:
        if not feature.get("drifted"):
            continue
        numbers = []
        if feature.get("effect_size") is not None:
            numbers.append(f"{feature.get('effect_metric') or 'effect'} {feature['effect_size']:.3g}")
        if feature.get("psi") is not None:
            numbers.append(f"PSI {feature['psi']:.3g}")
        if feature.get("p_value_adjusted") is not None:
            numbers.append(f"p {feature['p_value_adjusted']:.2g}")
        parts.append(f"{feature['name']}" + (f" ({', '.join(numbers)})" if numbers else ""))
    names = ", ".join(parts) or ", ".join(result.document.get("drifted_features") or []) or "dataset"
    share = report.get("share_drifted")
    counted = (f"; {report.get('drifted_count')} of {len(report.get('features') or [])} features drifted"
               + (f" (share {share:.2f})" if isinstance(share, int | float) else "")) if report else ""
    return f"drift detected on {where}: {names}{counted} over {rows} rows{was}"


def _history_row(result: DriftResult) -> dict[str, Any]:
    report = result.document.get("report") or {}
    return {"id": result.id, "at": utc_iso(result.at), "version": result.version, "verdict": result.verdict,
            "drifted_features": result.document.get("drifted_features", []),
            "drifted_count": report.get("drifted_count"), "share_drifted": report.get("share_drifted"),
            "rows": result.document.get("window_rows"), "error": result.document.get("error")}


# --------------------------------------------------------------------------- window -> frame


def current_frame(summary: ReferenceSummary, snap: WindowSnapshot
                  ) -> tuple[ReferenceSummary, pd.DataFrame, list[str]]:
    """The window as a frame with the reference's columns, the summary cut to the columns the window
    carries, and the reference columns no record carries (``unlogged``).

    Categorical columns are compared as text when the reference's categories are text (``1`` logged
    as a number is the category ``"1"``); a value that is not a number in a numerical column counts
    as missing, so the missing-rate signal reports it.
    """
    import pandas as pd

    from opsctl.adapters.ingest import features_frame

    frame = features_frame(snap)
    if SCORE_COLUMN not in frame.columns:
        frame[SCORE_COLUMN] = [float("nan") if s is None else s for s in snap.scores]
    if CLASS_COLUMN not in frame.columns:
        frame[CLASS_COLUMN] = list(snap.predictions)
    present = set(snap.feature_names()) | {CLASS_COLUMN}
    if any(s is not None for s in snap.scores):
        present.add(SCORE_COLUMN)
    unlogged = [name for name in summary.columns if name not in present]
    numerical = tuple(c for c in summary.numerical if c.name in present)
    categorical = tuple(c for c in summary.categorical if c.name in present)
    columns: dict[str, Any] = {}
    for ref in numerical:
        columns[ref.name] = pd.to_numeric(frame[ref.name], errors="coerce").astype("float64")
    for cat in categorical:
        values = frame[cat.name]
        if all(isinstance(c, str) for c in cat.categories):
            values = values.map(lambda v: v if v is None or isinstance(v, str) else _text(v)).astype("object")
        columns[cat.name] = values
    current = pd.DataFrame(columns, index=frame.index)
    return replace(summary, numerical=numerical, categorical=categorical), current, unlogged


def _text(value: Any) -> Any:
    if isinstance(value, float):
        if value != value:  # NaN stays missing
            return None
        if value.is_integer():
            return str(int(value))
    return str(value)
