"""Typed documents of the daemon's API: what the daemon sends and what its client reads back.

The daemon builds these and serialises them with ``to_json``; :mod:`opsctl.client` turns the JSON back
into them with ``from_json``. The sections of ``/v1/status`` are declared here once, under the names the
daemon publishes them (:data:`STATUS_SECTIONS`), so no reader guesses a section's name or shape.
Free of numpy, pandas and httpx: a one-shot CLI command may import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opsctl.domain import Deployment

# Verdicts of one drift check, worst first: the order that picks a model's verdict from its versions'.
# A version that has never been checked ranks with "no_reference" (we cannot say), never with "no_drift".
DRIFT_VERDICTS = ("drift", "error", "insufficient_data", "no_reference", "no_drift")
_DRIFT_RANK = {"drift": 0, "error": 1, "insufficient_data": 2, "no_reference": 3, None: 3, "no_drift": 4}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


# -- daemon and jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonInfo:
    """The ``daemon`` section: who answers and for how long."""

    up: bool
    version: str | None = None
    pid: int | None = None
    started_at: str | None = None
    uptime_seconds: float | None = None
    config: str | None = None
    socket: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"up": self.up, "version": self.version, "pid": self.pid,
                                    "started_at": self.started_at, "uptime_seconds": self.uptime_seconds,
                                    "config": self.config, "socket": self.socket}
        if self.error is not None:
            document["error"] = self.error
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DaemonInfo:
        return cls(up=bool(data.get("up")), version=_str_or_none(data.get("version")),
                   pid=_int_or_none(data.get("pid")),
                   started_at=_str_or_none(data.get("started_at")),
                   uptime_seconds=_float_or_none(data.get("uptime_seconds")), config=_str_or_none(data.get("config")),
                   socket=_str_or_none(data.get("socket")), error=_str_or_none(data.get("error")))


@dataclass(frozen=True)
class JobInfo:
    """One scheduled job of the daemon, as the ``jobs`` section lists it."""

    name: str
    interval_seconds: float
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_started_at: str | None = None
    last_finished_at: str | None = None
    last_ok: bool | None = None
    last_summary: str | None = None
    last_duration_seconds: float | None = None
    last_success_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobInfo:
        return cls(name=str(data["name"]), interval_seconds=float(data["interval_seconds"]),
                   runs=int(data.get("runs") or 0), failures=int(data.get("failures") or 0),
                   running=bool(data.get("running")), last_started_at=_str_or_none(data.get("last_started_at")),
                   last_finished_at=_str_or_none(data.get("last_finished_at")), last_ok=data.get("last_ok"),
                   last_summary=_str_or_none(data.get("last_summary")),
                   last_duration_seconds=_float_or_none(data.get("last_duration_seconds")),
                   last_success_at=_str_or_none(data.get("last_success_at")))


# -- health ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionHealthSummary:
    version: str
    role: str
    status: str
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "role": self.role, "status": self.status, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionHealthSummary:
        return cls(version=str(data["version"]), role=str(data["role"]), status=str(data["status"]),
                   reason=_str_or_none(data.get("reason")))


@dataclass(frozen=True)
class ModelHealthSummary:
    """A model's worst SLA status over its deployed versions."""

    model: str
    status: str
    versions: tuple[VersionHealthSummary, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "versions": [v.to_json() for v in self.versions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelHealthSummary:
        return cls(model=str(data["model"]), status=str(data["status"]),
                   versions=tuple(VersionHealthSummary.from_json(v) for v in data.get("versions") or ()))


@dataclass(frozen=True)
class HealthSection:
    """The ``health`` section: the newest health cycle, per model (``evaluated_at`` None before the first)."""

    evaluated_at: str | None
    models: tuple[ModelHealthSummary, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"evaluated_at": self.evaluated_at, "models": [m.to_json() for m in self.models]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HealthSection:
        return cls(evaluated_at=_str_or_none(data.get("evaluated_at")),
                   models=tuple(ModelHealthSummary.from_json(m) for m in data.get("models") or ()))

    def by_model(self) -> dict[str, ModelHealthSummary]:
        return {m.model: m for m in self.models}


# -- drift -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionDrift:
    """The newest drift check of one deployed version (``verdict`` None: not checked yet)."""

    version: str
    role: str
    verdict: str | None = None
    checked_at: str | None = None
    drifted_features: tuple[str, ...] = ()
    share_drifted: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "role": self.role, "verdict": self.verdict, "checked_at": self.checked_at,
                "drifted_features": list(self.drifted_features), "share_drifted": self.share_drifted,
                "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionDrift:
        return cls(version=str(data["version"]), role=str(data["role"]), verdict=_str_or_none(data.get("verdict")),
                   checked_at=_str_or_none(data.get("checked_at")),
                   drifted_features=tuple(str(f) for f in data.get("drifted_features") or ()),
                   share_drifted=_float_or_none(data.get("share_drifted")), error=_str_or_none(data.get("error")))


def worst_drift_verdict(versions: Iterable[VersionDrift]) -> str | None:
    """A model's verdict: its worst version's (drift, error, insufficient data, no reference or unchecked,
    no drift); None when no version is deployed or none has been checked and none says more."""
    verdicts = [v.verdict for v in versions]
    if not verdicts:
        return None
    return min(verdicts, key=lambda v: _DRIFT_RANK.get(v, 3))


@dataclass(frozen=True)
class ModelDrift:
    """Each deployed version's newest drift check, and the model's verdict (the worst of them)."""

    model: str
    versions: tuple[VersionDrift, ...] = ()

    @property
    def verdict(self) -> str | None:
        return worst_drift_verdict(self.versions)

    def with_check(self, check: VersionDrift) -> ModelDrift:
        """This model after one more check (an SSE ``drift`` event): that version's entry replaced or added."""
        kept = tuple(v for v in self.versions if v.version != check.version)
        return replace(self, versions=tuple(sorted((*kept, check), key=lambda v: (v.role != "production",
                                                                                  v.version))))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "verdict": self.verdict, "versions": [v.to_json() for v in self.versions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelDrift:
        return cls(model=str(data["model"]),
                   versions=tuple(VersionDrift.from_json(v) for v in data.get("versions") or ()))


@dataclass(frozen=True)
class DriftSection:
    """The ``drift`` section: every deployed model's drift verdict, and how often the job checks."""

    drift_seconds: float
    models: tuple[ModelDrift, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"drift_seconds": self.drift_seconds, "models": [m.to_json() for m in self.models]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftSection:
        return cls(drift_seconds=float(data["drift_seconds"]),
                   models=tuple(ModelDrift.from_json(m) for m in data.get("models") or ()))

    def by_model(self) -> dict[str, ModelDrift]:
        return {m.model: m for m in self.models}


# -- the whole document ------------------------------------------------------------------------------------

# Section name -> what it holds. Sections of subsystems a daemon does not run are absent (None below).
STATUS_SECTIONS = ("daemon", "jobs", "models", "health", "canaries", "drift", "retrain", "ingest")


@dataclass(frozen=True)
class StatusDocument:
    """``GET /v1/status``. ``canaries``, ``retrain`` and ``ingest`` keep their JSON documents (their readers
    format them as they come); the others are typed."""

    daemon: DaemonInfo
    jobs: tuple[JobInfo, ...] = ()
    models: tuple[Deployment, ...] = ()
    health: HealthSection | None = None
    drift: DriftSection | None = None
    canaries: tuple[Mapping[str, Any], ...] | None = None
    retrain: Mapping[str, Any] | None = None
    ingest: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusDocument:
        health, drift, canaries = data.get("health"), data.get("drift"), data.get("canaries")
        return cls(
            daemon=DaemonInfo.from_json(data.get("daemon") or {"up": False}),
            jobs=tuple(JobInfo.from_json(j) for j in data.get("jobs") or ()),
            models=tuple(Deployment.from_json(dict(m)) for m in data.get("models") or ()),
            health=None if health is None else HealthSection.from_json(health),
            drift=None if drift is None else DriftSection.from_json(drift),
            canaries=None if canaries is None else tuple(dict(c) for c in canaries),
            retrain=data.get("retrain"), ingest=data.get("ingest"),
            extra={k: v for k, v in data.items() if k not in STATUS_SECTIONS})


# -- documents of the other resources ----------------------------------------------------------------------
# Each keeps the fields its readers decide on, typed, and ``json``: the document as the daemon sent it, which
# ``-o json`` prints unchanged (the stable output scripts rely on).


@dataclass(frozen=True)
class CanaryStatus:
    """One canary (``/v1/canaries``): state machine position, traffic weight and gate verdicts."""

    model: str
    canary_version: str
    production_version: str | None
    state: str
    active: bool
    stage: int
    stages: int
    weight: float
    target_weight: float | None
    failed_checks: int
    failure_threshold: int
    reason: str | None
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryStatus:
        return cls(model=str(data["model"]), canary_version=str(data["canary_version"]),
                   production_version=_str_or_none(data.get("production_version")), state=str(data["state"]),
                   active=bool(data.get("active")), stage=int(data.get("stage") or 0),
                   stages=int(data.get("stages") or 0), weight=float(data.get("weight") or 0.0),
                   target_weight=_float_or_none(data.get("target_weight")),
                   failed_checks=int(data.get("failed_checks") or 0),
                   failure_threshold=int(data.get("failure_threshold") or 0), reason=_str_or_none(data.get("reason")),
                   json=dict(data))


@dataclass(frozen=True)
class RetrainRun:
    """One retraining run (``/v1/retrain/{id}``); ``logs`` holds the lines asked for (``log_offset`` on)."""

    id: str
    model: str
    status: str
    trigger: str
    started_at: str
    finished_at: str | None
    candidate_version: str | None
    log_lines_total: int
    logs: str
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ("running", "evaluating")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetrainRun:
        return cls(id=str(data["id"]), model=str(data["model"]), status=str(data["status"]),
                   trigger=str(data.get("trigger") or ""), started_at=str(data.get("started_at") or ""),
                   finished_at=_str_or_none(data.get("finished_at")),
                   candidate_version=_str_or_none(data.get("candidate_version")),
                   log_lines_total=int(data.get("log_lines_total") or 0), logs=str(data.get("logs") or ""),
                   json=dict(data))


@dataclass(frozen=True)
class RetrainTrigger:
    """``POST /v1/models/{model}/retrain``: what the daemon did (started, joined or refused) and the run, if any."""

    verdict: str
    message: str
    run: RetrainRun | None
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetrainTrigger:
        run = data.get("run")
        return cls(verdict=str(data["verdict"]), message=str(data.get("message") or ""),
                   run=None if run is None else RetrainRun.from_json(run), json=dict(data))


@dataclass(frozen=True)
class Alert:
    """One alert (``/v1/alerts``)."""

    id: str
    rule: str
    state: str
    severity: str
    labels: Mapping[str, str]
    summary: str
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        return cls(id=str(data["id"]), rule=str(data.get("rule") or ""), state=str(data.get("state") or ""),
                   severity=str(data.get("severity") or ""), labels=dict(data.get("labels") or {}),
                   summary=str(data.get("summary") or ""), json=dict(data))


@dataclass(frozen=True)
class AlertList:
    """``GET /v1/alerts``: the alerts and each notification target's delivery state."""

    alerts: tuple[Alert, ...]
    delivery: Mapping[str, Mapping[str, Any]]
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertList:
        return cls(alerts=tuple(Alert.from_json(a) for a in data.get("alerts") or ()),
                   delivery=dict(data.get("delivery") or {}), json=dict(data))


@dataclass(frozen=True)
class Silence:
    """One silence (``/v1/silences``)."""

    id: str
    matchers: tuple[str, ...]
    starts_at: str
    ends_at: str
    author: str
    comment: str
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Silence:
        return cls(id=str(data["id"]), matchers=tuple(str(m) for m in data.get("matchers") or ()),
                   starts_at=str(data.get("starts_at") or ""), ends_at=str(data.get("ends_at") or ""),
                   author=str(data.get("author") or ""), comment=str(data.get("comment") or ""), json=dict(data))


@dataclass(frozen=True)
class HealthReport:
    """``GET /v1/health``: every deployed version's SLA checks (``evaluated_at`` None before the first cycle)."""

    evaluated_at: str | None
    models: tuple[Mapping[str, Any], ...]
    health_seconds: float | None
    prometheus: Mapping[str, Any]
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HealthReport:
        return cls(evaluated_at=_str_or_none(data.get("evaluated_at")),
                   models=tuple(dict(m) for m in data.get("models") or ()),
                   health_seconds=_float_or_none(data.get("health_seconds")),
                   prometheus=dict(data.get("prometheus") or {}), json=dict(data))


@dataclass(frozen=True)
class CheckReport:
    """``GET /v1/drift/{model}`` or ``/v1/performance/{model}``: the newest check of each deployed version."""

    model: str
    versions: tuple[Mapping[str, Any], ...]
    window: Mapping[str, Any]
    history: tuple[Mapping[str, Any], ...]
    every_seconds: float | None
    json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckReport:
        every = data.get("drift_seconds", data.get("performance_seconds"))
        return cls(model=str(data["model"]), versions=tuple(dict(v) for v in data.get("versions") or ()),
                   window=dict(data.get("window") or {}), history=tuple(dict(h) for h in data.get("history") or ()),
                   every_seconds=_float_or_none(every), json=dict(data))
