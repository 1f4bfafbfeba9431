"""The registry: models, versions, deployments, the audit log, subsystem state.

SQLite by default (below); PostgreSQL when ``[registry] url`` says so
(:mod:`opsctl.adapters.registry_postgres`, same tables, same SQL through :attr:`RegistryTx.conn`).
SQLite is one file in WAL mode, ``busy_timeout`` so writers queue instead of failing,
schema migrations keyed on ``PRAGMA user_version``. Every write runs in a
``BEGIN IMMEDIATE`` transaction opened by :meth:`Registry.write`, so a change
and its audit event land together or not at all. SQL lives here and nowhere
else.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.adapters.files import create_private_file, make_private_dir, storage_error
from opsctl.adapters.registry_engine import Dialect, RegistrySettings, SchemaMigration, SchemaStatus, too_new
from opsctl.adapters.registry_engine import RegistryError as RegistryError
from opsctl.adapters.routing_document import Publication, RoutingDocument, document_path
from opsctl.clock import parse_utc, utc_iso
from opsctl.core.audit_chain import GENESIS_HASH, AuditRowContent, ChainedRow, ChainReport, chain_hash, verify_chain
from opsctl.domain import (
    Actor,
    AuditEvent,
    Deployment,
    Lineage,
    ModelSummary,
    ModelVersion,
    Outcome,
    VersionStatus,
)
from opsctl.errors import ConflictError, OpsctlError

if TYPE_CHECKING:
    from opsctl.adapters.registry_postgres import PostgresEngine

BUSY_TIMEOUT_MS = 5000


def _chain_audit_log(conn: sqlite3.Connection) -> None:
    """Hash-chain the audit log (see :mod:`opsctl.core.audit_chain`), existing rows included.

    A plain INSERT/REPLACE trigger cannot stop ``REPLACE INTO audit_log(id, ...)``: its implicit delete
    fires no DELETE trigger unless the connection set ``recursive_triggers``, which a ``sqlite3`` shell
    does not. A BEFORE INSERT trigger runs before conflict resolution on any connection, so it refuses
    every insert that does not append after the last row (REPLACE, INSERT OR REPLACE, upserts, ids
    reused or left to SQLite).
    """
    conn.execute("ALTER TABLE audit_log ADD COLUMN prev_hash TEXT")
    conn.execute("ALTER TABLE audit_log ADD COLUMN row_hash TEXT")
    # Existing rows get their chain once, here; the update trigger is lifted only inside this transaction.
    conn.execute("DROP TRIGGER audit_log_append_only_update")
    prev_hash = GENESIS_HASH
    for row in conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall():
        row_hash = chain_hash(prev_hash, _audit_content(row))
        conn.execute("UPDATE audit_log SET prev_hash = ?, row_hash = ? WHERE id = ?", (prev_hash, row_hash, row[0]))
        prev_hash = row_hash
    conn.execute("""CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")
    conn.execute("""CREATE TRIGGER audit_log_append_only_insert BEFORE INSERT ON audit_log
        WHEN NEW.id IS NULL OR NEW.id <= (SELECT coalesce(max(id), 0) FROM audit_log)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")


# Each entry moves the schema from user_version == index to index + 1: SQL, or a function for what
# SQL alone cannot do. Never edit a migration that has shipped; append a new one.
MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE models (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE versions (
        model               TEXT NOT NULL REFERENCES models(name),
        version             TEXT NOT NULL,
        artifact_name       TEXT NOT NULL,
        sha256              TEXT NOT NULL,
        size_bytes          INTEGER NOT NULL,
        metrics             TEXT NOT NULL DEFAULT '{}',
        description         TEXT NOT NULL DEFAULT '',
        tags                TEXT NOT NULL DEFAULT '{}',
        training_data_hash  TEXT,
        code_version        TEXT,
        parent_version      TEXT,
        trigger             TEXT,
        reference_name      TEXT,
        reference_sha256    TEXT,
        stage               TEXT NOT NULL DEFAULT 'registered',
        created_at          TEXT NOT NULL,
        PRIMARY KEY (model, version)
    );
    CREATE TABLE deployments (
        model               TEXT PRIMARY KEY REFERENCES models(name),
        production_version  TEXT,
        previous_versions   TEXT NOT NULL DEFAULT '[]',
        canary_version      TEXT,
        canary_weight       REAL NOT NULL DEFAULT 0,
        generation          INTEGER NOT NULL DEFAULT 0,
        updated_at          TEXT
    );
    CREATE TABLE audit_log (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        at            TEXT NOT NULL,
        actor         TEXT NOT NULL,
        uid           INTEGER,
        via           TEXT NOT NULL,
        action        TEXT NOT NULL,
        model         TEXT,
        from_version  TEXT,
        to_version    TEXT,
        reason        TEXT NOT NULL DEFAULT '',
        outcome       TEXT NOT NULL,
        detail        TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_log_model ON audit_log(model, id);
    CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    """
    CREATE TABLE events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       TEXT NOT NULL,
        kind     TEXT NOT NULL,
        model    TEXT,
        payload  TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_at ON events(at);
    CREATE TABLE job_runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        job          TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT NOT NULL,
        ok           INTEGER NOT NULL,
        summary      TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX job_runs_job ON job_runs(job, id);
    CREATE TABLE kv (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    """,
    # Subsystem state: canaries, health, alerts, drift, retraining, ingestion offsets.
    # Domain values are stored as their to_json() documents; the columns beside them
    # are what queries filter on.
    """
    CREATE TABLE canaries (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        model               TEXT NOT NULL REFERENCES models(name),
        canary_version      TEXT NOT NULL,
        production_version  TEXT,
        phase               TEXT NOT NULL,
        revision            INTEGER NOT NULL DEFAULT 0,
        active              INTEGER NOT NULL DEFAULT 1,
        state               TEXT NOT NULL,
        policy              TEXT NOT NULL,
        created_at          TEXT NOT NULL,
        updated_at          TEXT NOT NULL
    );
    CREATE UNIQUE INDEX canaries_one_active_per_model ON canaries(model) WHERE active = 1;
    CREATE TABLE canary_evaluations (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        canary_id   INTEGER NOT NULL REFERENCES canaries(id),
        at          TEXT NOT NULL,
        verdict     TEXT NOT NULL,
        evaluation  TEXT NOT NULL
    );
    CREATE INDEX canary_evaluations_canary ON canary_evaluations(canary_id, id);
    CREATE TABLE health_results (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       TEXT NOT NULL,
        model    TEXT NOT NULL,
        version  TEXT NOT NULL,
        status   TEXT NOT NULL,
        result   TEXT NOT NULL
    );
    CREATE INDEX health_results_version ON health_results(model, version, id);
    CREATE INDEX health_results_at ON health_results(at);
    CREATE TABLE alerts (
        fingerprint  TEXT PRIMARY KEY,
        status       TEXT NOT NULL,
        state        TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE TABLE alert_history (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        status       TEXT NOT NULL,
        state        TEXT NOT NULL
    );
    CREATE INDEX alert_history_at ON alert_history(at);
    CREATE TABLE silences (
        id       TEXT PRIMARY KEY,
        ends_at  TEXT NOT NULL,
        silence  TEXT NOT NULL
    );
    CREATE TABLE drift_results (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       TEXT NOT NULL,
        model    TEXT NOT NULL,
        version  TEXT NOT NULL,
        kind     TEXT NOT NULL,
        verdict  TEXT NOT NULL,
        report   TEXT NOT NULL
    );
    CREATE INDEX drift_results_version ON drift_results(model, kind, id);
    CREATE INDEX drift_results_at ON drift_results(at);
    CREATE TABLE retrain_runs (
        id                 TEXT PRIMARY KEY,
        model              TEXT NOT NULL,
        trigger            TEXT NOT NULL,
        status             TEXT NOT NULL,
        started_at         TEXT NOT NULL,
        finished_at        TEXT,
        candidate_version  TEXT,
        run                TEXT NOT NULL
    );
    CREATE INDEX retrain_runs_model ON retrain_runs(model, started_at);
    CREATE TABLE ingest_offsets (
        key          TEXT PRIMARY KEY,
        inode        INTEGER NOT NULL,
        offset       INTEGER NOT NULL,
        line         INTEGER NOT NULL DEFAULT 0,
        fingerprint  TEXT NOT NULL DEFAULT ''
    );
    """,
    _chain_audit_log,
    # Leader leases (opsctl.adapters.leader_lease): one row per lease, never deleted, so its epoch
    # (the fencing token) only grows.
    """
    CREATE TABLE leases (
        name         TEXT PRIMARY KEY,
        holder       TEXT NOT NULL,
        epoch        INTEGER NOT NULL,
        acquired_at  TEXT NOT NULL,
        renewed_at   TEXT NOT NULL,
        expires_at   TEXT NOT NULL
    );
    """,
    # The daemons sharing this registry (opsctl.adapters.daemon_roster): one row each, its heartbeat
    # renewed with the lease tick, removed on a clean stop.
    """
    CREATE TABLE daemons (
        holder        TEXT PRIMARY KEY,
        host          TEXT NOT NULL,
        pid           INTEGER NOT NULL,
        version       TEXT NOT NULL,
        api           TEXT NOT NULL DEFAULT '',
        started_at    TEXT NOT NULL,
        heartbeat_at  TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

# The canary phases after which a canary no longer holds traffic (opsctl.core.canary's terminal
# phases; a test keeps the two in step).
CANARY_TERMINAL_PHASES = frozenset({"succeeded", "failed", "aborted", "rolled_back"})


class SqliteDialect:
    """What is SQLite-only SQL (see :class:`~opsctl.adapters.registry_engine.Dialect`)."""

    name = "sqlite"
    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)

    def insert_id(self, conn: sqlite3.Connection, sql: str, parameters: Any) -> int:
        return int(conn.execute(sql, parameters).lastrowid or 0)

    def audit_high_water(self, conn: sqlite3.Connection) -> int | None:
        # SQLite's AUTOINCREMENT counter remembers the highest id ever handed out.
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
        return None if seq is None else int(seq[0])

    def audit_appended(self, conn: sqlite3.Connection, audit_id: int) -> None:
        pass  # one daemon per SQLite file: its own event bus already carries every change

    def audit_discarded(self, audit_ids: Any) -> None:
        pass


SQLITE_DIALECT = SqliteDialect()

# The lease whose epoch fences the scheduled jobs' writes (opsctl.adapters.leader_lease).
JOBS_LEASE = "jobs"


class FencedError(ConflictError):
    """A write carried a fencing token (lease epoch) that another daemon's takeover has superseded."""


def open_registry(settings: RegistrySettings, default_path: Path, *, publish_routing: bool = True) -> Registry:
    """The registry ``[registry]`` names: a SQLite file (``default_path`` unless the URL names one) or PostgreSQL.

    The PostgreSQL driver is imported only here and only for a ``postgresql://`` URL. The routing
    document stays next to ``default_path`` on PostgreSQL too: it is this host's file for its routers.
    """
    if settings.engine == "sqlite":
        path = settings.sqlite_path(default_path)
        if path != default_path:
            # The reports, the checklist and the routing document all find the file in state_dir.
            raise RegistryError(f"[registry] url names {path}, but the SQLite registry is {default_path}"
                                " (registry.db in [daemon] state_dir): set state_dir instead")
        return Registry(path, publish_routing=publish_routing)
    from opsctl.adapters.registry_postgres import PostgresEngine

    return Registry(default_path, publish_routing=publish_routing,
                    postgres=PostgresEngine(settings.url, pool_size=settings.pool_size))


class Registry:
    """A registry file; one connection per thread, opened lazily.

    With ``postgres``, the tables live on that server instead (``path`` then only places the
    routing document); transactions take a pooled connection each.

    After every committed transaction that changed a deployment, the routing document next to the
    file (:mod:`opsctl.adapters.routing_document`) is rewritten from the registry, so routers follow
    the change whichever process made it; the transaction's ``routing`` says how that went.
    ``publish_routing=False`` turns this off (a registry copy nobody routes from).
    """

    def __init__(self, path: Path, *, publish_routing: bool = True, postgres: PostgresEngine | None = None) -> None:
        self.path = Path(path)
        self.postgres = postgres
        self.dialect: Dialect = SQLITE_DIALECT if postgres is None else postgres.dialect
        self.routing_document = RoutingDocument(document_path(self.path)) if publish_routing else None
        self._local = threading.local()
        self._migrated = False
        self._migration: SchemaMigration | None = None  # what this process's first connection migrated
        # Threads opening their first connection at once would race to switch a new file to WAL
        # (SQLite answers that with "database is locked" at once, without the busy handler).
        self._open_lock = threading.Lock()

    # -- connections and transactions -------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # 0750 / 0640 whatever the umask; SQLite gives -wal and -shm the database file's mode.
                make_private_dir(self.path.parent)
                create_private_file(self.path)
            except OSError as error:
                raise storage_error(error, self.path.parent) from None
            with self._open_lock:
                conn = self._open()
            self._local.conn = conn
        if not self._migrated:
            with self._open_lock:
                if not self._migrated:
                    self._migrate(conn)
                    self._migrated = True
        return conn

    def _open(self) -> sqlite3.Connection:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            conn = None
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.OperationalError as error:
                if conn is not None:
                    conn.close()
                # Another *process* may be switching the new file to WAL right now: retry briefly.
                if "locked" in str(error) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                if _read_only_fs(self.path.parent):
                    raise storage_error(OSError(errno.EROFS, str(error)), self.path.parent) from None
                raise RegistryError(f"cannot open registry {self.path}: {error}") from error
            except sqlite3.DatabaseError as error:
                raise RegistryError(f"cannot open registry {self.path}: {error}") from error
            conn.row_factory = sqlite3.Row
            return conn

    @property
    def location(self) -> str:
        """Where the registry is, for messages: the file, or the PostgreSQL URL without its password."""
        return str(self.path) if self.postgres is None else self.postgres.shown_url

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.close()
            return
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise too_new(str(self.path), current, SCHEMA_VERSION)
        before: int | None = None  # the version before the first step this process applied
        applied = 0
        while current < SCHEMA_VERSION:
            try:
                conn.execute("BEGIN IMMEDIATE")
                # Another process may have migrated while we waited for the lock.
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current < SCHEMA_VERSION:
                    before = current if before is None else before
                    applied += 1
                    migration = MIGRATIONS[current]
                    if isinstance(migration, str):
                        for statement in _split_sql(migration):
                            conn.execute(statement)
                    else:
                        migration(conn)
                    conn.execute(f"PRAGMA user_version = {current + 1}")
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                conn.execute("ROLLBACK") if conn.in_transaction else None
                raise RegistryError(f"migrating registry {self.path} failed: {error}") from error
            current = conn.execute("PRAGMA user_version").fetchone()[0]
        self._migration = SchemaMigration(str(self.path), current if before is None else before, current, applied)

    def schema_status(self) -> SchemaStatus:
        """The schema version the registry has and the one this opsctl runs, without migrating anything.

        A registry migrated by a newer opsctl is refused (:class:`RegistryError`); a SQLite file that does not
        exist yet is at version 0 (and is not created).
        """
        if self.postgres is not None:
            current = self.postgres.stored_version()
        elif not self.path.exists():
            current = 0
        else:
            try:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
                try:
                    current = conn.execute("PRAGMA user_version").fetchone()[0]
                finally:
                    conn.close()
            except sqlite3.Error as error:
                raise RegistryError(f"cannot read registry {self.path}: {error}") from error
        if current > SCHEMA_VERSION:
            raise too_new(self.location, current, SCHEMA_VERSION)
        return SchemaStatus(self.location, current, SCHEMA_VERSION)

    def migrate(self) -> SchemaMigration:
        """Run the pending migrations now: the same steps, under the same lock, as a daemon's first connection."""
        if self.postgres is not None:
            before, after = self.postgres.migrate()  # every step under one lock: nobody else's in between
            return SchemaMigration(self.location, before, after, after - before)
        with self._open_lock:
            migrated = self._migrated
        self._connection()
        if migrated or self._migration is None:
            current = self.schema_version()
            return SchemaMigration(self.location, current, current, 0)
        return self._migration

    def schema_version(self) -> int:
        if self.postgres is not None:
            return self.postgres.schema_version()
        return self._connection().execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def fenced(self, epoch: int | None, lease: str = JOBS_LEASE) -> Iterator[None]:
        """Every write transaction this thread opens inside first checks that ``epoch`` still holds ``lease``.

        A scheduled job runs inside this on the leader, so each of its state changes is refused with
        :class:`FencedError` (and rolled back) once another daemon took the lease, whichever service made it.
        ``None``: no check.
        """
        previous = getattr(self._local, "fence", None)
        self._local.fence = None if epoch is None else (lease, epoch)
        try:
            yield
        finally:
            self._local.fence = previous

    def _check_fence(self, tx: RegistryTx) -> None:
        fence = getattr(self._local, "fence", None)
        if fence is not None:
            tx.require_epoch(fence[0], fence[1])

    @contextmanager
    def write(self) -> Iterator[RegistryTx]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

        On PostgreSQL the same: one writer at a time (a transaction-scoped advisory lock), so every
        read-check-write below (audit chain, generation and revision compare-and-swap) holds as on SQLite.
        """
        if self.postgres is not None:
            pg_tx: RegistryTx | None = None
            try:
                with self.postgres.write() as conn:
                    pg_tx = RegistryTx(conn, self.dialect)
                    self._check_fence(pg_tx)
                    yield pg_tx
            except BaseException:
                if pg_tx is not None and pg_tx.audit_ids:
                    self.dialect.audit_discarded(pg_tx.audit_ids)
                raise
            assert pg_tx is not None
            if pg_tx.deployments_changed:
                pg_tx.routing = self.publish_routing()
            return
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise ConflictError(f"registry is busy (another change holds the lock): {error}") from error
        tx = RegistryTx(conn)
        try:
            self._check_fence(tx)
            yield tx
        except sqlite3.OperationalError as error:
            conn.execute("ROLLBACK") if conn.in_transaction else None
            mapped = self._storage_error(error)
            if mapped is None:
                raise
            raise mapped from error
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as error:
                conn.execute("ROLLBACK") if conn.in_transaction else None
                raise self._storage_error(error) or RegistryError(f"commit failed: {error}") from error
            except sqlite3.Error as error:
                conn.execute("ROLLBACK") if conn.in_transaction else None
                raise RegistryError(f"commit failed: {error}") from error
        if tx.deployments_changed:
            tx.routing = self.publish_routing()

    def publish_routing(self) -> Publication | None:
        """Rewrite the routing document from the committed deployments (None when publishing is off)."""
        if self.routing_document is None:
            return None
        return self.routing_document.publish(self.list_deployments)

    def _storage_error(self, error: sqlite3.OperationalError) -> OpsctlError | None:
        """SQLite's full-disk and read-only answers as one-line storage errors (None for anything else)."""
        text = str(error)
        if "disk is full" in text:
            return storage_error(OSError(errno.ENOSPC, text), self.path.parent)
        if "readonly" in text or "read-only" in text:
            return storage_error(OSError(errno.EROFS, text), self.path.parent)
        return None

    @contextmanager
    def read(self) -> Iterator[RegistryTx]:
        """A consistent snapshot for several reads."""
        if self.postgres is not None:
            with self.postgres.read() as pg_conn:
                yield RegistryTx(pg_conn, self.dialect)
            return
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            yield RegistryTx(conn)
        finally:
            conn.execute("COMMIT")

    # -- convenience reads --------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        with self.read() as tx:
            return tx.list_models()

    def list_versions(self, model: str) -> list[ModelVersion]:
        with self.read() as tx:
            return tx.list_versions(model)

    def get_version(self, model: str, version: str) -> ModelVersion | None:
        with self.read() as tx:
            return tx.get_version(model, version)

    def get_deployment(self, model: str) -> Deployment | None:
        with self.read() as tx:
            return tx.get_deployment(model)

    def list_deployments(self) -> list[Deployment]:
        with self.read() as tx:
            return tx.list_deployments()

    def audit(self, model: str | None = None, limit: int = 50, after_id: int = 0) -> list[AuditEvent]:
        with self.read() as tx:
            return tx.audit(model, limit=limit, after_id=after_id)


class RegistryTx:
    """Reads and writes inside one transaction."""

    def __init__(self, conn: sqlite3.Connection, dialect: Dialect = SQLITE_DIALECT) -> None:
        # A sqlite3.Connection, or the PostgreSQL engine's connection with the same execute() and rows.
        self.conn = conn
        self.dialect = dialect
        self.deployments_changed = False
        self.audit_ids: list[int] = []  # audit rows this transaction appended
        # Set by Registry.write after the commit: how the routing document was rewritten.
        self.routing: Publication | None = None
        # The lease epoch this transaction was fenced with (require_epoch), None when unfenced: the audit
        # entries a scheduled job makes name it, so a postmortem can tell which leader wrote what.
        self.epoch: int | None = None

    # -- models and versions -------------------------------------------------------

    def model_exists(self, model: str) -> bool:
        return self.conn.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is not None

    def ensure_model(self, model: str, now: datetime) -> None:
        if not self.model_exists(model):
            self.conn.execute("INSERT INTO models(name, created_at) VALUES (?, ?)", (model, utc_iso(now)))
            self.conn.execute(
                "INSERT INTO deployments(model, updated_at) VALUES (?, ?)", (model, utc_iso(now))
            )

    def insert_version(
        self,
        *,
        model: str,
        version: str,
        artifact_name: str,
        sha256: str,
        size_bytes: int,
        metrics: dict[str, float],
        description: str,
        tags: dict[str, str],
        lineage: Lineage,
        reference_name: str | None,
        reference_sha256: str | None,
        now: datetime,
    ) -> None:
        try:
            self.conn.execute(
                """INSERT INTO versions(model, version, artifact_name, sha256, size_bytes, metrics,
                       description, tags, training_data_hash, code_version, parent_version, trigger,
                       reference_name, reference_sha256, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    model,
                    version,
                    artifact_name,
                    sha256,
                    size_bytes,
                    json.dumps(metrics, sort_keys=True),
                    description,
                    json.dumps(tags, sort_keys=True),
                    lineage.training_data_hash,
                    lineage.code_version,
                    lineage.parent_version,
                    lineage.trigger,
                    reference_name,
                    reference_sha256,
                    utc_iso(now),
                ),
            )
        except self.dialect.integrity_errors as error:
            raise ConflictError(f"{model} {version} is already registered") from error

    def set_stage(self, model: str, version: str, stage: VersionStatus) -> None:
        self.conn.execute(
            "UPDATE versions SET stage = ? WHERE model = ? AND version = ?", (stage.value, model, version)
        )

    def get_version(self, model: str, version: str) -> ModelVersion | None:
        row = self.conn.execute(
            "SELECT * FROM versions WHERE model = ? AND version = ?", (model, version)
        ).fetchone()
        if row is None:
            return None
        return _version_from_row(row, self.get_deployment(model))

    def list_versions(self, model: str) -> list[ModelVersion]:
        deployment = self.get_deployment(model)
        rows = self.conn.execute(
            "SELECT * FROM versions WHERE model = ? ORDER BY created_at, rowid", (model,)
        ).fetchall()
        return [_version_from_row(row, deployment) for row in rows]

    def list_models(self) -> list[ModelSummary]:
        rows = self.conn.execute(
            """SELECT m.name, m.created_at, COUNT(v.version) AS versions,
                      d.production_version, d.canary_version, d.canary_weight
               FROM models m
               LEFT JOIN versions v ON v.model = m.name
               LEFT JOIN deployments d ON d.model = m.name
               GROUP BY m.name, d.production_version, d.canary_version, d.canary_weight ORDER BY m.name"""
        ).fetchall()
        return [
            ModelSummary(
                name=row["name"],
                created_at=parse_utc(row["created_at"]),
                versions=row["versions"],
                production_version=row["production_version"],
                canary_version=row["canary_version"],
                canary_weight=row["canary_weight"] or 0.0,
            )
            for row in rows
        ]

    # -- deployments -----------------------------------------------------------------

    def get_deployment(self, model: str) -> Deployment | None:
        row = self.conn.execute("SELECT * FROM deployments WHERE model = ?", (model,)).fetchone()
        return _deployment_from_row(row) if row else None

    def list_deployments(self) -> list[Deployment]:
        rows = self.conn.execute("SELECT * FROM deployments ORDER BY model").fetchall()
        return [_deployment_from_row(row) for row in rows]

    def deployed_versions(self) -> dict[tuple[str, str], ModelVersion]:
        """Every production and canary version, by (model, version), in two queries (not two per version)."""
        deployments = {d.model: d for d in self.list_deployments()}
        rows = self.conn.execute(
            "SELECT v.* FROM versions v JOIN deployments d ON d.model = v.model"
            " AND (v.version = d.production_version OR v.version = d.canary_version)"
        ).fetchall()
        return {(row["model"], row["version"]): _version_from_row(row, deployments.get(row["model"]))
                for row in rows}

    def update_deployment(self, deployment: Deployment, *, expected_generation: int, now: datetime) -> Deployment:
        """Write the new deployment if nobody changed it since ``expected_generation``."""
        cursor = self.conn.execute(
            """UPDATE deployments SET production_version = ?, previous_versions = ?, canary_version = ?,
                   canary_weight = ?, generation = generation + 1, updated_at = ?
               WHERE model = ? AND generation = ?""",
            (
                deployment.production_version,
                json.dumps(list(deployment.previous_versions)),
                deployment.canary_version,
                deployment.canary_weight,
                utc_iso(now),
                deployment.model,
                expected_generation,
            ),
        )
        if cursor.rowcount == 1:
            self.deployments_changed = True
        if cursor.rowcount != 1:
            current = self.get_deployment(deployment.model)
            raise ConflictError(
                f"{deployment.model} changed while this change was prepared (generation "
                f"{expected_generation} -> {current.generation if current else '?'}); nothing was changed,"
                " check `opsctl history` and try again"
            )
        updated = self.get_deployment(deployment.model)
        assert updated is not None
        return updated

    # -- audit log and events --------------------------------------------------------

    def append_audit(
        self,
        *,
        actor: Actor,
        action: str,
        model: str | None,
        from_version: str | None,
        to_version: str | None,
        reason: str,
        outcome: Outcome,
        detail: str = "",
        now: datetime,
    ) -> int:
        if self.epoch is not None:
            detail = f"{detail}; lease epoch {self.epoch}" if detail else f"lease epoch {self.epoch}"
        # Inside the write transaction, so the last row cannot change before this one chains to it.
        last = self.conn.execute("SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        prev_hash = GENESIS_HASH if last is None else (last["row_hash"] or "")
        content = AuditRowContent(
            id=1 if last is None else int(last["id"]) + 1,
            at=utc_iso(now),
            actor=actor.user,
            uid=actor.uid,
            via=actor.via,
            action=action,
            model=model,
            from_version=from_version,
            to_version=to_version,
            reason=reason,
            outcome=outcome.value,
            detail=detail,
        )
        self.conn.execute(
            """INSERT INTO audit_log(id, at, actor, uid, via, action, model, from_version, to_version, reason,
                   outcome, detail, prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (*content, prev_hash, chain_hash(prev_hash, content)),
        )
        self.audit_ids.append(content.id)
        self.dialect.audit_appended(self.conn, content.id)
        return content.id

    def verify_audit_chain(self, *, after_id: int = 0, after_hash: str = GENESIS_HASH) -> ChainReport:
        """Recompute the audit chain from the row after ``after_id`` (whose hash the caller trusts) to the end.

        Also names rows deleted from the end: the engine remembers the highest id ever appended.
        """
        high_water = self.dialect.audit_high_water(self.conn)
        cursor = self.conn.execute("SELECT * FROM audit_log WHERE id > ? ORDER BY id", (after_id,))
        rows = (ChainedRow(_audit_content(row), row["prev_hash"], row["row_hash"]) for row in cursor)
        return verify_chain(rows, prev_hash=after_hash, prev_id=after_id,
                            expected_last_id=high_water)

    def audit_row_hash(self, audit_id: int) -> str | None:
        """The stored hash of one audit row (None when the row is gone)."""
        row = self.conn.execute("SELECT row_hash FROM audit_log WHERE id = ?", (audit_id,)).fetchone()
        return None if row is None else row["row_hash"]

    def audit(self, model: str | None = None, *, limit: int = 50, after_id: int = 0) -> list[AuditEvent]:
        if model is None:
            rows = self.conn.execute(
                "SELECT * FROM audit_log WHERE id > ? ORDER BY id DESC LIMIT ?", (after_id, limit)
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM audit_log WHERE model = ? AND id > ? ORDER BY id DESC LIMIT ?",
                (model, after_id, limit),
            ).fetchall()
        return [_audit_from_row(row) for row in reversed(rows)]

    def append_event(self, *, kind: str, model: str | None, payload: dict[str, Any], now: datetime) -> int:
        return self.insert_id(
            "INSERT INTO events(at, kind, model, payload) VALUES (?, ?, ?, ?)",
            (utc_iso(now), kind, model, json.dumps(payload, sort_keys=True, default=str)),
        )

    def insert_id(self, sql: str, parameters: tuple[Any, ...]) -> int:
        """Run one INSERT into a table with an ``id`` column; the new row's id."""
        return self.dialect.insert_id(self.conn, sql, parameters)

    def record_job_run(self, *, job: str, started_at: datetime, finished_at: datetime, ok: bool, summary: str) -> None:
        self.conn.execute(
            "INSERT INTO job_runs(job, started_at, finished_at, ok, summary) VALUES (?, ?, ?, ?, ?)",
            (job, utc_iso(started_at), utc_iso(finished_at), int(ok), summary),
        )

    def prune(self, *, before: datetime) -> int:
        """Drop events and job runs older than ``before``; the audit log is kept."""
        cutoff = utc_iso(before)
        removed = self.conn.execute("DELETE FROM events WHERE at < ?", (cutoff,)).rowcount
        removed += self.conn.execute("DELETE FROM job_runs WHERE finished_at < ?", (cutoff,)).rowcount
        for table in ("health_results", "drift_results", "canary_evaluations", "alert_history"):
            removed += self.conn.execute(f"DELETE FROM {table} WHERE at < ?", (cutoff,)).rowcount
        return removed

    def live_canary_version(self, model: str) -> str | None:
        """The canary version of the model's live canary (active, not finished), or None.

        Plain SQL on purpose: ``opsctl rollback`` asks this on every plan, and the direct CLI path
        must not load the canary state machine and its statistics to answer it.
        """
        row = self.conn.execute(
            "SELECT canary_version, phase FROM canaries WHERE model = ? AND active = 1 ORDER BY id DESC LIMIT 1",
            (model,),
        ).fetchone()
        if row is None or row["phase"] in CANARY_TERMINAL_PHASES:
            return None
        return str(row["canary_version"])

    def require_epoch(self, lease: str, epoch: int) -> None:
        """Refuse this transaction unless ``epoch`` is still ``lease``'s epoch (the fencing token)."""
        row = self.conn.execute("SELECT epoch, holder FROM leases WHERE name = ?", (lease,)).fetchone()
        current = None if row is None else int(row["epoch"])
        if current != epoch:
            raise FencedError(f"lease {lease!r} moved to epoch {current} (held by"
                              f" {row['holder'] if row else 'nobody'}); this write carried epoch {epoch} and was"
                              " refused")
        self.epoch = epoch

    def get_kv(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def put_kv(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def counts(self) -> dict[str, int]:
        return {
            table: self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("models", "versions", "audit_log", "events", "job_runs")
        }


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _split_sql(script: str) -> list[str]:
    # Triggers contain ';' inside BEGIN ... END, so split on statement ends only.
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.strip().splitlines():
        buffer.append(line)
        candidate = "\n".join(buffer).strip()
        if candidate and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            buffer = []
    if "\n".join(buffer).strip():
        statements.append("\n".join(buffer).strip())
    return statements


def _version_from_row(row: sqlite3.Row, deployment: Deployment | None) -> ModelVersion:
    version = row["version"]
    status = VersionStatus(row["stage"])
    if deployment is not None:
        if deployment.production_version == version:
            status = VersionStatus.PRODUCTION
        elif deployment.canary_version == version:
            status = VersionStatus.CANARY
    return ModelVersion(
        model=row["model"],
        version=version,
        status=status,
        artifact_name=row["artifact_name"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        metrics=json.loads(row["metrics"]),
        description=row["description"],
        tags=json.loads(row["tags"]),
        lineage=Lineage(
            training_data_hash=row["training_data_hash"],
            code_version=row["code_version"],
            parent_version=row["parent_version"],
            trigger=row["trigger"],
        ),
        reference_name=row["reference_name"],
        reference_sha256=row["reference_sha256"],
        created_at=parse_utc(row["created_at"]),
    )


def _deployment_from_row(row: sqlite3.Row) -> Deployment:
    return Deployment(
        model=row["model"],
        production_version=row["production_version"],
        previous_versions=tuple(json.loads(row["previous_versions"])),
        canary_version=row["canary_version"],
        canary_weight=row["canary_weight"] or 0.0,
        generation=row["generation"],
        updated_at=parse_utc(row["updated_at"]) if row["updated_at"] else None,
    )


def _audit_content(row: sqlite3.Row | tuple[Any, ...]) -> AuditRowContent:
    # By position: the migration reads rows before row_factory matters; the first twelve columns are fixed.
    return AuditRowContent(*tuple(row)[:12])


def _audit_from_row(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        at=parse_utc(row["at"]),
        actor=row["actor"],
        uid=row["uid"],
        via=row["via"],
        action=row["action"],
        model=row["model"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        reason=row["reason"],
        outcome=Outcome(row["outcome"]),
        detail=row["detail"],
    )
