"""What an operator can tell a canary: start, pause, resume, promote, abort, approve."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# --------------------------------------------------------------------------- inputs


class CommandKind(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"  # skip the remaining stages
    ABORT = "abort"  # back to weight 0 now
    APPROVE = "approve"  # the manual approval before the final promotion


@dataclass(frozen=True)
class Command:
    """An operator command; ``actor`` and ``reason`` end up in the transition reason and the audit log."""

    kind: CommandKind
    reason: str = ""
    actor: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CommandKind(self.kind))
