"""Everything the API handlers and jobs share, built once at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsctl.adapters.artifact_storage import ArtifactStorage
from opsctl.adapters.registry import Registry
from opsctl.clock import Clock
from opsctl.config import Settings
from opsctld.events import EventBus
from opsctld.jobs import JobRunner
from opsctld.metrics import DaemonMetrics
from opsctld.wiring import Services


@dataclass
class DaemonState:
    settings: Settings
    registry: Registry
    artifacts: ArtifactStorage
    services: Services
    bus: EventBus
    metrics: DaemonMetrics
    runner: JobRunner
    clock: Clock
    started_at: datetime
    config_path: str | None
    pid: int = field(default_factory=os.getpid)
    # Extra sections of the status document, registered by the subsystems at start (health, canary, ...).
    status_providers: dict[str, Callable[[], Any]] = field(default_factory=dict)
