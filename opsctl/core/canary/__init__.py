"""Canary progression as a pure state machine, in five parts.

- :mod:`~opsctl.core.canary.policy`: :class:`CanaryPolicy`, the ``[canary]`` section (its analysis
  part handed to the gates as :class:`~opsctl.core.gates.GatePolicy`);
- :mod:`~opsctl.core.canary.inputs`: operator :class:`Command` s;
- :mod:`~opsctl.core.canary.actions`: what the machine asks the shell to do;
- :mod:`~opsctl.core.canary.state`: :class:`CanaryState`, :class:`Transition`;
- :mod:`~opsctl.core.canary.machine`: :func:`step`, the transitions (rules in its docstring).
"""

from opsctl.core.canary.actions import (
    ALERT_AWAITING_APPROVAL,
    ALERT_FAILED,
    ALERT_PAUSED,
    ALERT_ROLLED_BACK,
    Action,
    HookKind,
    PromoteVersion,
    RaiseAlert,
    ResolveAlert,
    RunHook,
    SetWeight,
    Severity,
    action_from_json,
)
from opsctl.core.canary.inputs import Command, CommandKind
from opsctl.core.canary.machine import step
from opsctl.core.canary.policy import DEFAULT_STAGES, CanaryPolicy
from opsctl.core.canary.state import CanaryState, Phase, Transition, new_canary

__all__ = [
    "ALERT_AWAITING_APPROVAL",
    "ALERT_FAILED",
    "ALERT_PAUSED",
    "ALERT_ROLLED_BACK",
    "DEFAULT_STAGES",
    "Action",
    "CanaryPolicy",
    "CanaryState",
    "Command",
    "CommandKind",
    "HookKind",
    "Phase",
    "PromoteVersion",
    "RaiseAlert",
    "ResolveAlert",
    "RunHook",
    "SetWeight",
    "Severity",
    "Transition",
    "action_from_json",
    "new_canary",
    "step",
]
