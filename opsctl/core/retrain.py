"""Retraining, the pure part: settings, when a trigger may start a run, the candidate's version
number, and whether the challenger beats the champion.

The chapter's pipeline retrains whenever asked and promotes the new model straight to production
when its cross-validated accuracy beats the old *recorded* number. Here:

- a trigger joins the run already in flight for the model (single flight) and, unless a person
  asked for it, respects a cooldown after the last run, so an alert storm starts one run;
- champion and challenger are scored on the *same* holdout with the same metrics, and the
  challenger must win by a configured margin; the outcome is a canary, never a promotion.

No I/O and no clock reads here: the service passes ``now`` in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from opsctl.clock import parse_utc, utc_iso

TRIGGERS = ("drift", "performance", "schedule", "manual")
Trigger = Literal["drift", "performance", "schedule", "manual"]
VersionBump = Literal["patch", "minor"]


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class ModelRetrainSettings:
    """``[retrain.models.NAME]``: how one model is retrained; unset keys take the section's value.

    Exactly one of ``entrypoint`` (``"package.module:function"``) and ``command`` is set.
    ``params`` reach the training code as strings (``ctx.params`` / ``OPSCTL_TRAINING_PARAMS``);
    the service adds ``model``, ``run_id``, ``trigger`` and ``parent_version``.
    """

    entrypoint: str = ""
    command: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    # Cron string, five fields (minute hour day month weekday), e.g. the chapter's "0 2 * * *".
    schedule: str | None = None
    # Recorded in the candidate's lineage; default: the entry point and the opsctl version.
    code_version: str | None = None
    # Column of the holdout CSV that holds the true label; every other column is a feature.
    label_column: str | None = None
    timeout_seconds: float | None = None
    memory_limit_mb: int | None = None
    cooldown_seconds: float | None = None
    min_improvement: float | None = None
    metric: str | None = None
    higher_is_better: bool | None = None
    version_bump: str | None = None
    approval_before_canary: bool | None = None

    def __post_init__(self) -> None:
        if bool(self.entrypoint) == bool(self.command):
            raise ValueError("set exactly one of entrypoint (module:function) and command")
        if self.entrypoint:
            module, sep, function = self.entrypoint.partition(":")
            if not (sep and module and function and function.isidentifier()):
                raise ValueError(f"entrypoint must look like 'package.module:function', got {self.entrypoint!r}")
        if self.schedule is not None:
            validate_cron(self.schedule)
        _check_common(self.timeout_seconds, self.memory_limit_mb, self.cooldown_seconds, self.min_improvement,
                      self.metric, self.version_bump, self.label_column)


@dataclass(frozen=True)
class RetrainPolicy:
    """The ``[retrain]`` section: defaults for every model, and the models that can be retrained.

    ::

        [retrain]
        cooldown_seconds = 3600        # after a run, automatic triggers wait this long
        metric = "accuracy"            # champion vs challenger, on the same holdout
        min_improvement = 0.005        # the challenger must win by at least this much
        version_bump = "patch"         # 1.2.3 -> 1.2.4 ("minor": 1.2.3 -> 1.3.0)

        [retrain.models.fraud-detector]
        entrypoint = "opsctl.demo.training:train"
        schedule = "0 2 * * *"
    """

    timeout_seconds: float = 3600.0
    memory_limit_mb: int = 4096
    kill_grace_seconds: float = 5.0
    cooldown_seconds: float = 3600.0
    min_improvement: float = 0.005
    metric: str = "accuracy"
    higher_is_better: bool = True
    version_bump: str = "patch"
    approval_before_canary: bool = False
    label_column: str = "label"
    # Cron schedules are read in this zone (an IANA name such as "Europe/Berlin").
    schedule_timezone: str = "UTC"
    # How often the daemon looks for a due schedule, and how late a missed one may still fire.
    schedule_check_seconds: float = 30.0
    schedule_misfire_grace_seconds: float = 3600.0
    models: dict[str, ModelRetrainSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_common(self.timeout_seconds, self.memory_limit_mb, self.cooldown_seconds, self.min_improvement,
                      self.metric, self.version_bump, self.label_column)
        if not (math.isfinite(self.kill_grace_seconds) and self.kill_grace_seconds >= 0):
            raise ValueError(f"kill_grace_seconds must be zero or positive, got {self.kill_grace_seconds!r}")
        for name in ("schedule_check_seconds", "schedule_misfire_grace_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value!r}")
        _timezone(self.schedule_timezone)
        for name, entry in self.models.items():
            if not isinstance(entry, ModelRetrainSettings):
                raise ValueError(f"models.{name} must be a table")

    def for_model(self, model: str) -> ModelRetrainPolicy | None:
        """The fully resolved settings of one model, or None when it is not configured."""
        entry = self.models.get(model)
        if entry is None:
            return None

        def pick(name: str) -> Any:
            value = getattr(entry, name)
            return getattr(self, name) if value is None else value

        return ModelRetrainPolicy(
            model=model,
            entrypoint=entry.entrypoint,
            command=tuple(entry.command),
            params=dict(entry.params),
            env=dict(entry.env),
            working_dir=entry.working_dir,
            schedule=entry.schedule,
            code_version=entry.code_version,
            label_column=pick("label_column"),
            timeout_seconds=float(pick("timeout_seconds")),
            memory_limit_mb=int(pick("memory_limit_mb")),
            kill_grace_seconds=self.kill_grace_seconds,
            cooldown_seconds=float(pick("cooldown_seconds")),
            min_improvement=float(pick("min_improvement")),
            metric=pick("metric"),
            higher_is_better=bool(pick("higher_is_better")),
            version_bump=pick("version_bump"),
            approval_before_canary=bool(pick("approval_before_canary")),
        )


@dataclass(frozen=True)
class ModelRetrainPolicy:
    """One model's retraining settings with every default filled in."""

    model: str
    entrypoint: str
    command: tuple[str, ...]
    params: dict[str, str]
    env: dict[str, str]
    working_dir: str | None
    schedule: str | None
    code_version: str | None
    label_column: str
    timeout_seconds: float
    memory_limit_mb: int
    kill_grace_seconds: float
    cooldown_seconds: float
    min_improvement: float
    metric: str
    higher_is_better: bool
    version_bump: str
    approval_before_canary: bool

    def lineage_code_version(self, opsctl_version: str) -> str:
        if self.code_version:
            return self.code_version
        what = self.entrypoint or " ".join(self.command)
        return f"{what} (opsctl {opsctl_version})"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "entrypoint": self.entrypoint or None,
            "command": list(self.command) or None,
            "schedule": self.schedule,
            "timeout_seconds": self.timeout_seconds,
            "memory_limit_mb": self.memory_limit_mb,
            "cooldown_seconds": self.cooldown_seconds,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "min_improvement": self.min_improvement,
            "version_bump": self.version_bump,
            "approval_before_canary": self.approval_before_canary,
        }


def _check_common(timeout: float | None, memory: int | None, cooldown: float | None, margin: float | None,
                  metric: str | None, bump: str | None, label: str | None) -> None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout_seconds must be positive, got {timeout!r}")
    if memory is not None and memory < 0:
        raise ValueError(f"memory_limit_mb must be 0 (no limit) or positive, got {memory!r}")
    if cooldown is not None and not (math.isfinite(cooldown) and cooldown >= 0):
        raise ValueError(f"cooldown_seconds must be zero or positive, got {cooldown!r}")
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"min_improvement must be zero or positive, got {margin!r}")
    if metric is not None and not metric.strip():
        raise ValueError("metric must not be empty")
    if bump is not None and bump not in ("patch", "minor"):
        raise ValueError(f"version_bump must be 'patch' or 'minor', got {bump!r}")
    if label is not None and not label.strip():
        raise ValueError("label_column must not be empty")


# ---------------------------------------------------------------------------------------------
# cron schedules


def _timezone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"schedule_timezone {name!r} is not a known IANA time zone") from None


def _cron(expression: str, timezone: str = "UTC") -> Any:
    from apscheduler.triggers.cron import CronTrigger

    if len(expression.split()) != 5:
        raise ValueError(f"schedule must be a five-field cron string like '0 2 * * *', got {expression!r}")
    try:
        return CronTrigger.from_crontab(expression, timezone=_timezone(timezone))
    except ValueError as error:
        raise ValueError(f"schedule {expression!r} is not a valid cron string: {error}") from None


def validate_cron(expression: str) -> None:
    _cron(expression)


def next_fire_time(expression: str, after: datetime, timezone: str = "UTC") -> datetime | None:
    """The first time strictly after ``after`` at which the cron ``expression`` fires (UTC)."""
    trigger = _cron(expression, timezone)
    moment = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return None if moment is None else moment.astimezone(after.tzinfo)


def due_fire_time(expression: str, *, last_checked: datetime, now: datetime, timezone: str = "UTC",
                  misfire_grace_seconds: float = 3600.0) -> datetime | None:
    """The latest fire time in ``(last_checked, now]``, if it is not older than the grace.

    Several missed fire times (the daemon was down) coalesce into one run; one missed by more
    than the grace is skipped, so a daemon back after a weekend does not retrain at noon
    because of Saturday's 02:00.
    """
    due: datetime | None = None
    moment = next_fire_time(expression, last_checked, timezone)
    while moment is not None and moment <= now:
        due = moment
        moment = next_fire_time(expression, moment, timezone)
    if due is None or (now - due).total_seconds() > misfire_grace_seconds:
        return None
    return due


# ---------------------------------------------------------------------------------------------
# runs and the single-flight decision


class RunStatus(StrEnum):
    RUNNING = "running"  # training
    EVALUATING = "evaluating"  # registering the candidate, scoring champion and challenger
    AWAITING_APPROVAL = "awaiting_approval"  # better, and approval_before_canary is set
    CANARY_STARTED = "canary_started"
    CANARY_PENDING = "canary_pending"  # better, but no canary service to hand over to
    KEPT = "kept"  # candidate registered, not better than the champion: no canary
    REJECTED = "rejected"  # awaited approval; a person said no: no canary
    # How the candidate's canary ended (the run follows its canary to the end).
    CANARY_PROMOTED = "canary_promoted"
    CANARY_ROLLED_BACK = "canary_rolled_back"
    CANARY_ABORTED = "canary_aborted"
    CANARY_FAILED = "canary_failed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABANDONED = "abandoned"  # the daemon stopped during the run


ACTIVE_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.EVALUATING})
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.ABANDONED})
# A canary phase at its end -> the run's status.
CANARY_END_STATUSES = {"succeeded": RunStatus.CANARY_PROMOTED, "rolled_back": RunStatus.CANARY_ROLLED_BACK,
                       "aborted": RunStatus.CANARY_ABORTED, "failed": RunStatus.CANARY_FAILED}


@dataclass(frozen=True)
class TriggerAsk:
    """One trigger that asked for a run: what asked, why (drift's features, performance's numbers),
    who, when, and what became of it (``started``, ``joined``, ``held``: asked during a hold, carried
    to the run that came after it)."""

    kind: str  # drift | performance | schedule | manual
    reason: str
    actor: str
    at: datetime
    verdict: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "actor": self.actor, "at": utc_iso(self.at),
                "verdict": self.verdict}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TriggerAsk:
        return cls(kind=data["kind"], reason=data.get("reason", ""), actor=data.get("actor", ""),
                   at=parse_utc(data["at"]), verdict=data.get("verdict", "started"))

    def text(self) -> str:
        """``drift (data drift on m 1.0.0: v1, v2) by opsctld via drift at 2026-..Z, held``."""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.kind}{why} by {self.actor} at {utc_iso(self.at)}, {self.verdict}"


@dataclass(frozen=True)
class RunRef:
    """What the single-flight decision needs to know about a model's latest run."""

    run_id: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None


class TriggerVerdict(StrEnum):
    START = "started"
    JOIN = "joined"  # a run is in flight: this trigger rides along
    COOLDOWN = "cooldown"


@dataclass(frozen=True)
class TriggerDecision:
    verdict: TriggerVerdict
    message: str
    run_id: str | None = None  # the run joined, or the one that set off the cooldown
    retry_after_seconds: float | None = None


def decide_trigger(*, trigger: str, latest: RunRef | None, cooldown_seconds: float, now: datetime
                   ) -> TriggerDecision:
    """Start a run, join the one in flight, or wait out the cooldown.

    The cooldown counts from the end of the model's last run (failed runs too: a training that
    keeps failing must not restart at every drift check). A person pressing "retrain" is not held
    by it, only by single flight.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
    if latest is None:
        return TriggerDecision(TriggerVerdict.START, "no earlier run")
    if latest.status in ACTIVE_STATUSES:
        return TriggerDecision(TriggerVerdict.JOIN, f"run {latest.run_id} is already {latest.status.value}",
                               latest.run_id)
    if trigger == "manual":
        return TriggerDecision(TriggerVerdict.START, "manual trigger (not held by the cooldown)")
    since = latest.finished_at or latest.started_at
    elapsed = (now - since).total_seconds()
    if elapsed < cooldown_seconds:
        wait = cooldown_seconds - elapsed
        return TriggerDecision(
            TriggerVerdict.COOLDOWN,
            f"cooling down after run {latest.run_id} ({latest.status.value} at {utc_iso(since)});"
            f" automatic triggers wait {wait:.0f} s more",
            latest.run_id, wait)
    return TriggerDecision(TriggerVerdict.START, f"cooldown after run {latest.run_id} has passed")


# ---------------------------------------------------------------------------------------------
# version numbers

_SEMVER = re.compile(r"^(?P<prefix>v?)(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)$")
FIRST_VERSION = "1.0.0"


class VersionBumpError(ValueError):
    """The version cannot be bumped by rule (not ``MAJOR.MINOR.PATCH``)."""


def parse_semver(version: str) -> tuple[str, int, int, int] | None:
    """``(prefix, major, minor, patch)`` of ``1.2.3`` or ``v1.2.3``; None for anything else."""
    match = _SEMVER.match(version)
    if match is None:
        return None
    return match["prefix"], int(match["major"]), int(match["minor"]), int(match["patch"])


def bump_version(current: str | None, rule: str, existing: set[str] | frozenset[str] = frozenset()) -> str:
    """The candidate's version: ``current`` bumped by ``rule``, skipping versions already taken.

    ``1.2.3 -> 1.2.4`` (patch, the chapter's rule) or ``1.3.0`` (minor); a ``v`` prefix is kept.
    With nothing in production the base is the highest semantic version registered, and with
    none at all the first version is ``1.0.0``. Rejected candidates stay registered, so a taken
    number is skipped (1.2.4 taken -> 1.2.5). A version that is not ``MAJOR.MINOR.PATCH``
    (``2024-06-01``, ``1.2.3-rc1``) cannot be bumped by rule: ``VersionBumpError`` says so,
    before any training starts.
    """
    if rule not in ("patch", "minor"):
        raise ValueError(f"version bump rule must be 'patch' or 'minor', got {rule!r}")
    if current is None:
        parsed_existing = [p for p in (parse_semver(v) for v in existing) if p is not None]
        if not parsed_existing:
            if existing:
                raise VersionBumpError(
                    f"nothing is in production and no registered version is MAJOR.MINOR.PATCH"
                    f" ({', '.join(sorted(existing)[:5])}); register or promote a semantic version first")
            return FIRST_VERSION
        prefix, major, minor, patch = max(parsed_existing, key=lambda p: p[1:])
    else:
        parsed = parse_semver(current)
        if parsed is None:
            raise VersionBumpError(
                f"production version {current!r} is not MAJOR.MINOR.PATCH, so it cannot be bumped by the"
                f" {rule!r} rule; register a semantic version (e.g. 1.0.0) and promote it first")
        prefix, major, minor, patch = parsed
    while True:
        if rule == "patch":
            patch += 1
        else:
            minor, patch = minor + 1, 0
        candidate = f"{prefix}{major}.{minor}.{patch}"
        if candidate not in existing:
            return candidate


# ---------------------------------------------------------------------------------------------
# champion vs challenger

# Tolerance for the margin comparison: 0.91 - 0.90 must count as an improvement of 0.01.
_EPSILON = 1e-9


class DecisionOutcome(StrEnum):
    CANARY = "canary"  # the challenger wins by the margin: hand over to a canary
    KEEP = "keep"  # not better enough: the candidate stays registered, nothing else happens
    NO_CHAMPION = "no_champion"  # nothing in production to compare against or canary beside


@dataclass(frozen=True)
class RetrainDecision:
    """Champion vs challenger on one holdout, with the numbers that decided it."""

    outcome: DecisionOutcome
    metric: str
    higher_is_better: bool
    min_improvement: float
    champion_version: str | None
    challenger_version: str
    champion_score: float | None
    challenger_score: float
    improvement: float | None  # positive: the challenger is better (in the metric's direction)
    holdout_rows: int
    holdout_sha256: str
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "min_improvement": self.min_improvement,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "champion_score": self.champion_score,
            "challenger_score": self.challenger_score,
            "improvement": self.improvement,
            "holdout_rows": self.holdout_rows,
            "holdout_sha256": self.holdout_sha256,
            "champion_metrics": dict(self.champion_metrics),
            "challenger_metrics": dict(self.challenger_metrics),
            "reason": self.reason,
            "headline": self.headline,
        }

    @property
    def headline(self) -> str:
        """The decision in one line, numbers first: ``kept 1.0.0: challenger 1.0.1 roc_auc +0.0040 < margin 0.01``."""
        rows = f"{self.holdout_rows} holdout rows"
        if self.outcome is DecisionOutcome.NO_CHAMPION or self.improvement is None or self.champion_score is None:
            return (f"no champion: {self.challenger_version} stays registered"
                    f" ({self.metric} {self.challenger_score:.4f} on {rows})")
        scores = f"{self.champion_score:.4f} -> {self.challenger_score:.4f} on the same {rows}"
        if self.outcome is DecisionOutcome.CANARY:
            return (f"canary for {self.challenger_version}: {self.metric} {self.improvement:+.4f} over"
                    f" {self.champion_version} >= margin {self.min_improvement:g} ({scores})")
        return (f"kept {self.champion_version}: challenger {self.challenger_version} {self.metric}"
                f" {self.improvement:+.4f} < margin {self.min_improvement:g} ({scores})")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetrainDecision:
        return cls(
            outcome=DecisionOutcome(data["outcome"]), metric=data["metric"],
            higher_is_better=bool(data["higher_is_better"]), min_improvement=float(data["min_improvement"]),
            champion_version=data.get("champion_version"), challenger_version=data["challenger_version"],
            champion_score=data.get("champion_score"), challenger_score=float(data["challenger_score"]),
            improvement=data.get("improvement"), holdout_rows=int(data["holdout_rows"]),
            holdout_sha256=data["holdout_sha256"], champion_metrics=dict(data["champion_metrics"]),
            challenger_metrics=dict(data["challenger_metrics"]), reason=data["reason"])


def decide_champion(*, metric: str, higher_is_better: bool, min_improvement: float,
                    champion_version: str | None, champion_metrics: dict[str, float] | None,
                    challenger_version: str, challenger_metrics: dict[str, float],
                    holdout_rows: int, holdout_sha256: str) -> RetrainDecision:
    """Compare both models' metrics, computed on the same holdout, on ``metric``.

    The challenger wins when it is better by at least ``min_improvement`` (and by more than
    nothing when the margin is 0). Raises ``ValueError`` when the metric is missing or not finite:
    a decision on a number that is not there would be a guess.
    """
    challenger_score = _score(challenger_metrics, metric, "challenger")
    common = dict(metric=metric, higher_is_better=higher_is_better, min_improvement=min_improvement,
                  champion_version=champion_version, challenger_version=challenger_version,
                  challenger_score=challenger_score, holdout_rows=holdout_rows, holdout_sha256=holdout_sha256,
                  challenger_metrics=dict(challenger_metrics))
    if champion_version is None or champion_metrics is None:
        return RetrainDecision(
            outcome=DecisionOutcome.NO_CHAMPION, champion_score=None, improvement=None, champion_metrics={},
            reason=f"nothing is in production: {challenger_version} stays registered"
                   f" ({metric} {challenger_score:.4f} on {holdout_rows} holdout rows); promote it by hand",
            **common)  # type: ignore[arg-type]
    champion_score = _score(champion_metrics, metric, "champion")
    improvement = challenger_score - champion_score if higher_is_better else champion_score - challenger_score
    wins = improvement > _EPSILON and improvement + _EPSILON >= min_improvement
    comparison = (f"{metric} {champion_score:.4f} ({champion_version}) -> {challenger_score:.4f}"
                  f" ({challenger_version}) on the same {holdout_rows} holdout rows: {improvement:+.4f}")
    if wins:
        reason = f"{comparison}, at least the margin {min_improvement:g}: start a canary"
    else:
        reason = f"{comparison}, less than the margin {min_improvement:g}: keep {champion_version}"
    return RetrainDecision(
        outcome=DecisionOutcome.CANARY if wins else DecisionOutcome.KEEP, champion_score=champion_score,
        improvement=improvement, champion_metrics=dict(champion_metrics), reason=reason,
        **common)  # type: ignore[arg-type]


def _score(metrics: dict[str, float], metric: str, who: str) -> float:
    value = metrics.get(metric)
    if value is None:
        raise ValueError(f"the {who} has no {metric!r} metric on the holdout (has: {', '.join(sorted(metrics))})")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"the {who}'s {metric!r} is not a finite number: {value!r}")
    return float(value)


def binary_metrics(labels: Any, scores: Any, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC of positive-class ``scores`` against 0/1 labels.

    ROC AUC is left out when the holdout holds one class only (it is undefined there).
    """
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    y = np.asarray(labels).astype(int)
    p = np.asarray(scores, dtype=float)
    if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(f"labels and scores must be two equally long, non-empty vectors, got {y.shape}, {p.shape}")
    predicted = (p >= threshold).astype(int)
    result = {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
    }
    if len(set(y.tolist())) == 2:
        result["roc_auc"] = float(roc_auc_score(y, p))
    return result


# ---------------------------------------------------------------------------------------------
# the run record


@dataclass(frozen=True)
class RetrainRun:
    """One retraining run as stored in ``retrain_runs`` and shown by ``opsctl retrain show``."""

    id: str
    model: str
    trigger: str
    reason: str
    actor: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    parent_version: str | None = None
    candidate_version: str | None = None
    joined_triggers: int = 0  # triggers that arrived while this run was in flight
    # Every trigger that asked for this run, first the one that started it (see TriggerAsk).
    triggers: tuple[TriggerAsk, ...] = ()
    actor_uid: int | None = None  # with ``actor`` ("user via path"): who the run's audit events name
    training: dict[str, Any] | None = None  # TrainingOutcome.to_json() without the log tail
    decision: RetrainDecision | None = None
    canary: dict[str, Any] | None = None
    error: str | None = None
    message: str = ""
    logs: str = ""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def ref(self) -> RunRef:
        return RunRef(self.id, self.status, self.started_at, self.finished_at)

    def to_json(self, *, with_logs: bool = True) -> dict[str, Any]:
        document = {
            "id": self.id,
            "model": self.model,
            "trigger": self.trigger,
            "reason": self.reason,
            "actor": self.actor,
            "status": self.status.value,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at) if self.finished_at else None,
            "parent_version": self.parent_version,
            "candidate_version": self.candidate_version,
            "joined_triggers": self.joined_triggers,
            "triggers": [t.to_json() for t in self.triggers],
            "actor_uid": self.actor_uid,
            "training": self.training,
            "decision": None if self.decision is None else self.decision.to_json(),
            "canary": self.canary,
            "error": self.error,
            "message": self.message,
        }
        if with_logs:
            document["logs"] = self.logs
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetrainRun:
        return cls(
            id=data["id"], model=data["model"], trigger=data["trigger"], reason=data.get("reason", ""),
            actor=data.get("actor", ""), status=RunStatus(data["status"]), started_at=parse_utc(data["started_at"]),
            finished_at=parse_utc(data["finished_at"]) if data.get("finished_at") else None,
            parent_version=data.get("parent_version"), candidate_version=data.get("candidate_version"),
            joined_triggers=int(data.get("joined_triggers", 0)), actor_uid=data.get("actor_uid"),
            triggers=tuple(TriggerAsk.from_json(t) for t in data.get("triggers") or ()),
            training=data.get("training"),
            decision=RetrainDecision.from_json(data["decision"]) if data.get("decision") else None,
            canary=data.get("canary"), error=data.get("error"), message=data.get("message", ""),
            logs=data.get("logs", ""))
