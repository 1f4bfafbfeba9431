"""Which audit actions change what a model serves: promotes, rollbacks and canary steps.

The daemon counts them per model in ``opsctl_model_changes_total{model, change}`` so a dashboard can mark
them (Grafana annotations on ``changes()`` of the counter, no plugin needed).

>>> [a for a in ("promote", "canary_stage", "canary_evaluation", "alert.ack", "canary_hook_rollback")
...  if is_model_change(a)]
['promote', 'canary_stage']
"""

from __future__ import annotations

# Audit actions of the canary that are not steps: a look that changed nothing the users see, a failed
# check (the step, if any, is the rollback that follows), a weight the actuator could not apply.
_NOT_STEPS = frozenset({"canary_evaluation", "canary_check_failed", "canary_weight"})


def is_model_change(action: str) -> bool:
    """True for ``promote``, ``rollback`` and canary steps (start, stage, pause, resume, promote, abort, end)."""
    if action in ("promote", "rollback"):
        return True
    return action.startswith("canary_") and action not in _NOT_STEPS and not action.startswith("canary_hook_")
