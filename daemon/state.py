"""Everything the API handlers and jobs share, built once at start-up."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.registry import Registry
from opsctl.clock import Clock
from opsctl.config import Settings
from opsctl.services.registry import RegistryService
from opsctld.events import EventBus
from opsctld.jobs import JobRunner
from opsctld.metrics import DaemonMetrics

T = TypeVar("T")


@dataclass
class DaemonState:
    settings: Settings
    registry: Registry
    artifacts: ArtifactStore
    service: RegistryService
    bus: EventBus
    metrics: DaemonMetrics
    runner: JobRunner
    clock: Clock
    started_at: datetime
    config_path: str | None
    pid: int = field(default_factory=os.getpid)
    # Extra sections of the status document, filled by later subsystems (health, canary, ...).
    status_providers: dict[str, Any] = field(default_factory=dict)
    # Each subsystem's long-lived service object, created on first use (see ``shared``).
    services: dict[str, Any] = field(default_factory=dict)
    _services_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shared(self, name: str, build: Callable[[], T]) -> T:
        """The subsystem service called ``name``, built once per daemon by whichever caller asks first."""
        with self._services_lock:
            if name not in self.services:
                self.services[name] = build()
            return self.services[name]  # type: ignore[no-any-return]
