"""The ``[canary]`` section: how a canary moves traffic (stages, timers, limits) and how it is judged."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Literal

from opsctl.core.gates import CustomGate, GatePolicy
from opsctl.errors import UsageError

DEFAULT_STAGES: tuple[float, ...] = (5.0, 20.0, 50.0, 100.0)

# --------------------------------------------------------------------------- policy


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


@dataclass(frozen=True)
class CanaryPolicy:
    """The ``[canary]`` section: how a canary moves traffic and how it is judged.

    Traffic steps are either ``stages`` (percent of traffic to the canary, strictly increasing)
    or, Flagger-style, ``step_weight`` up to ``max_weight`` (5, 10, ... 50). After the last
    stage passes, the canary version is promoted to production (after ``approve`` when
    ``manual_approval``). Per-model and per-start overrides: :meth:`merged`.
    """

    stages: list[float] = field(default_factory=lambda: list(DEFAULT_STAGES))
    step_weight: float | None = None
    max_weight: float | None = None
    min_stage_seconds: float = 300.0
    analysis_interval_seconds: float = 60.0
    # Failed evaluations (over the whole canary) before an automatic rollback.
    failure_threshold: int = 3
    # Consecutive inconclusive evaluations with missing data before pausing for a human; an
    # evaluation that is only collecting evidence (sequential tests underway) does not count.
    inconclusive_limit: int = 5
    # Consecutive metrics-source errors before on_metrics_error applies.
    metrics_error_limit: int = 3
    on_metrics_error: Literal["pause", "rollback"] = "pause"
    # Longest a stage may go without advancing while progressing.
    progress_deadline_seconds: float = 1800.0
    on_progress_deadline: Literal["pause", "fail"] = "pause"
    manual_approval: bool = False
    # Error rate, canary vs production and against the ceiling (opsctl.core.sequential): fail on
    # an exact test valid under continuous looks at error_rate_alpha over the whole canary; pass
    # on Wald's SPRT of "as good as production" against "worse by the margin" at this power.
    error_rate_alpha: float = 0.01
    error_rate_power: float = 0.8
    # The margin: production's rate times this (1.0 = a doubling) ...
    error_rate_mde_relative: float = 1.0
    # ... with production's rate floored at this (a spotless production still leaves a margin).
    error_rate_min_baseline: float = 0.001
    # Absolute ceiling in percent; unset = the SLA's error_rate_percent passed in by the daemon.
    max_error_rate_percent: float | None = None
    # Latency: the share of requests over the SLA's p95 bound, canary vs production, same tests;
    # the margin is this times production's share, floored at latency_min_share.
    latency_margin_relative: float = 1.0
    latency_min_share: float = 0.01
    # Turn off for services that export no latency histogram.
    latency_gate: bool = True
    sla_gate: bool = True
    # Model quality from delayed labels (turn off for models without feedback).
    accuracy_gate: bool = True
    # Absolute accuracy drop tolerated against production (0.02 = two points): the pass margin.
    accuracy_tolerance: float = 0.02
    accuracy_alpha: float = 0.05
    drift_gate: bool = False
    custom_gates: list[CustomGate] = field(default_factory=list)

    _FLOATS: ClassVar[tuple[str, ...]] = (
        "min_stage_seconds",
        "analysis_interval_seconds",
        "progress_deadline_seconds",
        "error_rate_alpha",
        "error_rate_power",
        "error_rate_mde_relative",
        "error_rate_min_baseline",
        "latency_margin_relative",
        "latency_min_share",
        "accuracy_tolerance",
        "accuracy_alpha",
    )
    _OPTIONAL_FLOATS: ClassVar[tuple[str, ...]] = ("step_weight", "max_weight", "max_error_rate_percent")
    _INTS: ClassVar[tuple[str, ...]] = (
        "failure_threshold",
        "inconclusive_limit",
        "metrics_error_limit",
    )
    _BOOLS: ClassVar[tuple[str, ...]] = ("manual_approval", "latency_gate", "sla_gate", "accuracy_gate", "drift_gate")

    def __post_init__(self) -> None:
        self._coerce_types()
        if self.step_weight is None:
            if self.max_weight is not None:
                raise ValueError("max_weight needs step_weight (or use stages)")
            self._check_stages(self.stages, "stages")
        else:
            if [float(s) for s in self.stages] != list(DEFAULT_STAGES):
                raise ValueError("set either stages or step_weight/max_weight, not both")
            if not 0 < self.step_weight <= 100:
                raise ValueError(f"step_weight must be a percentage in (0, 100], got {self.step_weight}")
            top = 100.0 if self.max_weight is None else self.max_weight
            if not self.step_weight <= top <= 100:
                raise ValueError(f"max_weight must be between step_weight and 100, got {self.max_weight}")
        if self.min_stage_seconds < 0:
            raise ValueError(f"min_stage_seconds must be >= 0, got {self.min_stage_seconds}")
        if self.analysis_interval_seconds <= 0:
            raise ValueError(f"analysis_interval_seconds must be > 0, got {self.analysis_interval_seconds}")
        for name in ("failure_threshold", "inconclusive_limit", "metrics_error_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.on_metrics_error not in ("pause", "rollback"):
            raise ValueError(f"on_metrics_error must be 'pause' or 'rollback', got {self.on_metrics_error!r}")
        if self.on_progress_deadline not in ("pause", "fail"):
            raise ValueError(f"on_progress_deadline must be 'pause' or 'fail', got {self.on_progress_deadline!r}")
        # A stage cannot advance before min_stage_seconds and an evaluation after it, so a shorter
        # deadline would fail every canary.
        shortest = self.min_stage_seconds + self.analysis_interval_seconds
        if self.progress_deadline_seconds < shortest:
            raise ValueError(
                f"progress_deadline_seconds ({self.progress_deadline_seconds:g}) must be at least "
                f"min_stage_seconds + analysis_interval_seconds ({shortest:g})"
            )
        for name in ("error_rate_alpha", "error_rate_power", "accuracy_alpha", "error_rate_min_baseline"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {getattr(self, name)}")
        if self.error_rate_mde_relative <= 0:
            raise ValueError(f"error_rate_mde_relative must be > 0, got {self.error_rate_mde_relative}")
        if self.error_rate_min_baseline * (1 + self.error_rate_mde_relative) >= 1:
            raise ValueError("error_rate_min_baseline * (1 + error_rate_mde_relative) must stay below 1")
        if self.max_error_rate_percent is not None and not 0 < self.max_error_rate_percent <= 100:
            raise ValueError(f"max_error_rate_percent must be in (0, 100], got {self.max_error_rate_percent}")
        if self.latency_margin_relative <= 0:
            raise ValueError(f"latency_margin_relative must be > 0, got {self.latency_margin_relative}")
        if not 0 < self.latency_min_share < 1:
            raise ValueError(f"latency_min_share must be strictly between 0 and 1, got {self.latency_min_share}")
        if not 0 < self.accuracy_tolerance < 1:
            raise ValueError(f"accuracy_tolerance must be in (0, 1), got {self.accuracy_tolerance}")
        names = [g.name for g in self.custom_gates]
        if len(set(names)) != len(names):
            raise ValueError(f"custom gate names must be unique, got {names}")

    def _coerce_types(self) -> None:
        # TOML integers arrive for float keys, and JSON round trips need plain floats.
        for name in self._FLOATS:
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in self._OPTIONAL_FLOATS:
            value = getattr(self, name)
            if value is not None:
                if not _is_number(value) or not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, got {value!r}")
                object.__setattr__(self, name, float(value))
        for name in self._INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        for name in self._BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.stages, str) or not isinstance(self.stages, list | tuple):
            raise ValueError(f"stages must be a list of percentages, got {self.stages!r}")
        for value in self.stages:
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"stages must hold numbers, got {value!r}")
        object.__setattr__(self, "stages", [float(s) for s in self.stages])
        gates = []
        for gate in self.custom_gates:
            if isinstance(gate, Mapping):
                unknown = set(gate) - {f.name for f in fields(CustomGate)}
                if unknown:
                    raise ValueError(f"custom gate has unknown keys: {sorted(unknown)}")
                try:
                    gate = CustomGate(**gate)
                except TypeError as error:
                    raise ValueError(f"custom gate is incomplete: {error}") from None
            if not isinstance(gate, CustomGate):
                raise ValueError(f"custom_gates must hold tables of name, query, comparator, threshold, got {gate!r}")
            gates.append(gate)
        object.__setattr__(self, "custom_gates", gates)

    @staticmethod
    def _check_stages(stages: list[float], name: str) -> None:
        if not stages:
            raise ValueError(f"{name} must not be empty")
        previous = 0.0
        for weight in stages:
            if not 0 < weight <= 100:
                raise ValueError(f"{name} must be percentages in (0, 100], got {weight:g}")
            if weight <= previous:
                raise ValueError(f"{name} must be strictly increasing, got {[f'{s:g}' for s in stages]}")
            previous = weight

    @property
    def stage_weights(self) -> tuple[float, ...]:
        """The traffic percentage of each stage, in order."""
        if self.step_weight is None:
            return tuple(self.stages)
        top = 100.0 if self.max_weight is None else self.max_weight
        weights: list[float] = []
        k = 1
        while True:
            # Rounded so 3 x 0.1 is 0.3, not 0.30000000000000004.
            weight = round(self.step_weight * k, 9)
            if weight >= top:
                break
            weights.append(weight)
            k += 1
        weights.append(top)
        return tuple(weights)

    def merged(self, overrides: Mapping[str, Any]) -> CanaryPolicy:
        """This policy with ``overrides`` (per model, then per start) applied; validated again.

        Setting ``stages`` drops an inherited ``step_weight``/``max_weight`` and vice versa, so a
        start can switch styles.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown canary policy keys: {', '.join(unknown)}")
        changes = dict(overrides)
        if "stages" in changes and "step_weight" not in changes:
            changes.setdefault("max_weight", None)
            changes["step_weight"] = None
        if ("step_weight" in changes or "max_weight" in changes) and "stages" not in changes:
            changes["stages"] = list(DEFAULT_STAGES)
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "custom_gates":
                value = [g.to_json() for g in value]
            elif f.name == "stages":
                value = list(value)
            data[f.name] = value
        return data

    @property
    def gate_policy(self) -> GatePolicy:
        """The analysis part of this policy, as the gates take it."""
        return GatePolicy(
            error_rate_alpha=self.error_rate_alpha,
            error_rate_power=self.error_rate_power,
            error_rate_mde_relative=self.error_rate_mde_relative,
            error_rate_min_baseline=self.error_rate_min_baseline,
            max_error_rate_percent=self.max_error_rate_percent,
            latency_margin_relative=self.latency_margin_relative,
            latency_min_share=self.latency_min_share,
            latency_gate=self.latency_gate,
            sla_gate=self.sla_gate,
            accuracy_gate=self.accuracy_gate,
            accuracy_tolerance=self.accuracy_tolerance,
            accuracy_alpha=self.accuracy_alpha,
            drift_gate=self.drift_gate,
            custom_gates=tuple(self.custom_gates),
            stages=len(self.stage_weights),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryPolicy:
        """Rebuild a policy saved with :meth:`to_json` (raises ValueError on unknown keys).

        Keys of the fixed-sample gates (``min_requests``, ``min_labels``, ``latency_ratio_tolerance``,
        ``latency_slack_seconds``) in policies stored before the sequential gates are dropped.
        """
        data = {k: v for k, v in data.items() if k not in _RETIRED_KEYS}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown canary policy keys: {', '.join(unknown)}")
        return cls(**dict(data))


_RETIRED_KEYS = frozenset({"min_requests", "min_labels", "latency_ratio_tolerance", "latency_slack_seconds"})


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` strings (``--set``) into policy overrides; values are parsed as TOML."""
    import tomllib

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: a string (e.g. on_metrics_error=rollback)
        overrides[key] = value
    return overrides
