"""Model changes counted from a real registry's audit log (SQLite and PostgreSQL): promotes, rollbacks and canary
steps, incrementally."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsctl.adapters.model_changes import ModelChangeCounts
from opsctl.adapters.registry import Registry
from opsctl.adapters.registry_engine import RegistrySettings
from opsctl.adapters.registry_reader import RegistryLocation
from opsctl.core.model_changes import CANARY_STEPS, CHANGE_KINDS
from opsctl.domain import Actor, Outcome
from opsctl.errors import StorageError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def audit(registry: Registry, action: str, model: str | None = "fraud", outcome: Outcome = Outcome.OK) -> None:
    with registry.write() as tx:
        tx.append_audit(actor=Actor("alice", 1000), action=action, model=model, from_version=None, to_version="2",
                        reason="", outcome=outcome, now=T0)


def test_counts_changes_only_successful_ones_and_reads_each_row_once(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry(publish_routing=False)
    for action in ("register", "promote", "canary_start", "canary_evaluation", "canary_check_failed",
                   "canary_stage", "canary_hook_pre_rollout", "canary_weight", "canary_rolled_back", "alert.ack"):
        audit(registry, action)
    audit(registry, "rollback", outcome=Outcome.CONFLICT)
    audit(registry, "promote", model=None)
    url = registry.postgres.url if registry.postgres is not None else ""
    counts = ModelChangeCounts(RegistryLocation.of(RegistrySettings(url=url), registry.path))
    counts.refresh()
    first = {("fraud", "promote"): 1, ("fraud", "canary_start"): 1, ("fraud", "canary_stage"): 1,
             ("fraud", "canary_rolled_back"): 1}
    assert nonzero(counts) == first
    # Every kind of a known model is there from the start, at 0 (changes() cannot see a series born at 1).
    assert set(counts.counts()) == {("fraud", kind) for kind in CHANGE_KINDS}
    counts.refresh()  # nothing new: nothing counted twice
    assert nonzero(counts) == first
    audit(registry, "rollback")
    audit(registry, "promote", model="churn")
    counts.refresh()
    assert nonzero(counts) == {**first, ("fraud", "rollback"): 1, ("churn", "promote"): 1}
    assert len(counts.counts()) == 2 * len(CHANGE_KINDS)


def nonzero(counts: ModelChangeCounts) -> dict[tuple[str, str], int]:
    return {key: n for key, n in counts.counts().items() if n}


def test_the_change_kinds_are_the_canary_audit_actions_that_are_steps() -> None:
    from opsctl.core.canary import CommandKind, Phase

    steps = {"canary_stage"} | {f"canary_{c.value}" for c in CommandKind} | {f"canary_{p.value}" for p in Phase}
    assert set(CANARY_STEPS) == steps and len(CANARY_STEPS) == len(steps)


def test_an_unreadable_registry_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(b"not a database at all, not even close" * 100)
    with pytest.raises(StorageError, match="cannot read the audit log"):
        ModelChangeCounts(path).refresh()
