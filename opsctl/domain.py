"""Domain values shared by the registry, the service layer and every shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from opsctl.clock import parse_utc, utc_iso


class VersionStatus(StrEnum):
    REGISTERED = "registered"
    STAGING = "staging"
    CANARY = "canary"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class Outcome(StrEnum):
    OK = "ok"
    NOOP = "noop"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class Actor:
    """Who asked for a change, and through which path it reached the registry."""

    user: str
    uid: int | None = None
    via: str = "cli"

    def label(self) -> str:
        return f"{self.user} via {self.via}"


@dataclass(frozen=True)
class Lineage:
    training_data_hash: str | None = None
    code_version: str | None = None
    parent_version: str | None = None
    trigger: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "training_data_hash": self.training_data_hash,
            "code_version": self.code_version,
            "parent_version": self.parent_version,
            "trigger": self.trigger,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lineage:
        return cls(data.get("training_data_hash"), data.get("code_version"), data.get("parent_version"),
                   data.get("trigger"))


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    status: VersionStatus
    artifact_name: str
    sha256: str
    size_bytes: int
    metrics: dict[str, float]
    description: str
    tags: dict[str, str]
    lineage: Lineage
    reference_name: str | None
    reference_sha256: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status.value,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "artifact": self.artifact_name,
            "metrics": dict(self.metrics),
            "description": self.description,
            "tags": dict(self.tags),
            "lineage": self.lineage.to_json(),
            "reference": self.reference_name,
            "reference_sha256": self.reference_sha256,
            "created_at": utc_iso(self.created_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(model=data["model"], version=data["version"], status=VersionStatus(data["status"]),
                   artifact_name=data["artifact"], sha256=data["sha256"], size_bytes=data["size_bytes"],
                   metrics=dict(data["metrics"]), description=data["description"], tags=dict(data["tags"]),
                   lineage=Lineage.from_json(data["lineage"]), reference_name=data.get("reference"),
                   reference_sha256=data.get("reference_sha256"), created_at=parse_utc(data["created_at"]))


@dataclass(frozen=True)
class Deployment:
    """Which versions of a model serve traffic, and the generation that guards changes."""

    model: str
    production_version: str | None
    previous_versions: tuple[str, ...]
    canary_version: str | None
    canary_weight: float
    generation: int
    updated_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "production_version": self.production_version,
            "previous_versions": list(self.previous_versions),
            "canary_version": self.canary_version,
            "canary_weight": self.canary_weight,
            "generation": self.generation,
            "updated_at": utc_iso(self.updated_at) if self.updated_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(model=data["model"], production_version=data["production_version"],
                   previous_versions=tuple(data["previous_versions"]), canary_version=data["canary_version"],
                   canary_weight=float(data["canary_weight"]), generation=int(data["generation"]),
                   updated_at=parse_utc(data["updated_at"]) if data.get("updated_at") else None)

    def splits(self) -> list[tuple[str, float]]:
        """Traffic split in percent, production first; empty when nothing is deployed."""
        if self.production_version is None:
            if self.canary_version is not None and self.canary_weight > 0:
                return [(self.canary_version, 100.0)]
            return []
        if self.canary_version is None or self.canary_weight <= 0:
            return [(self.production_version, 100.0)]
        return [
            (self.production_version, round(100.0 - self.canary_weight, 6)),
            (self.canary_version, self.canary_weight),
        ]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    created_at: datetime
    versions: int
    production_version: str | None
    canary_version: str | None
    canary_weight: float

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "created_at": utc_iso(self.created_at),
            "versions": self.versions,
            "production_version": self.production_version,
            "canary_version": self.canary_version,
            "canary_weight": self.canary_weight,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSummary:
        return cls(name=data["model"], created_at=parse_utc(data["created_at"]), versions=int(data["versions"]),
                   production_version=data["production_version"], canary_version=data["canary_version"],
                   canary_weight=float(data["canary_weight"]))


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    uid: int | None
    via: str
    action: str
    model: str | None
    from_version: str | None
    to_version: str | None
    reason: str
    outcome: Outcome
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": utc_iso(self.at),
            "actor": self.actor,
            "uid": self.uid,
            "via": self.via,
            "action": self.action,
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
            "outcome": self.outcome.value,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditEvent:
        return cls(id=int(data["id"]), at=parse_utc(data["at"]), actor=data["actor"], uid=data.get("uid"),
                   via=data["via"], action=data["action"], model=data.get("model"),
                   from_version=data.get("from_version"), to_version=data.get("to_version"),
                   reason=data.get("reason", ""), outcome=Outcome(data["outcome"]), detail=data.get("detail", ""))


@dataclass(frozen=True)
class ChangeResult:
    """What a production change did: the answer every shell prints."""

    action: str
    model: str
    from_version: str | None
    to_version: str | None
    outcome: Outcome
    message: str
    audit_id: int
    generation: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "outcome": self.outcome.value,
            "message": self.message,
            "audit_id": self.audit_id,
            "generation": self.generation,
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeResult:
        known = {"action", "model", "from_version", "to_version", "outcome", "message", "audit_id", "generation"}
        return cls(action=data["action"], model=data["model"], from_version=data.get("from_version"),
                   to_version=data.get("to_version"), outcome=Outcome(data["outcome"]), message=data["message"],
                   audit_id=int(data["audit_id"]), generation=int(data["generation"]),
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class ChangePlan:
    """A production change as the operator confirms it, pinned to a generation."""

    action: str
    model: str
    from_version: str | None
    to_version: str | None
    generation: int
    noop: bool
    description: str
    aborts_canary: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "generation": self.generation,
            "noop": self.noop,
            "description": self.description,
            "aborts_canary": self.aborts_canary,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangePlan:
        return cls(action=data["action"], model=data["model"], from_version=data.get("from_version"),
                   to_version=data.get("to_version"), generation=int(data["generation"]), noop=bool(data["noop"]),
                   description=data["description"], aborts_canary=data.get("aborts_canary"))
