"""The daemons' roster, on SQLite and on a real PostgreSQL: each lease tick is a heartbeat, the lease holder is
marked as leader with its epoch, a silent daemon turns stale and then drops off, a clean stop removes the row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from opsctl.adapters.daemon_roster import (
    PRUNE_AFTER,
    SEEN_TTLS,
    DaemonMember,
    DaemonSeen,
    heartbeat,
    leave,
    roster,
)
from opsctl.adapters.leader_lease import LeaderLease, read_lease
from opsctl.adapters.registry import Registry

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
TTL = 10.0
Make = Callable[..., Registry]


def _member(holder: str) -> DaemonMember:
    return DaemonMember(holder=holder, host="host-" + holder, pid=100, version="0.1.0", api=f"/run/{holder}.sock",
                        started_at=T0)


def _daemon(registry: Registry, holder: str) -> LeaderLease:
    member = _member(holder)
    return LeaderLease(registry, ttl_seconds=TTL, holder=holder, monotonic=lambda: 0.0,
                       also_on_tick=lambda tx, now: heartbeat(tx, member, now),
                       also_on_release=lambda tx: leave(tx, holder))


def _roster(registry: Registry, now: datetime) -> dict[str, DaemonSeen]:
    with registry.read() as tx:
        return {d.member.holder: d for d in roster(tx, read_lease(tx), now=now, ttl_seconds=TTL)}


def test_every_ticking_daemon_is_listed_with_the_leader_marked(make_registry: Make) -> None:
    a, b = _daemon(make_registry(), "a"), _daemon(make_registry(), "b")
    assert a.tick(T0) is not None and b.tick(T0 + timedelta(seconds=1)) is None
    seen = _roster(make_registry(), T0 + timedelta(seconds=2))
    assert set(seen) == {"a", "b"}
    assert seen["a"].leading and seen["a"].epoch == 1 and seen["a"].leading_since == T0 and not seen["a"].stale
    assert not seen["b"].leading and seen["b"].epoch is None and seen["b"].heartbeat_at == T0 + timedelta(seconds=1)
    assert seen["b"].member == _member("b")
    assert seen["a"].to_json()["api"] == "/run/a.sock" and seen["a"].to_json()["epoch"] == 1


def test_a_silent_daemon_turns_stale_then_drops_off_and_its_successor_leads(make_registry: Make) -> None:
    registry = make_registry()
    a, b = _daemon(registry, "a"), _daemon(make_registry(), "b")
    a.tick(T0)
    b.tick(T0)
    # a dies (no release); b keeps ticking and takes the lease once it expires.
    later = T0 + timedelta(seconds=TTL)
    assert b.tick(later) is not None
    seen = _roster(registry, later + timedelta(seconds=0.5))
    assert seen["a"].stale and not seen["a"].leading and seen["b"].leading and seen["b"].epoch == 2
    assert "a" not in _roster(registry, T0 + timedelta(seconds=TTL * SEEN_TTLS + 1))
    b.tick(T0 + PRUNE_AFTER + timedelta(seconds=1))  # any tick deletes rows silent that long
    with registry.read() as tx:
        holders = [row["holder"] for row in tx.conn.execute("SELECT holder FROM daemons").fetchall()]
    assert holders == ["b"]


def test_a_clean_stop_removes_the_row_leader_or_not(make_registry: Make) -> None:
    registry = make_registry()
    a, b = _daemon(registry, "a"), _daemon(make_registry(), "b")
    a.tick(T0)
    b.tick(T0)
    b.release(T0 + timedelta(seconds=1))  # a standby
    assert set(_roster(registry, T0 + timedelta(seconds=1))) == {"a"}
    a.release(T0 + timedelta(seconds=1))  # the leader: the lease is freed too
    assert _roster(registry, T0 + timedelta(seconds=1)) == {}
    with registry.read() as tx:
        lease = read_lease(tx)
    assert lease is not None and lease.expired(T0 + timedelta(seconds=1))
