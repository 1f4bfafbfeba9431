"""Which database holds the registry, and what differs between the engines.

``[registry] url`` absent or ``sqlite://...`` keeps the embedded SQLite file; ``postgresql://...``
puts the registry on a PostgreSQL server that several daemons share. Everything above
:mod:`opsctl.adapters.registry` writes the same SQL on both: ``?`` placeholders, the same tables;
what cannot be the same SQL is a :class:`Dialect` method. This module imports no database driver,
so the settings load on every command for free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from opsctl.errors import OpsctlError

SQLITE = "sqlite"
POSTGRES = "postgresql"


class RegistryError(OpsctlError):
    """The registry cannot be used (locked too long, corrupt, too new, unreachable)."""


@dataclass(frozen=True)
class RegistrySettings:
    """``[registry]``: where the registry lives.

    ``url`` empty: the SQLite file ``registry.db`` in ``[daemon] state_dir``. ``sqlite:////abs/path.db``:
    that SQLite file. ``postgresql://user@host:5432/db``: a PostgreSQL database (the password from
    ``~/.pgpass`` or ``PGPASSWORD`` rather than the URL, which ends up in logs and status output).
    """

    url: str = ""
    # Connections each process keeps open to PostgreSQL at most (the API's threads and the jobs share them).
    pool_size: int = 8
    # Several daemons on PostgreSQL elect one leader for the scheduled jobs: it renews its lease every
    # lease_renew_seconds; another daemon takes over once the lease is lease_ttl_seconds old.
    lease_ttl_seconds: float = 15.0
    lease_renew_seconds: float = 3.0

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme if self.url else SQLITE
        if scheme not in (SQLITE, POSTGRES, "postgres"):
            raise ValueError(f"url must start with sqlite:// or postgresql://, got {redact(self.url)!r}")
        if scheme == SQLITE and self.url:
            path = sqlite_path_of(self.url)
            if path is not None and not path.is_absolute():
                raise ValueError(f"url {self.url!r} names a relative SQLite path; use sqlite:////absolute/path.db")
        if not 0 < self.lease_renew_seconds <= self.lease_ttl_seconds / 3 or self.lease_ttl_seconds > 3600:
            raise ValueError("lease_renew_seconds must be positive and at most a third of lease_ttl_seconds"
                             f" (<= 3600), got {self.lease_renew_seconds} and {self.lease_ttl_seconds}")
        if not 1 <= self.pool_size <= 1000:
            raise ValueError(f"pool_size must be in [1, 1000], got {self.pool_size}")

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return POSTGRES if self.url.startswith(("postgresql:", "postgres:")) else SQLITE

    def sqlite_path(self, default: Path) -> Path:
        """The SQLite file: the one the URL names, else ``default``."""
        path = sqlite_path_of(self.url) if self.url else None
        return default if path is None else path


@dataclass(frozen=True)
class SchemaStatus:
    """Where a registry's schema stands: the version it has and the one this opsctl runs."""

    location: str
    current: int
    target: int

    @property
    def pending(self) -> int:
        return max(0, self.target - self.current)

    def to_json(self) -> dict[str, object]:
        return {"registry": self.location, "from_version": self.current, "to_version": self.target,
                "pending": self.pending}


@dataclass(frozen=True)
class SchemaMigration:
    """What one migration run did: the schema version before the first step it applied and after the last (equal
    when there was nothing to do), and how many steps it applied itself: fewer than the difference when another
    process ran some of the steps in between (on SQLite each step is a transaction of its own)."""

    location: str
    from_version: int
    to_version: int
    applied: int

    def to_json(self) -> dict[str, object]:
        return {"registry": self.location, "from_version": self.from_version, "to_version": self.to_version,
                "applied": self.applied}


def too_new(location: str, current: int, known: int) -> RegistryError:
    """The error for a registry migrated by a newer opsctl (never touched: migrations only go forward)."""
    return RegistryError(f"registry {location} has schema {current}, newer than this opsctl knows ({known});"
                         " upgrade opsctl")


def sqlite_path_of(url: str) -> Path | None:
    """The file of ``sqlite:///PATH`` (SQLAlchemy's spelling: four slashes for an absolute path), None for ``sqlite://``."""
    rest = url[len("sqlite://"):] if url.startswith("sqlite://") else ""
    if not rest.startswith("/") or rest == "/":
        return None
    return Path(rest[1:])


def redact(url: str) -> str:
    """The URL without its password, for messages and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Cursor(Protocol):
    """What the stores read from a statement's result (``sqlite3.Cursor`` has it)."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the stores call on ``RegistryTx.conn`` (``sqlite3.Connection`` has it): SQL with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


class Dialect(Protocol):
    """The few things that are different SQL on each engine."""

    name: str
    # Raised by a statement that breaks a UNIQUE/PRIMARY KEY/foreign key constraint.
    integrity_errors: tuple[type[BaseException], ...]

    def insert_id(self, conn: Any, sql: str, parameters: Sequence[Any]) -> int:
        """Run one INSERT into a table with an ``id`` column and return the new row's id."""
        ...

    def audit_high_water(self, conn: Any) -> int | None:
        """The highest audit id ever appended (remembered apart from the rows), None when none was."""
        ...

    def audit_appended(self, conn: Any, audit_id: int) -> None:
        """Told inside the transaction that appended audit row ``audit_id`` (PostgreSQL tells other daemons)."""
        ...

    def audit_discarded(self, audit_ids: Sequence[int]) -> None:
        """Told that the transaction which appended ``audit_ids`` was rolled back."""
        ...
