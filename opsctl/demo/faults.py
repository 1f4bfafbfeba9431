"""Game-day faults for the demo's model servers: what each kind does, and their state.

All faults act inside the model server (set with ``POST /fault``, cleared with
``DELETE /fault``), so ``opsctl demo fault`` needs only the server's address:

==========  =======================================  ==============================================
kind        level means                              effect (what Prometheus sees)
==========  =======================================  ==============================================
latency     seconds added to every prediction        latency histogram shifts up
errors      fraction of predictions answered 500     ``status="error"`` rate
drift       shift in reference standard deviations   the server shifts *incoming* features before
            (categorical: share moved to the rarest  predicting and logs the shifted features, like
            category, ``min(1, level/4)``)           a broken upstream pipeline; labels stay true,
                                                     so accuracy drops as well
accuracy    fraction of feedback labels flipped      ``model_accuracy`` falls (noisy ground truth)
crash       (ignored)                                the process exits; the scrape target goes down
stuck-      (ignored)                                the server stops following routing changes and
routing                                              keeps its current split, like a proxy that
                                                     failed to reload (``opsctl rollback --verify``
                                                     must then say traffic did not move)
==========  =======================================  ==============================================

Every active fault is also exported as ``opsctl_demo_fault_active{model,model_version,kind}``
so a dashboard shows what was injected. Faults apply to all versions unless ``versions``
names some.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsctl.demo.fault_kinds import CLEARABLE_FAULT_KINDS as CLEARABLE_FAULT_KINDS
from opsctl.demo.fault_kinds import FAULT_KINDS as FAULT_KINDS
from opsctl.demo.fault_kinds import FaultKind as FaultKind

DEFAULT_LEVELS: dict[FaultKind, float] = {
    FaultKind.LATENCY: 0.5,
    FaultKind.ERRORS: 0.5,
    FaultKind.DRIFT: 2.0,
    FaultKind.ACCURACY: 0.4,
    FaultKind.CRASH: 0.0,
    FaultKind.STUCK_ROUTING: 0.0,
}

CRASH_EXIT_CODE = 70  # EX_SOFTWARE: tells a supervisor the server died on purpose


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    level: float
    versions: tuple[str, ...] = ()  # empty: every version
    features: tuple[str, ...] = ()  # drift only; empty: the model's first two features

    def __post_init__(self) -> None:
        if not math.isfinite(self.level):
            raise ValueError(f"fault level must be a finite number, got {self.level}")
        if self.kind in (FaultKind.ERRORS, FaultKind.ACCURACY) and not 0.0 <= self.level <= 1.0:
            raise ValueError(f"{self.kind} level is a fraction within [0, 1], got {self.level}")
        if self.kind == FaultKind.LATENCY and not 0.0 <= self.level <= 60.0:
            raise ValueError(f"latency level is seconds within [0, 60], got {self.level}")
        if self.features and self.kind != FaultKind.DRIFT:
            raise ValueError("only a drift fault takes features")

    def applies_to(self, version: str) -> bool:
        return not self.versions or version in self.versions

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Fault:
        """Parse a ``POST /fault`` body; ValueError with a readable message on nonsense."""
        if not isinstance(body, Mapping):
            raise ValueError("fault body must be a JSON object")
        unknown = set(body) - {"kind", "level", "versions", "features"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            kind = FaultKind(body.get("kind"))
        except ValueError:
            raise ValueError(
                f"fault kind must be one of {', '.join(k.value for k in FaultKind)}, got {body.get('kind')!r}"
            ) from None
        level = body.get("level")
        if level is None:
            level = DEFAULT_LEVELS[kind]
        if isinstance(level, bool) or not isinstance(level, int | float):
            raise ValueError(f"fault level must be a number, got {level!r}")
        versions = body.get("versions") or ()
        features = body.get("features") or ()
        if not all(isinstance(v, str) for v in [*versions, *features]):
            raise ValueError("versions and features must be lists of strings")
        return cls(kind, float(level), tuple(versions), tuple(features))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "level": self.level,
            "versions": list(self.versions),
            "features": list(self.features),
        }


class FaultState:
    """The active faults of one server (at most one per kind); thread-safe."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._faults: dict[FaultKind, Fault] = {}
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.kind] = fault

    def clear(self, kind: FaultKind | None = None) -> list[Fault]:
        """Remove one kind (or all); returns what was removed."""
        with self._lock:
            if kind is None:
                removed = list(self._faults.values())
                self._faults.clear()
            else:
                removed = [self._faults.pop(kind)] if kind in self._faults else []
        return removed

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults.values())

    def _get(self, kind: FaultKind, version: str) -> Fault | None:
        fault = self._faults.get(kind)
        return fault if fault is not None and fault.applies_to(version) else None

    def added_latency(self, version: str) -> float:
        fault = self._get(FaultKind.LATENCY, version)
        return fault.level if fault else 0.0

    def should_fail(self, version: str) -> bool:
        fault = self._get(FaultKind.ERRORS, version)
        return fault is not None and self._rng.random() < fault.level

    def routing_stuck(self) -> bool:
        with self._lock:
            return FaultKind.STUCK_ROUTING in self._faults

    def drift(self, version: str) -> Fault | None:
        return self._get(FaultKind.DRIFT, version)

    def noisy_label(self, version: str, label: int) -> int:
        """The label as the accuracy fault delivers it (binary labels flipped at random)."""
        fault = self._get(FaultKind.ACCURACY, version)
        if fault is not None and self._rng.random() < fault.level:
            return 1 - label
        return label
