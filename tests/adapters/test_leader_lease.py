"""Leader leases and the fencing token, on SQLite and on a real PostgreSQL: one holder, epochs only grow,
late writes of a superseded leader are refused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from opsctl.adapters.leader_lease import FencedError, LeaderLease, check_fence, read_lease
from opsctl.adapters.registry import Registry
from opsctl.domain import Actor, Outcome

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
TTL = 10.0

Make = Callable[..., Registry]


class Monotonic:
    """An injected monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _lease(registry: Registry, holder: str, clock: Monotonic | None = None) -> LeaderLease:
    return LeaderLease(registry, ttl_seconds=TTL, holder=holder, monotonic=clock or Monotonic())


def _fenced_audit(registry: Registry, epoch: int, what: str) -> None:
    """A job's state change: the fence check and the write in one transaction."""
    with registry.write() as tx:
        check_fence(tx, epoch)
        tx.append_audit(actor=Actor("opsctld", None, "job"), action=what, model="fraud", from_version=None,
                        to_version=None, reason="", outcome=Outcome.OK, now=T0)


def test_one_holder_at_a_time_and_a_takeover_after_expiry_gets_a_new_epoch(make_registry: Make) -> None:
    a, b = _lease(make_registry(), "a"), _lease(make_registry(), "b")
    first = a.tick(T0)
    assert first is not None and (first.holder, first.epoch) == ("a", 1)
    assert b.tick(T0 + timedelta(seconds=TTL - 0.001)) is None  # still a's
    renewed = a.tick(T0 + timedelta(seconds=5))
    assert renewed is not None and renewed.epoch == 1 and renewed.acquired_at == T0
    assert b.tick(T0 + timedelta(seconds=5 + TTL - 0.001)) is None  # the renewal moved the expiry
    taken = b.tick(T0 + timedelta(seconds=5 + TTL))
    assert taken is not None and (taken.holder, taken.epoch) == ("b", 2)
    assert a.tick(T0 + timedelta(seconds=5 + TTL)) is None and a.acting_epoch() is None


def test_a_superseded_leaders_late_write_is_refused_and_changes_nothing(make_registry: Make) -> None:
    registry = make_registry()
    old, new = _lease(make_registry(), "old"), _lease(make_registry(), "new")
    old_epoch = old.tick(T0).epoch  # type: ignore[union-attr]
    _fenced_audit(registry, old_epoch, "stage-1")
    # The old leader is paused past its lease; the other daemon takes over and writes.
    new_epoch = new.tick(T0 + timedelta(seconds=TTL)).epoch  # type: ignore[union-attr]
    _fenced_audit(registry, new_epoch, "stage-2")
    # The old leader wakes up with a transition computed before the pause: refused, not written.
    with pytest.raises(FencedError, match=f"epoch {new_epoch}.*carried epoch {old_epoch}"):
        _fenced_audit(registry, old_epoch, "stage-2-again")
    assert [e.action for e in registry.audit()] == ["stage-1", "stage-2"]
    with registry.read() as tx:
        assert tx.verify_audit_chain().ok


def test_a_holder_stops_acting_before_its_lease_can_expire(make_registry: Make) -> None:
    clock = Monotonic()
    lease = _lease(make_registry(), "a", clock)
    epoch = lease.tick(T0).epoch  # type: ignore[union-attr]
    clock.t += TTL * 0.74
    assert lease.acting_epoch() == epoch
    clock.t += TTL * 0.01  # renewals failed for 3/4 of the TTL: stop, a quarter before anyone may take over
    assert lease.acting_epoch() is None
    lease.tick(T0 + timedelta(seconds=TTL * 0.75))  # renewing again restores it, same epoch
    assert lease.acting_epoch() == epoch


def test_release_hands_over_at_once_and_epochs_keep_growing(make_registry: Make) -> None:
    a, b = _lease(make_registry(), "a"), _lease(make_registry(), "b")
    assert a.tick(T0).epoch == 1  # type: ignore[union-attr]
    a.release(T0 + timedelta(seconds=1))
    assert a.acting_epoch() is None
    assert b.tick(T0 + timedelta(seconds=1)).epoch == 2  # type: ignore[union-attr]
    b.release(T0 + timedelta(seconds=2))
    assert a.tick(T0 + timedelta(seconds=2)).epoch == 3  # type: ignore[union-attr]
    with make_registry().read() as tx:
        assert read_lease(tx).holder == "a"  # type: ignore[union-attr]


def test_daemons_racing_for_a_free_lease_elect_exactly_one(make_registry: Make) -> None:
    leases = [_lease(make_registry(), f"d{i}") for i in range(4)]
    leases[0].registry.schema_version()
    won: list[str] = []
    errors: list[BaseException] = []

    def race(lease: LeaderLease) -> None:
        try:
            if lease.tick(T0) is not None:
                won.append(lease.holder)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(won) == 1
    with leases[0].registry.read() as tx:
        lease = read_lease(tx)
    assert lease is not None and lease.holder == won[0] and lease.epoch == 1
