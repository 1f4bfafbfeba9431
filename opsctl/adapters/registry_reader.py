"""Read-only access to the registry for reports (checklist, report, incident timeline, doctor, metrics).

One seam over both engines: :func:`connect_read_only` answers SQL with ``?`` placeholders and rows
by column name, on the SQLite file (opened ``mode=ro``) or on PostgreSQL (a read-only
REPEATABLE READ transaction: one snapshot, and the server refuses any write). Either way a report
works the same whether a daemon runs or not and can never change the registry. The PostgreSQL
driver is imported only when the registry is on PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opsctl.adapters.registry_engine import POSTGRES, RegistryError, RegistrySettings, redact
from opsctl.errors import NotFoundError


@dataclass(frozen=True)
class RegistryLocation:
    """Where a reader finds the registry: the PostgreSQL ``url`` when set, else the SQLite file ``path``."""

    path: Path
    url: str = ""

    @classmethod
    def of(cls, settings: RegistrySettings, default_path: Path) -> RegistryLocation:
        """The registry ``[registry]`` names (the SQLite file is ``default_path``, as :func:`open_registry` has it)."""
        return cls(Path(default_path), settings.url if settings.engine == POSTGRES else "")

    @property
    def engine(self) -> str:
        return POSTGRES if self.url else "sqlite"

    def __str__(self) -> str:
        return redact(self.url) if self.url else str(self.path)


class ReadConnection(Protocol):
    """A read-only connection: ``execute`` with ``?`` placeholders, rows by position and by column name."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def table_names(self) -> set[str]:
        """The registry's tables."""
        ...

    def close(self) -> None: ...


class SqliteReadConnection:
    """The SQLite file opened ``mode=ro``; database errors become :class:`RegistryError`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = connect_sqlite_read_only(path)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, parameters)
        except sqlite3.Error as error:
            raise RegistryError(f"cannot read the registry {self.path}: {error}") from error

    def table_names(self) -> set[str]:
        return {row[0] for row in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        self.raw.close()


Where = RegistryLocation | Path


def connect_read_only(where: Where) -> ReadConnection:
    """A read-only connection to the registry (a bare ``Path`` is a SQLite file); NotFoundError if there is none."""
    location = where if isinstance(where, RegistryLocation) else RegistryLocation(Path(where))
    if location.url:
        from opsctl.adapters.registry_postgres import connect_read_only as connect_postgres

        return connect_postgres(location.url)
    return SqliteReadConnection(location.path)


def connect_sqlite_read_only(path: Path) -> sqlite3.Connection:
    """The SQLite file itself, read-only, with rows by name (for what only SQLite has: its backup API)."""
    if not path.is_file():
        raise NotFoundError("registry", str(path))
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def json_column(text: str | None) -> Any:
    """A stored JSON document, or None when the column is empty or not JSON."""
    try:
        return json.loads(text or "null")
    except (TypeError, ValueError):
        return None


def number(value: Any) -> float | None:
    """``value`` as a float when it is a JSON number (booleans are not numbers here)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
