"""The registry contract, on SQLite and on a real PostgreSQL server: every test runs on both engines.

Migrations, the generation compare-and-swap, the append-only and tamper-evident audit log, one
writer at a time, ids, ordering. (The canary state CAS and the outbox: tests/adapters/test_canary_store.py,
parametrised over the same engines.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from opsctl.adapters import registry_postgres
from opsctl.adapters.drift_store import DriftResult, DriftStore
from opsctl.adapters.ingest import Offset
from opsctl.adapters.offset_store import RegistryOffsetStore
from opsctl.adapters.registry import MIGRATIONS, SCHEMA_VERSION, Registry, RegistryError, open_registry
from opsctl.adapters.registry_engine import RegistrySettings
from opsctl.domain import Actor, Lineage, Outcome
from opsctl.errors import ConflictError
from tests.fixtures.postgres import RawSql

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ALICE = Actor("alice", 1000, "cli")

Make = Callable[..., Registry]


def _audit(registry: Registry, n: int, *, actor: Actor = ALICE) -> None:
    for i in range(n):
        with registry.write() as tx:
            tx.append_audit(actor=actor, action="promote", model="fraud", from_version=None, to_version=str(i),
                            reason="r", outcome=Outcome.OK, now=NOW)


def _register(registry: Registry, model: str, version: str, *, now: datetime = NOW) -> None:
    with registry.write() as tx:
        tx.ensure_model(model, now)
        tx.insert_version(model=model, version=version, artifact_name=f"{version}.bin", sha256="0" * 64,
                          size_bytes=3 * 2**31, metrics={"auc": 0.9}, description="", tags={},
                          lineage=Lineage(), reference_name=None, reference_sha256=None, now=now)


def _chain(registry: Registry):  # type: ignore[no-untyped-def]
    with registry.read() as tx:
        return tx.verify_audit_chain()


# -- migrations ------------------------------------------------------------------------


def test_both_engines_have_the_same_numbered_migrations() -> None:
    assert registry_postgres.SCHEMA_VERSION == SCHEMA_VERSION == len(MIGRATIONS)


def test_a_new_registry_is_migrated_once_and_reopens_with_its_data(make_registry: Make) -> None:
    first = make_registry()
    assert first.schema_version() == SCHEMA_VERSION
    _register(first, "fraud", "1")
    first.close()
    second = make_registry()
    assert second.schema_version() == SCHEMA_VERSION
    assert [(m.name, m.versions) for m in second.list_models()] == [("fraud", 1)]
    assert second.get_version("fraud", "1").size_bytes == 3 * 2**31  # past 32 bits


def test_processes_opening_a_new_registry_at_once_migrate_it_once(make_registry: Make) -> None:
    registries = [make_registry() for _ in range(4)]
    versions: list[int] = []
    errors: list[BaseException] = []

    def open_one(registry: Registry) -> None:
        try:
            versions.append(registry.schema_version())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one, args=(r,)) for r in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and versions == [SCHEMA_VERSION] * 4


def test_a_registry_written_by_a_newer_opsctl_is_refused(make_registry: Make) -> None:
    registry = make_registry()
    registry.schema_version()
    raw = RawSql(registry)
    if raw.postgres:
        raw.execute("UPDATE opsctl_schema SET version = ?", (SCHEMA_VERSION + 1,))
    else:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    registry.close()
    with pytest.raises(RegistryError, match="newer than this opsctl"):
        make_registry().list_models()


# -- transactions and optimistic concurrency ------------------------------------------------------


def test_a_failed_transaction_leaves_nothing_behind(make_registry: Make) -> None:
    registry = make_registry()
    with pytest.raises(RuntimeError), registry.write() as tx:
        tx.ensure_model("fraud", NOW)
        tx.append_audit(actor=ALICE, action="promote", model="fraud", from_version=None, to_version="1",
                        reason="", outcome=Outcome.OK, now=NOW)
        raise RuntimeError("crash between the writes")
    assert registry.list_models() == [] and registry.audit() == []


def test_the_generation_compare_and_swap_refuses_a_stale_change(make_registry: Make) -> None:
    registry = make_registry()
    _register(registry, "fraud", "1")
    _register(registry, "fraud", "2")
    stale = registry.get_deployment("fraud")
    with registry.write() as tx:
        moved = tx.update_deployment(replace(stale, production_version="1"), expected_generation=stale.generation,
                                     now=NOW)
    assert moved.generation == stale.generation + 1
    other = make_registry()  # another daemon on the same registry, holding the state read before
    with pytest.raises(ConflictError, match="changed while"), other.write() as tx:
        tx.update_deployment(replace(stale, production_version="2"), expected_generation=stale.generation, now=NOW)
    assert registry.get_deployment("fraud") == moved


def test_deployed_versions_are_the_production_and_canary_versions_of_every_model(make_registry: Make) -> None:
    registry = make_registry()
    for model, version in [("fraud", "1"), ("fraud", "2"), ("fraud", "3"), ("churn", "a"), ("idle", "x")]:
        _register(registry, model, version)
    with registry.write() as tx:
        fraud, churn = tx.get_deployment("fraud"), tx.get_deployment("churn")
        tx.update_deployment(replace(fraud, production_version="1", canary_version="3", canary_weight=10.0),
                             expected_generation=fraud.generation, now=NOW)
        tx.update_deployment(replace(churn, production_version="a"), expected_generation=churn.generation, now=NOW)
    with registry.read() as tx:
        found = tx.deployed_versions()
        one_by_one = {key: tx.get_version(*key) for key in found}
    assert sorted(found) == [("churn", "a"), ("fraud", "1"), ("fraud", "3")]
    assert found == one_by_one  # the same values, statuses included, as reading them one at a time
    assert found[("fraud", "1")].status.value == "production" and found[("fraud", "3")].status.value == "canary"


def test_registering_a_version_twice_is_a_conflict_and_changes_nothing(make_registry: Make) -> None:
    registry = make_registry()
    _register(registry, "fraud", "1")
    with pytest.raises(ConflictError, match="already registered"):
        _register(registry, "fraud", "1", now=NOW + timedelta(hours=1))
    assert [v.created_at for v in registry.list_versions("fraud")] == [NOW]


def test_concurrent_writers_append_one_unbroken_chain(make_registry: Make) -> None:
    # Four daemons (each its own registry object and connections) appending at once: the write lock
    # makes "append after the last row" safe, so no append is lost and the chain never forks.
    writers = [make_registry() for _ in range(4)]
    writers[0].schema_version()
    errors: list[BaseException] = []

    def append(registry: Registry, who: int) -> None:
        try:
            _audit(registry, 10, actor=Actor(f"d{who}", who, "job"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=append, args=(r, i)) for i, r in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = _chain(writers[0])
    assert report.ok and report.rows == 40 and report.last_id == 40
    assert sorted(e.actor for e in writers[1].audit(limit=100)) == sorted(f"d{i}" for i in range(4) for _ in range(10))


# -- the audit log: append-only and tamper-evident ----------------------------------------------


def test_the_audit_log_refuses_update_delete_and_inserts_that_do_not_append(make_registry: Make) -> None:
    registry = make_registry()
    _audit(registry, 2)
    raw = RawSql(registry)
    refused = [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log WHERE id = 2",
        "INSERT INTO audit_log(at, actor, via, action, outcome) VALUES ('t', 'mallory', 'cli', 'x', 'ok')",
        "INSERT INTO audit_log(id, at, actor, via, action, outcome) VALUES (2, 't', 'mallory', 'cli', 'x', 'ok')"
        " ON CONFLICT(id) DO UPDATE SET actor = 'mallory'",
        "INSERT INTO audit_log(id, at, actor, via, action, outcome) VALUES (1, 't', 'mallory', 'cli', 'x', 'ok')",
    ]
    refused.append("TRUNCATE audit_log" if raw.postgres else
                   "REPLACE INTO audit_log(id, at, actor, via, action, outcome) VALUES (2, 't', 'mallory', 'cli',"
                   " 'x', 'ok')")
    for statement in refused:
        with pytest.raises(raw.database_error, match="append-only"):
            raw.execute(statement)
    raw.close()
    assert [e.actor for e in registry.audit()] == ["alice", "alice"]
    assert _chain(registry).ok


def test_every_appended_row_chains_to_the_one_before(make_registry: Make) -> None:
    registry = make_registry()
    _audit(registry, 3)
    report = _chain(registry)
    assert report.ok and report.rows == 3 and report.last_id == 3
    with registry.read() as tx:
        assert tx.audit_row_hash(3) == report.last_hash


@pytest.mark.parametrize(("tamper", "first_broken"), [
    ("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", 2),
    ("DELETE FROM audit_log WHERE id = 2", 3),
    ("INSERT INTO audit_log(id, at, actor, via, action, outcome) VALUES (5, '2026-01-01T00:00:00Z', 'mallory',"
     " 'cli', 'promote', 'ok')", 5),
    ("DELETE FROM audit_log WHERE id = 4", 4),  # the last row: only the high-water mark remembers it
])
def test_tampering_past_the_triggers_is_named_at_the_first_broken_row(
        make_registry: Make, tamper: str, first_broken: int) -> None:
    registry = make_registry()
    _audit(registry, 4)
    raw = RawSql(registry)
    raw.drop_audit_triggers()
    raw.execute(tamper)
    raw.close()
    report = _chain(make_registry())
    assert not report.ok and report.first_broken_id == first_broken


def test_prune_keeps_the_audit_log(make_registry: Make) -> None:
    registry = make_registry()
    _audit(registry, 2)
    with registry.write() as tx:
        tx.append_event(kind="old", model=None, payload={}, now=NOW - timedelta(days=40))
        tx.record_job_run(job="health", started_at=NOW - timedelta(days=40), finished_at=NOW - timedelta(days=40),
                          ok=True, summary="")
        tx.append_event(kind="new", model=None, payload={}, now=NOW)
    with registry.write() as tx:
        assert tx.prune(before=NOW - timedelta(days=30)) == 2
    with registry.read() as tx:
        counts = tx.counts()
    assert counts == {"models": 0, "versions": 0, "audit_log": 2, "events": 1, "job_runs": 0}


# -- ids, keys, ordering -----------------------------------------------------------------------


def test_inserts_return_the_new_rows_ids(make_registry: Make) -> None:
    registry = make_registry()
    with registry.write() as tx:
        ids = [tx.append_event(kind="k", model="m", payload={"share": "50%", "q": "?"}, now=NOW) for _ in range(3)]
    assert ids == [1, 2, 3]
    drift = DriftStore()
    result = DriftResult(at=NOW, model="m", version="1", kind="drift", verdict="stable", document={"p": 0.5})
    assert [drift.record(registry, result), drift.record(registry, result)] == [1, 2]
    assert drift.latest(registry, "m", "drift")[0].id == 2


def test_upserts_and_reserved_column_names(make_registry: Make) -> None:
    registry = make_registry()
    offsets = RegistryOffsetStore(registry)
    offsets.put("a.log", Offset(inode=2**40, offset=10, line=1, fingerprint="f"))
    offsets.put("a.log", Offset(inode=2**40, offset=25, line=3, fingerprint="f"))
    assert offsets.get("a.log") == Offset(inode=2**40, offset=25, line=3, fingerprint="f")
    with registry.write() as tx:
        tx.put_kv("k", "1")
        tx.put_kv("k", "2")
    with registry.read() as tx:
        assert tx.get_kv("k") == "2"


def test_text_sorts_byte_by_byte_on_both_engines(make_registry: Make) -> None:
    registry = make_registry()
    for name in ("b", "B", "a", "_x", "Ä"):
        _register(registry, name, "1")
    assert [m.name for m in registry.list_models()] == ["B", "_x", "a", "b", "Ä"]
    _register(registry, "a", "2", now=NOW)  # same created_at: insertion order breaks the tie
    _register(registry, "a", "10", now=NOW)
    assert [v.version for v in registry.list_versions("a")] == ["1", "2", "10"]


# -- choosing the engine -----------------------------------------------------------------------


def test_the_url_chooses_the_engine(tmp_path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    default = tmp_path / "registry.db"
    assert open_registry(RegistrySettings(), default).postgres is None
    assert open_registry(RegistrySettings(url=f"sqlite:///{default}"), default).path == default
    with pytest.raises(RegistryError, match="set state_dir instead"):
        open_registry(RegistrySettings(url=f"sqlite:///{tmp_path}/other.db"), default)
    url = postgres_server.create_database().replace("opsctl@", "opsctl:secret@")
    registry = open_registry(RegistrySettings(url=url), default)
    try:
        assert registry.postgres is not None and "secret" not in registry.location
        assert registry.schema_version() == SCHEMA_VERSION
    finally:
        registry.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite:///relative.db"])
def test_an_unknown_or_relative_url_is_a_settings_error(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        RegistrySettings(url=url)


def test_an_unreachable_server_is_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    registry = open_registry(RegistrySettings(url=f"postgresql://opsctl:pw@127.0.0.1:{port}/x"),
                             tmp_path / "registry.db")
    with pytest.raises(RegistryError, match=r"PostgreSQL registry postgresql://opsctl:\*\*\*@127.0.0.1"):
        registry.list_models()
