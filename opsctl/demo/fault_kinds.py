"""The demo's fault kinds, apart from the fault machinery so every CLI start can name them cheaply."""

from __future__ import annotations

import enum


class FaultKind(enum.StrEnum):
    LATENCY = "latency"
    ERRORS = "errors"
    DRIFT = "drift"
    ACCURACY = "accuracy"
    CRASH = "crash"
    STUCK_ROUTING = "stuck-routing"


FAULT_KINDS: tuple[str, ...] = tuple(kind.value for kind in FaultKind)
# A crash fault cannot be cleared: the process is gone.
CLEARABLE_FAULT_KINDS: tuple[str, ...] = tuple(kind for kind in FAULT_KINDS if kind != FaultKind.CRASH)
