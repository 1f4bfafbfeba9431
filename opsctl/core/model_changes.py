"""Which audit actions change what a model serves: promotes, rollbacks and canary steps.

The daemon counts them per model in ``opsctl_model_changes_total{model, change}`` so a dashboard can mark
them (Grafana annotations on ``changes()`` of the counter, no plugin needed). Every change kind of every
known model is exported from the start, at 0 until it happens: ``changes()`` sees nothing on a series
whose first sample is already 1, so a first rollback would otherwise never be marked.

>>> [a for a in ("promote", "canary_stage", "canary_evaluation", "alert.ack", "canary_hook_rollback")
...  if is_model_change(a)]
['promote', 'canary_stage']
"""

from __future__ import annotations

# The canary's audit actions that are steps: its start, a stage change, an operator command
# (canary_<CommandKind>) and a phase change (canary_<Phase>); tests/core/test_model_changes.py checks
# this list against the canary's enums. A look that changed nothing, a failed check (the step, if any,
# is the rollback that follows) and a hook or weight failure are not steps.
CANARY_STEPS = ("canary_start", "canary_stage", "canary_pause", "canary_resume", "canary_promote", "canary_abort",
                "canary_approve", "canary_pending", "canary_progressing", "canary_paused", "canary_promoting",
                "canary_succeeded", "canary_failed", "canary_aborted", "canary_rolled_back")
CHANGE_KINDS = ("promote", "rollback", *CANARY_STEPS)


def is_model_change(action: str) -> bool:
    """True for ``promote``, ``rollback`` and canary steps (start, stage, commands, phase changes)."""
    return action in CHANGE_KINDS
