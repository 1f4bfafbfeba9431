"""SQL for the ``ingest_offsets`` table: where each log tailer stopped, in the registry.

:class:`RegistryOffsetStore` is the daemon's :class:`~opsctl.adapters.ingest.OffsetStore`: an offset
is durable once :meth:`~RegistryOffsetStore.put` returns (its own ``BEGIN IMMEDIATE`` transaction on a
WAL database with ``synchronous = FULL``), so a restarted daemon resumes every log where it stopped.
Keeping the offsets in the registry rather than in a file of their own means one file to back up and
one set of permissions. The contract is shared with the other stores
(``tests/adapters/test_offset_store_contract.py``).

    store = RegistryOffsetStore(registry)
    tailer = LogTailer(path, store, key=str(path))
"""

from __future__ import annotations

from opsctl.adapters.health_store import Target, open_tx
from opsctl.adapters.ingest import Offset
from opsctl.adapters.registry import Registry, RegistryTx


class RegistryOffsetStore:
    """Offsets of log tailers, one row per key in ``ingest_offsets``."""

    def __init__(self, registry: Registry | RegistryTx) -> None:
        self.target: Target = registry

    def get(self, key: str) -> Offset | None:
        with open_tx(self.target, write=False) as tx:
            row = tx.conn.execute(
                "SELECT inode, \"offset\", line, fingerprint FROM ingest_offsets WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return Offset(inode=int(row["inode"]), offset=int(row["offset"]), line=int(row["line"]),
                      fingerprint=str(row["fingerprint"]))

    def put(self, key: str, offset: Offset) -> None:
        with open_tx(self.target, write=True) as tx:
            tx.conn.execute(
                "INSERT INTO ingest_offsets(key, inode, \"offset\", line, fingerprint) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET inode = excluded.inode, \"offset\" = excluded.\"offset\", "
                "line = excluded.line, fingerprint = excluded.fingerprint",
                (key, offset.inode, offset.offset, offset.line, offset.fingerprint),
            )

    def keys(self) -> list[str]:
        """Every key with a stored offset (for status output)."""
        with open_tx(self.target, write=False) as tx:
            rows = tx.conn.execute("SELECT key FROM ingest_offsets ORDER BY key").fetchall()
        return [str(row["key"]) for row in rows]
