"""Leader leases in the registry, with a fencing token: one daemon runs the scheduled jobs.

A lease is a row in ``leases`` (holder, expiry, ``epoch``). A daemon takes a free or expired lease
with a new epoch (the old one + 1; the row is never deleted, so epochs only grow) and renews it
while it holds it. The epoch is the **fencing token**: every state change a job makes calls
:func:`check_fence` inside its own write transaction, and the transaction fails with
:class:`FencedError` once another daemon has taken the lease. Writers are serialised (``BEGIN
IMMEDIATE`` on SQLite, the write lock on PostgreSQL), so no takeover can slip between the check
and the write: a paused or partitioned old leader's late writes are refused, not merely unlikely.

A holder also stops acting on its own before the lease can expire (:meth:`LeaderLease.acting_epoch`
is None past ``ttl - safety margin`` since the last successful renewal, measured on the monotonic
clock), so in the normal case it is never fenced at all.

Expiry compares the timestamps the daemons write (their UTC clocks): keep the hosts' clocks in
NTP sync, with a skew well under the TTL.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsctl.adapters.registry import JOBS_LEASE, Registry, RegistryTx
from opsctl.adapters.registry import FencedError as FencedError
from opsctl.clock import parse_utc, utc_iso


@dataclass(frozen=True)
class Lease:
    """The lease row as stored: who holds it, its epoch, and when it was taken, renewed and runs out."""

    name: str
    holder: str
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "holder": self.holder, "epoch": self.epoch,
                "acquired_at": utc_iso(self.acquired_at), "renewed_at": utc_iso(self.renewed_at),
                "expires_at": utc_iso(self.expires_at)}


def default_holder() -> str:
    """host:pid:random, unique per daemon process (a restarted daemon is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def read_lease(tx: RegistryTx, name: str = JOBS_LEASE) -> Lease | None:
    """The lease row, or None when nobody ever took it."""
    row = tx.conn.execute("SELECT * FROM leases WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return Lease(name=row["name"], holder=row["holder"], epoch=int(row["epoch"]),
                 acquired_at=parse_utc(row["acquired_at"]), renewed_at=parse_utc(row["renewed_at"]),
                 expires_at=parse_utc(row["expires_at"]))


def check_fence(tx: RegistryTx, epoch: int, name: str = JOBS_LEASE) -> None:
    """Refuse the surrounding write transaction unless ``epoch`` is still the lease's current epoch.

    (:meth:`Registry.fenced` makes every write of a thread do this.)
    """
    tx.require_epoch(name, epoch)


class LeaderLease:
    """One daemon's side of a lease: take it, renew it, know whether it may still act."""

    def __init__(self, registry: Registry, *, ttl_seconds: float, holder: str | None = None,
                 name: str = JOBS_LEASE, safety_margin: float = 0.25,
                 monotonic: Callable[[], float] = time.monotonic,
                 also_on_tick: Callable[[RegistryTx, datetime], None] | None = None,
                 also_on_release: Callable[[RegistryTx], None] | None = None) -> None:
        """``also_on_tick`` / ``also_on_release`` run inside the tick's / the release's transaction (the daemon's
        heartbeat row, :mod:`opsctl.adapters.daemon_roster`), so they cost no transaction of their own."""
        if not 0 < safety_margin < 1:
            raise ValueError("safety_margin must be in (0, 1) of the TTL")
        self.registry = registry
        self.ttl = timedelta(seconds=ttl_seconds)
        self.holder = holder or default_holder()
        self.name = name
        self._margin = safety_margin
        self._monotonic = monotonic
        self._also_on_tick = also_on_tick
        self._also_on_release = also_on_release
        self._epoch: int | None = None
        self._valid_until = 0.0  # monotonic time after which this holder stops acting

    def acting_epoch(self) -> int | None:
        """Our epoch while we may act on it (renewed recently enough), else None."""
        if self._epoch is None or self._monotonic() >= self._valid_until:
            return None
        return self._epoch

    def tick(self, now: datetime | Callable[[], datetime]) -> Lease | None:
        """Renew the lease if we hold it, take it if it is free or expired; the lease we hold after, or None.

        One write transaction. ``now`` is this daemon's UTC clock, best a callable: it is then read once
        the transaction holds the write lock, so time spent waiting for the lock or a connection does not
        eat into the lease written. Our own validity is counted on the monotonic clock from *before* the
        transaction, so a slow commit shortens it rather than lengthening it.
        """
        started = self._monotonic()
        with self.registry.write() as tx:
            if callable(now):
                now = now()
            current = read_lease(tx, self.name)
            ours = current is not None and current.holder == self.holder and current.epoch == self._epoch
            if current is not None and not ours and not current.expired(now):
                held = None
            elif current is None:
                held = self._write(tx, 1, now, now, insert=True)
            elif ours and not current.expired(now):
                held = self._write(tx, current.epoch, current.acquired_at, now)
            else:
                held = self._write(tx, current.epoch + 1, now, now)
            if self._also_on_tick is not None:
                self._also_on_tick(tx, now)
        if held is None:
            self._epoch = None
            return None
        self._epoch = held.epoch
        self._valid_until = started + self.ttl.total_seconds() * (1 - self._margin)
        return held

    def _write(self, tx: RegistryTx, epoch: int, acquired_at: datetime, now: datetime, *,
               insert: bool = False) -> Lease:
        lease = Lease(self.name, self.holder, epoch, acquired_at, now, now + self.ttl)
        values = (lease.holder, lease.epoch, utc_iso(lease.acquired_at), utc_iso(lease.renewed_at),
                  utc_iso(lease.expires_at), lease.name)
        if insert:
            tx.conn.execute("INSERT INTO leases(holder, epoch, acquired_at, renewed_at, expires_at, name)"
                            " VALUES (?, ?, ?, ?, ?, ?)", values)
        else:
            tx.conn.execute("UPDATE leases SET holder = ?, epoch = ?, acquired_at = ?, renewed_at = ?,"
                            " expires_at = ? WHERE name = ?", values)
        return lease

    def release(self, now: datetime) -> None:
        """Give the lease up at once (a clean shutdown), so another daemon need not wait for the TTL."""
        epoch, self._epoch = self._epoch, None
        if epoch is None and self._also_on_release is None:
            return
        with self.registry.write() as tx:
            if epoch is not None:
                tx.conn.execute("UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND epoch = ?",
                                (utc_iso(now), self.name, self.holder, epoch))
            if self._also_on_release is not None:
                self._also_on_release(tx)
