"""Read-only access to the registry database for reports (checklist, report, incident timeline).

The file is opened with ``mode=ro``, so a report works the same whether the daemon runs or not
(SQLite's WAL lets a reader see every committed write) and can never change the registry.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from opsctl.errors import NotFoundError


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the registry at ``path`` with rows by name; NotFoundError if absent."""
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
