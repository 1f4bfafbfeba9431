"""The daemons sharing one registry: who they are, when each was last heard of, and which one leads.

Each daemon that takes part in the leader election keeps a row in ``daemons`` (holder id, host, pid,
version, API address, start time) and renews its ``heartbeat_at`` in the same transaction as its lease
tick (:class:`opsctl.adapters.leader_lease.LeaderLease`), so a live daemon's heartbeat is never older
than one renew interval plus a commit. A cleanly stopped daemon deletes its row; a killed one's row stays
and shows as stale until it is older than :data:`PRUNE_AFTER`, when the next tick of any daemon removes it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsctl.adapters.leader_lease import Lease, read_lease
from opsctl.adapters.registry import Registry, RegistryTx
from opsctl.clock import parse_utc, utc_iso

# Rows of daemons not heard of for this long are deleted (a SIGKILLed daemon never deletes its own).
PRUNE_AFTER = timedelta(days=1)
# A daemon is listed while its heartbeat is at most this many lease TTLs old.
SEEN_TTLS = 5


@dataclass(frozen=True)
class DaemonMember:
    """One daemon process as it registers itself."""

    holder: str
    host: str
    pid: int
    version: str
    api: str
    started_at: datetime


@dataclass(frozen=True)
class DaemonSeen:
    """A daemon's row as another process reads it, with what the lease says about it."""

    member: DaemonMember
    heartbeat_at: datetime
    stale: bool              # no heartbeat for longer than the lease TTL
    leading: bool            # holds the unexpired jobs lease
    epoch: int | None        # the lease's epoch while it leads
    leading_since: datetime | None

    def to_json(self) -> dict[str, object]:
        m = self.member
        return {"holder": m.holder, "host": m.host, "pid": m.pid, "version": m.version, "api": m.api,
                "started_at": utc_iso(m.started_at), "heartbeat_at": utc_iso(self.heartbeat_at),
                "stale": self.stale, "leading": self.leading, "epoch": self.epoch,
                "leading_since": utc_iso(self.leading_since) if self.leading_since else None}


def this_process(holder: str, *, version: str, api: str, started_at: datetime) -> DaemonMember:
    """The member row for the calling process."""
    return DaemonMember(holder=holder, host=socket.gethostname(), pid=os.getpid(), version=version, api=api,
                        started_at=started_at)


def heartbeat(tx: RegistryTx, member: DaemonMember, now: datetime) -> None:
    """Insert or refresh ``member``'s row with ``heartbeat_at = now``; drop rows silent for :data:`PRUNE_AFTER`."""
    tx.conn.execute(
        "INSERT INTO daemons(holder, host, pid, version, api, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (holder) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        (member.holder, member.host, member.pid, member.version, member.api, utc_iso(member.started_at),
         utc_iso(now)))
    tx.conn.execute("DELETE FROM daemons WHERE heartbeat_at < ?", (utc_iso(now - PRUNE_AFTER),))


def leave(tx: RegistryTx, holder: str) -> None:
    """A clean stop: remove the daemon's row."""
    tx.conn.execute("DELETE FROM daemons WHERE holder = ?", (holder,))


def roster(tx: RegistryTx, lease: Lease | None, *, now: datetime, ttl_seconds: float) -> list[DaemonSeen]:
    """The daemons heard of within :data:`SEEN_TTLS` lease TTLs, oldest first, with the leader marked."""
    ttl = timedelta(seconds=ttl_seconds)
    rows = tx.conn.execute("SELECT * FROM daemons WHERE heartbeat_at >= ? ORDER BY started_at, holder",
                           (utc_iso(now - ttl * SEEN_TTLS),)).fetchall()
    seen = []
    for row in rows:
        member = DaemonMember(holder=row["holder"], host=row["host"], pid=int(row["pid"]), version=row["version"],
                              api=row["api"], started_at=parse_utc(row["started_at"]))
        beat = parse_utc(row["heartbeat_at"])
        leading = lease is not None and lease.holder == member.holder and not lease.expired(now)
        seen.append(DaemonSeen(member=member, heartbeat_at=beat, stale=now - beat > ttl, leading=leading,
                               epoch=lease.epoch if leading and lease is not None else None,
                               leading_since=lease.acquired_at if leading and lease is not None else None))
    return seen


def read_roster(registry: Registry, *, now: datetime, ttl_seconds: float) -> list[DaemonSeen]:
    """:func:`roster` in a snapshot of its own, the jobs lease read alongside."""
    with registry.read() as tx:
        return roster(tx, read_lease(tx), now=now, ttl_seconds=ttl_seconds)
