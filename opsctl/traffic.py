"""Whether a production change reached traffic: the fact every change report carries.

A promote or rollback changes a registry row; traffic follows only through the routing document
(the default ``routing_table`` actuator) or a ``command``/``webhook`` actuator. :class:`TrafficChange`
says which, and whether it worked, so no shell prints "done" for a change traffic has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.domain import Deployment

if TYPE_CHECKING:
    from opsctl.adapters.actuators import Retrying, Split
    from opsctl.adapters.routing_document import Publication
    from opsctl.config import Settings


@dataclass(frozen=True)
class TrafficChange:
    """How a change was applied to traffic: ``via`` routing_document, command or webhook."""

    applied: bool
    via: str
    detail: str
    routing_generation: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "via": self.via, "detail": self.detail,
                "routing_generation": self.routing_generation}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrafficChange:
        generation = data.get("routing_generation")
        return cls(bool(data["applied"]), str(data["via"]), str(data["detail"]),
                   int(generation) if generation is not None else None)


def traffic_from_publication(publication: Publication | None) -> TrafficChange:
    """The traffic half of a change applied through the routing document."""
    if publication is None:
        return TrafficChange(False, "routing_document", "the routing document is not published by this registry")
    if not publication.ok:
        return TrafficChange(False, "routing_document",
                             f"routing document {publication.path} NOT updated: {publication.error}")
    return TrafficChange(True, "routing_document",
                         f"routing document updated (generation {publication.generation})", publication.generation)


def split_of(deployment: Deployment, *, aborted_canary: str | None = None) -> Split:
    """The actuator's split for a deployment (an aborted canary is named, at weight 0)."""
    from opsctl.adapters.actuators import Split

    canary = deployment.canary_version or aborted_canary
    return Split(deployment.model, deployment.production_version, canary,
                 deployment.canary_weight if deployment.canary_version else 0.0)


def traffic_actuator(settings: Settings) -> Retrying | None:
    """The ``[actuators]`` command or webhook actuator (with its retries), None for the routing table.

    Both the daemon and the one-shot CLI acting on the registry directly (daemon down) run it for a
    promote or rollback, so a break-glass change reaches traffic the same way; httpx and the
    actuator module load only when one is configured.
    """
    if settings.actuators.kind == "routing_table":
        return None
    from opsctl.adapters.actuators import build_actuator

    return build_actuator(settings.actuators)
