"""The audit log's hash chain: every row carries the sha256 of its content and the previous row's hash.

Pure: rows in, verdict out. Editing a row, deleting one, inserting a forged one or reordering them
changes a hash that a later row (or the row itself) commits to, so :func:`verify_chain` names the first
row where the stored chain and the recomputed one part. Deleting rows at the *end* leaves a valid,
shorter chain; that is caught by comparing with a tail remembered elsewhere (the daemon's last check,
SQLite's AUTOINCREMENT counter): see ``expected_last_id``.

>>> first = AuditRowContent(1, "2026-01-01T00:00:00Z", "alice", 1000, "cli", "promote", "fraud",
...                         "v1", "v2", "fix", "applied", "")
>>> h1 = chain_hash(GENESIS_HASH, first)
>>> verify_chain([ChainedRow(first, GENESIS_HASH, h1)]).ok
True
>>> forged = ChainedRow(first._replace(actor="mallory"), GENESIS_HASH, h1)
>>> verify_chain([forged]).first_broken_id
1
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# The previous hash of the first row.
GENESIS_HASH = "0" * 64


class AuditRowContent(NamedTuple):
    """The columns of one audit row that the chain commits to, in a fixed order."""

    id: int
    at: str
    actor: str
    uid: int | None
    via: str
    action: str
    model: str | None
    from_version: str | None
    to_version: str | None
    reason: str
    outcome: str
    detail: str


class ChainedRow(NamedTuple):
    """An audit row as stored: its content and the two chain columns (None when missing)."""

    content: AuditRowContent
    prev_hash: str | None
    row_hash: str | None


def chain_hash(prev_hash: str, content: AuditRowContent) -> str:
    """sha256 over the previous hash and the row's content (canonical JSON, so no field can bleed into another)."""
    document = json.dumps([prev_hash, *content], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The verdict over a run of rows: ``first_broken_id`` is None when the chain holds."""

    rows: int
    last_id: int | None
    last_hash: str | None
    first_broken_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None and not self.problem

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "rows": self.rows, "last_id": self.last_id, "last_hash": self.last_hash,
                "first_broken_id": self.first_broken_id, "problem": self.problem}


def verify_chain(rows: Iterable[ChainedRow], *, prev_hash: str = GENESIS_HASH, prev_id: int = 0,
                 expected_last_id: int | None = None) -> ChainReport:
    """Recompute the chain over ``rows`` (ascending id) starting after (``prev_id``, ``prev_hash``)."""
    count = 0
    last_id: int | None = prev_id or None
    last_hash: str | None = prev_hash if prev_id else None
    for row in rows:
        count += 1
        content = row.content
        if content.id != (last_id or 0) + 1:
            return ChainReport(count, last_id, last_hash, content.id,
                               f"row {content.id} follows row {last_id or 0}: rows are missing before it")
        if row.prev_hash != prev_hash:
            return ChainReport(count, last_id, last_hash, content.id,
                               f"row {content.id} does not chain to the row before it (deleted, inserted or"
                               " edited rows)")
        expected = chain_hash(prev_hash, content)
        if row.row_hash != expected:
            return ChainReport(count, last_id, last_hash, content.id,
                               f"row {content.id}'s content does not match its hash (edited or forged)")
        prev_hash = expected
        last_id, last_hash = content.id, expected
    if expected_last_id is not None and (last_id or 0) < expected_last_id:
        return ChainReport(count, last_id, last_hash, (last_id or 0) + 1,
                           f"the log ends at row {last_id or 0} but reached row {expected_last_id}:"
                           " rows at the end were deleted")
    return ChainReport(count, last_id, last_hash)
