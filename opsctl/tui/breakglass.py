"""Break-glass rollback from the TUI while the daemon is unreachable: the CLI's own direct path.

``opsctl rollback MODEL`` with the daemon down acts on the registry file directly
(:class:`opsctl.backends.DirectBackend`, audited ``via=direct (daemon down)``) and moves traffic
through the routing document; :func:`opsctl.change_report.report_change` says what changed and
whether traffic followed. This runs exactly that, then (when a traffic meter is given) watches
Prometheus as ``opsctl rollback --verify`` does and audits what it measured. Blocking: call it
from a thread worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsctl.change_report import ChangeReport, report_change
from opsctl.clock import Clock, SystemClock, parse_utc
from opsctl.domain import ChangePlan, ChangeResult, Outcome

if TYPE_CHECKING:
    from opsctl.backends import Backend
    from opsctl.rollout_verify import TrafficMeter, TrafficSnapshot, Verification


@dataclass(frozen=True)
class BreakGlassResult:
    """What the direct rollback changed, in the CLI's words, and what the traffic check measured."""

    result: ChangeResult
    report: ChangeReport
    verification: Verification | None
    verify_note: str  # why there is no verification, or ""

    @property
    def changed(self) -> bool:
        return self.result.outcome is not Outcome.NOOP

    def lines(self) -> list[str]:
        lines = list(self.report.lines)
        if self.verification is not None:
            state = "moved" if self.verification.moved else "NOT verified"
            lines.append(f"verify ({state}): {self.verification.summary()}")
        elif self.verify_note:
            lines.append(f"verify: {self.verify_note}")
        return lines


class BreakGlass:
    """Plan and perform a rollback on the registry directly, as ``opsctl rollback MODEL`` does without a daemon."""

    def __init__(self, backend: Callable[[], Backend], *, start_command: str, meter: TrafficMeter | None = None,
                 window_seconds: float = 15.0, within_seconds: float = 60.0, max_share_percent: float = 5.0,
                 clock: Clock | None = None) -> None:
        self._factory = backend
        self._backend: Backend | None = None
        self.start_command = start_command
        self.meter = meter
        self.window_seconds = window_seconds
        self.within_seconds = within_seconds
        self.max_share_percent = max_share_percent
        self.clock = clock or SystemClock()

    def backend(self) -> Backend:
        if self._backend is None:  # opened on first use: the registry file is not touched while the daemon is up
            self._backend = self._factory()
        return self._backend

    def plan(self, model: str) -> ChangePlan:
        return self.backend().plan_rollback(model, None)

    def command(self, model: str, reason: str) -> str:
        from opsctl.tui.panels import shell_double_quoted

        verify = " --verify" if self.meter is not None else ""
        return f'opsctl rollback {model}{verify} --reason "{shell_double_quoted(reason)}"'

    def rollback(self, model: str, *, reason: str, expected_generation: int,
                 progress: Callable[[str], None] | None = None) -> BreakGlassResult:
        """Roll back on the registry; then, with a meter, watch traffic leave the old version and audit it."""
        backend = self.backend()
        before: TrafficSnapshot | None = None
        if self.meter is not None:
            before = self.meter.measure(model, self.clock.now(), self.window_seconds)
        result = backend.rollback(model, to=None, reason=reason, expected_generation=expected_generation)
        report = report_change(result, daemon_up=False, start_command=self.start_command)
        if result.outcome is Outcome.NOOP:
            return BreakGlassResult(result, report, None, "")
        if self.meter is None:
            return BreakGlassResult(result, report, None, "not measured (no traffic meter configured);"
                                    f" `opsctl rollback {model} --verify` measures it from Prometheus")
        if progress is not None:
            progress(f"{'  '.join(report.lines)}\nverifying: watching {model}'s traffic on {result.from_version}"
                     f" for up to {max(self.within_seconds, self.window_seconds):g} s…")
        from opsctl.rollout_verify import verify_traffic_moved

        deployment = result.extra.get("deployment") or {}
        updated = deployment.get("updated_at") if isinstance(deployment, dict) else None
        changed_at = parse_utc(updated) if isinstance(updated, str) else self.clock.now()
        verification = verify_traffic_moved(
            self.meter, model=model, from_version=result.from_version, to_version=result.to_version,
            before=before, changed_at=changed_at, clock=self.clock, window_seconds=self.window_seconds,
            within_seconds=self.within_seconds, max_share_percent=self.max_share_percent)
        backend.record_verification(model, from_version=result.from_version, to_version=result.to_version,
                                    moved=verification.moved, detail=verification.summary(), reason=reason)
        return BreakGlassResult(result, report, verification, "")
