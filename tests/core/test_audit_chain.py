"""The audit hash chain: every edit, deletion, insertion or reordering is named at the first row it breaks."""

from __future__ import annotations

from opsctl.core.audit_chain import GENESIS_HASH, AuditRowContent, ChainedRow, chain_hash, verify_chain


def _rows(n: int) -> list[ChainedRow]:
    rows, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        content = AuditRowContent(i, f"2026-01-01T00:00:{i:02d}Z", "alice", 1000, "cli", "promote", "fraud",
                                  None, f"v{i}", "", "applied", "")
        digest = chain_hash(prev, content)
        rows.append(ChainedRow(content, prev, digest))
        prev = digest
    return rows


def test_an_untouched_chain_verifies_and_reports_its_tail() -> None:
    rows = _rows(5)
    report = verify_chain(rows, expected_last_id=5)
    assert report.ok and report.rows == 5 and report.last_id == 5 and report.last_hash == rows[-1].row_hash


def test_an_edited_field_is_named_at_its_row() -> None:
    rows = _rows(5)
    rows[2] = rows[2]._replace(content=rows[2].content._replace(actor="mallory"))
    report = verify_chain(rows)
    assert report.first_broken_id == 3 and "does not match its hash" in report.problem


def test_an_edit_with_the_row_hash_recomputed_breaks_the_next_row() -> None:
    rows = _rows(5)
    forged = rows[2].content._replace(reason="nothing to see")
    rows[2] = ChainedRow(forged, rows[2].prev_hash, chain_hash(rows[2].prev_hash or "", forged))
    assert verify_chain(rows).first_broken_id == 4


def test_a_deleted_row_is_named_at_the_row_after_it() -> None:
    rows = _rows(5)
    del rows[1]
    report = verify_chain(rows)
    assert report.first_broken_id == 3 and "missing" in report.problem


def test_a_forged_row_without_a_hash_is_named() -> None:
    rows = _rows(3)
    content = AuditRowContent(4, "2026-01-02T00:00:00Z", "root", 0, "cli", "promote", "fraud", None, "evil",
                              "", "applied", "")
    report = verify_chain([*rows, ChainedRow(content, None, None)])
    assert report.first_broken_id == 4


def test_rows_deleted_at_the_end_are_named_against_the_expected_tail() -> None:
    report = verify_chain(_rows(3), expected_last_id=5)
    assert report.first_broken_id == 4 and "deleted" in report.problem


def test_verifying_from_an_anchor_checks_only_the_rows_after_it() -> None:
    rows = _rows(6)
    anchor = rows[3]
    assert verify_chain(rows[4:], prev_id=4, prev_hash=anchor.row_hash or "").ok
    assert verify_chain(rows[4:], prev_id=4, prev_hash=GENESIS_HASH).first_broken_id == 5
