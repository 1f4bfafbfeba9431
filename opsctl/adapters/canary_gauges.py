"""The canary series the daemon exports on ``/metrics``, for the TUI and dashboards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from opsctl.core.canary import Phase

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_PHASES = [p.value for p in Phase]
_VERDICT_VALUE = {"pass": 1.0, "inconclusive": 0.0, "fail": -1.0, "not_applicable": float("nan")}


class CanaryGauges:
    """Gauges for the TUI and dashboards: stage, weight, failed checks, every gate's verdict and value."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.weight = Gauge("opsctl_canary_weight", "Percent of traffic the canary version has",
                            ["model", "canary_version"], registry=r)
        self.stage = Gauge("opsctl_canary_stage", "Current stage (1-based) of the model's canary", ["model"],
                           registry=r)
        self.phase = Gauge("opsctl_canary_phase", "1 for the canary's current phase", ["model", "phase"],
                           registry=r)
        self.failed = Gauge("opsctl_canary_failed_checks", "Failed evaluations so far", ["model"], registry=r)
        self.verdict = Gauge("opsctl_canary_gate_verdict",
                             "Last verdict per gate: 1 pass, 0 inconclusive, -1 fail, NaN not applicable",
                             ["model", "gate"], registry=r)
        self.value = Gauge("opsctl_canary_gate_value", "The number behind the gate's last verdict",
                           ["model", "gate"], registry=r)
        self._weight_labels: dict[str, str] = {}

    def update(self, documents: list[dict[str, Any]]) -> None:
        """Set every series from canary status documents (``CanaryService.status_document``)."""
        for doc in documents:
            model = doc["model"]
            old = self._weight_labels.get(model)
            if old is not None and old != doc["canary_version"]:
                self.weight.remove(model, old)
            self._weight_labels[model] = doc["canary_version"]
            self.weight.labels(model, doc["canary_version"]).set(doc["weight"])
            self.stage.labels(model).set(doc["stage"])
            self.failed.labels(model).set(doc["failed_checks"])
            for phase in _PHASES:
                self.phase.labels(model, phase).set(1.0 if doc["phase"] == phase else 0.0)
            for gate in doc["gates"]:
                self.verdict.labels(model, gate["name"]).set(_VERDICT_VALUE.get(gate["verdict"], 0.0))
                value = gate.get("value")
                self.value.labels(model, gate["name"]).set(float("nan") if value is None else float(value))
