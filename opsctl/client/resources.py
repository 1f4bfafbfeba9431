"""The daemon's API by resource: ``client.models``, ``client.canaries``, ``client.alerts``, ``client.health``,
``client.drift``, ``client.retrain``. Each method is one request and returns a typed document
(:mod:`opsctl.documents`, :mod:`opsctl.domain`); every path segment is quoted with :func:`path_segment`,
so a model called ``a/b`` or ``my model`` is one segment, never two.

The documents module is imported by the methods that return its types: its dataclasses cost
milliseconds to create, which a one-shot command that never uses them should not pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from opsctl.domain import AuditEvent, ChangePlan, ChangeResult, ModelSummary, ModelVersion

if TYPE_CHECKING:
    from opsctl.client.transport import Transport
    from opsctl.documents import AlertList, CanaryStatus, CheckReport, HealthReport, RetrainRun, RetrainTrigger, Silence


def path_segment(value: str) -> str:
    """``value`` quoted as one segment of an API path (a ``/`` or a space in a model name stays inside it)."""
    return quote(value, safe="")


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Models(_Resource):
    """The registry: models, versions, promotions and rollbacks (``/v1/models``, ``/v1/history``)."""

    def list(self) -> list[ModelSummary]:
        return [ModelSummary.from_json(m) for m in self._t.get("/v1/models")]

    def versions(self, model: str) -> list[ModelVersion]:
        return [ModelVersion.from_json(v) for v in self._t.get(f"/v1/models/{path_segment(model)}/versions")]

    def register(self, model: str, body: dict[str, Any]) -> ModelVersion:
        return ModelVersion.from_json(self._t.post(f"/v1/models/{path_segment(model)}/versions", body))

    def plan(self, action: str, model: str, version: str | None) -> ChangePlan:
        """What ``promote`` (to ``version``) or ``rollback`` (to ``version`` or the previous one) would do."""
        key = "version" if action == "promote" else "to"
        return ChangePlan.from_json(self._t.get(f"/v1/models/{path_segment(model)}/plan/{path_segment(action)}",
                                                **{key: version}))

    def promote(self, model: str, version: str, *, reason: str, expected_generation: int | None) -> ChangeResult:
        return ChangeResult.from_json(self._t.post(
            f"/v1/models/{path_segment(model)}/promote",
            {"version": version, "reason": reason, "expected_generation": expected_generation}))

    def rollback(self, model: str, *, to: str | None, reason: str, expected_generation: int | None) -> ChangeResult:
        return ChangeResult.from_json(self._t.post(
            f"/v1/models/{path_segment(model)}/rollback",
            {"to": to, "reason": reason, "expected_generation": expected_generation}))

    def verify(self, model: str, version: str) -> None:
        self._t.post(f"/v1/models/{path_segment(model)}/versions/{path_segment(version)}/verify", {})

    def record_verification(self, model: str, *, from_version: str | None, to_version: str | None, moved: bool,
                            detail: str, reason: str) -> int:
        """Audit the outcome of ``rollback --verify``; returns the audit entry's id."""
        body = {"from_version": from_version, "to_version": to_version, "moved": moved, "detail": detail,
                "reason": reason}
        return int(self._t.post(f"/v1/models/{path_segment(model)}/verifications", body)["audit_id"])

    def history(self, model: str | None = None, limit: int = 50) -> list[AuditEvent]:
        return [AuditEvent.from_json(e) for e in self._t.get("/v1/history", model=model, limit=limit)]


class Canaries(_Resource):
    """Canary releases run by the daemon (``/v1/canaries``)."""

    COMMANDS = ("pause", "resume", "promote", "abort", "approve")

    def list(self, model: str | None = None) -> list[CanaryStatus]:
        """The latest canary of each model (or of ``model`` only; a NotFoundError when it has none)."""
        from opsctl.documents import CanaryStatus

        return [CanaryStatus.from_json(d) for d in self._t.get("/v1/canaries", model=model)]

    def start(self, model: str, version: str, *, reason: str = "",
              overrides: dict[str, Any] | None = None) -> CanaryStatus:
        from opsctl.documents import CanaryStatus

        return CanaryStatus.from_json(self._t.post("/v1/canaries", {
            "model": model, "version": version, "reason": reason, "overrides": overrides or {}}))

    def command(self, model: str, command: str, *, reason: str = "") -> CanaryStatus:
        from opsctl.documents import CanaryStatus

        if command not in self.COMMANDS:
            raise ValueError(f"unknown canary command {command!r}")
        return CanaryStatus.from_json(self._t.post(
            f"/v1/canaries/{path_segment(model)}/{command}", {"reason": reason}))

    def pause(self, model: str, *, reason: str = "") -> CanaryStatus:
        return self.command(model, "pause", reason=reason)

    def resume(self, model: str, *, reason: str = "") -> CanaryStatus:
        return self.command(model, "resume", reason=reason)

    def promote(self, model: str, *, reason: str = "") -> CanaryStatus:
        return self.command(model, "promote", reason=reason)

    def abort(self, model: str, *, reason: str = "") -> CanaryStatus:
        return self.command(model, "abort", reason=reason)

    def approve(self, model: str, *, reason: str = "") -> CanaryStatus:
        return self.command(model, "approve", reason=reason)


class Alerts(_Resource):
    """Alerts and silences (``/v1/alerts``, ``/v1/silences``); every change is audited by the daemon."""

    def list(self, *, include_resolved: bool = False) -> AlertList:
        from opsctl.documents import AlertList

        return AlertList.from_json(self._t.get("/v1/alerts", all="1" if include_resolved else None))

    def ack(self, alert_id: str, *, for_seconds: float | None = None, comment: str = "",
            reason: str = "") -> dict[str, Any]:
        """The acknowledged alert's document."""
        return dict(self._t.post(f"/v1/alerts/{path_segment(alert_id)}/ack",
                                 {"for_seconds": for_seconds, "comment": comment, "reason": reason}))

    def silence(self, matchers: Sequence[str], *, for_seconds: float, comment: str, reason: str = "") -> Silence:
        from opsctl.documents import Silence

        return Silence.from_json(self._t.post("/v1/silences", {
            "matchers": list(matchers), "for_seconds": for_seconds, "comment": comment, "reason": reason}))

    def silences(self, *, include_expired: bool = False) -> list[Silence]:
        from opsctl.documents import Silence

        document = self._t.get("/v1/silences", all="1" if include_expired else None)
        return [Silence.from_json(s) for s in document["silences"]]

    def unsilence(self, silence_id: str, *, reason: str = "") -> Silence:
        from opsctl.documents import Silence

        return Silence.from_json(self._t.post(f"/v1/silences/{path_segment(silence_id)}/expire", {"reason": reason}))


class Health(_Resource):
    """SLA health of the deployed versions (``/v1/health``)."""

    def get(self, model: str | None = None) -> HealthReport:
        from opsctl.documents import HealthReport

        return HealthReport.from_json(self._t.get("/v1/health", model=model))


class Drift(_Resource):
    """Drift and performance checks of a model's deployed versions."""

    def get(self, model: str, *, history: int | None = None) -> CheckReport:
        from opsctl.documents import CheckReport

        return CheckReport.from_json(self._t.get(f"/v1/drift/{path_segment(model)}", history=history))

    def performance(self, model: str) -> CheckReport:
        from opsctl.documents import CheckReport

        return CheckReport.from_json(self._t.get(f"/v1/performance/{path_segment(model)}"))


class Retrain(_Resource):
    """Retraining runs (``/v1/retrain``)."""

    def trigger(self, model: str, *, reason: str = "", trigger: str = "manual") -> RetrainTrigger:
        from opsctl.documents import RetrainTrigger

        return RetrainTrigger.from_json(self._t.post(f"/v1/models/{path_segment(model)}/retrain",
                                                     {"reason": reason, "wait": False, "trigger": trigger}))

    def runs(self, model: str | None = None, *, limit: int = 20) -> list[RetrainRun]:
        from opsctl.documents import RetrainRun

        return [RetrainRun.from_json(r) for r in self._t.get("/v1/retrain", model=model, limit=limit)]

    def show(self, run_id: str, *, log_offset: int | None = None) -> RetrainRun:
        from opsctl.documents import RetrainRun

        return RetrainRun.from_json(self._t.get(f"/v1/retrain/{path_segment(run_id)}", log_offset=log_offset))

    def approve(self, run_id: str, *, reason: str = "") -> RetrainRun:
        from opsctl.documents import RetrainRun

        return RetrainRun.from_json(self._t.post(f"/v1/retrain/{path_segment(run_id)}/approve", {"reason": reason}))
