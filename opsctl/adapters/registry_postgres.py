"""The registry on PostgreSQL (psycopg 3 with a connection pool): the same tables and SQL as SQLite.

What the SQLite engine gets from the file, this one builds explicitly:

* **One writer at a time.** Every write transaction first takes a transaction-scoped advisory
  lock (``pg_advisory_xact_lock``), as ``BEGIN IMMEDIATE`` does on SQLite; the audit chain's
  "append after the last row" and the generation and revision compare-and-swaps then hold across
  daemons exactly as they hold across processes on one file. Writers run at READ COMMITTED, so
  each statement sees every commit made before the lock was granted. Readers take a REPEATABLE
  READ snapshot.
* **Migrations** are the same numbered steps as SQLite's (``SCHEMA_VERSION`` of them), run by the
  first process that connects under a session advisory lock, the version in ``opsctl_schema``.
* **Append-only audit log**: PL/pgSQL triggers refuse UPDATE, DELETE, TRUNCATE and any insert that
  is not after the last row; ``audit_log_high_water`` remembers the highest id ever appended (what
  ``sqlite_sequence`` does on SQLite), so rows deleted from the end past the triggers are named.
* **Text compares byte by byte** (``COLLATE "C"`` on every text column), as SQLite's default
  BINARY collation does, so ``ORDER BY`` and ``at < ?`` mean the same on both engines whatever
  the database's locale.

The stores write SQL with ``?`` placeholders; :class:`PgConnection` turns them into psycopg's
``%s``. Rows answer by position and by column name, as ``sqlite3.Row`` does.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from opsctl.adapters.registry_engine import RegistryError, redact, too_new
from opsctl.core.audit_chain import GENESIS_HASH, AuditRowContent, chain_hash
from opsctl.errors import ConflictError, NotFoundError

# The channel every audit append is announced on (opsctl.adapters.registry_events listens).
EVENTS_CHANNEL = "opsctl_events"
# Advisory lock keys (one 64-bit key space per database): writers, and the migration runner.
WRITE_LOCK_KEY = 0x6F70_7363_746C_0001
MIGRATION_LOCK_KEY = 0x6F70_7363_746C_0002
# How long a writer waits for another's transaction, and a caller for a pooled connection.
BUSY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5
# A client frozen inside a transaction (SIGSTOP, a VM pause) would hold the write lock for good: the server
# ends such a session after this long, which frees the lock and rolls its transaction back.
IDLE_IN_TRANSACTION_TIMEOUT_S = 10

_APPEND_ONLY = """
CREATE FUNCTION opsctl_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION opsctl_audit_refuse();
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION opsctl_audit_refuse();
CREATE TRIGGER audit_log_append_only_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION opsctl_audit_refuse();
"""


def _chain_audit_log(conn: psycopg.Connection[Any]) -> None:
    """Migration 4: the hash chain (see :func:`opsctl.adapters.registry._chain_audit_log`), existing rows included."""
    conn.execute("ALTER TABLE audit_log ADD COLUMN prev_hash TEXT COLLATE \"C\"")
    conn.execute("ALTER TABLE audit_log ADD COLUMN row_hash TEXT COLLATE \"C\"")
    conn.execute("DROP TRIGGER audit_log_append_only_update ON audit_log")
    prev_hash = GENESIS_HASH
    rows = conn.execute("SELECT id, at, actor, uid, via, action, model, from_version, to_version, reason, outcome,"
                        " detail FROM audit_log ORDER BY id").fetchall()
    for row in rows:
        row_hash = chain_hash(prev_hash, AuditRowContent(*row))
        conn.execute("UPDATE audit_log SET prev_hash = %s, row_hash = %s WHERE id = %s", (prev_hash, row_hash, row[0]))
        prev_hash = row_hash
    conn.execute("""
        CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION opsctl_audit_refuse();
        CREATE TABLE audit_log_high_water (
            only_row  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
            last_id   BIGINT NOT NULL
        );
        INSERT INTO audit_log_high_water(last_id) SELECT coalesce(max(id), 0) FROM audit_log;
        CREATE FUNCTION opsctl_audit_append() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id IS NULL OR NEW.id <= (SELECT coalesce(max(id), 0) FROM audit_log) THEN
                RAISE EXCEPTION 'the audit log is append-only';
            END IF;
            UPDATE audit_log_high_water SET last_id = greatest(last_id, NEW.id);
            RETURN NEW;
        END $$;
        CREATE TRIGGER audit_log_append_only_insert BEFORE INSERT ON audit_log
            FOR EACH ROW EXECUTE FUNCTION opsctl_audit_append();
        CREATE FUNCTION opsctl_high_water_only_up() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' OR NEW.last_id < OLD.last_id THEN
                RAISE EXCEPTION 'the audit log is append-only';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER audit_log_high_water_only_up BEFORE UPDATE OR DELETE ON audit_log_high_water
            FOR EACH ROW EXECUTE FUNCTION opsctl_high_water_only_up();
        CREATE TRIGGER audit_log_high_water_no_truncate BEFORE TRUNCATE ON audit_log_high_water
            FOR EACH STATEMENT EXECUTE FUNCTION opsctl_audit_refuse();
    """)


# Step for step the SQLite migrations (opsctl.adapters.registry.MIGRATIONS): same tables, columns
# in the same order, same indexes. INTEGER is BIGINT (sizes and inodes pass 2**31), REAL is DOUBLE
# PRECISION (SQLite's REAL is 8 bytes), AUTOINCREMENT an identity. ``versions`` and ``retrain_runs``
# get an explicit ``rowid`` identity: queries order ties by SQLite's implicit rowid. Never edit a
# migration that has shipped; append a new one here and in SQLite's list.
MIGRATIONS: tuple[str | Callable[[psycopg.Connection[Any]], None], ...] = (
    """
    CREATE TABLE models (
        name        TEXT COLLATE "C" PRIMARY KEY,
        created_at  TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE versions (
        model               TEXT COLLATE "C" NOT NULL REFERENCES models(name),
        version             TEXT COLLATE "C" NOT NULL,
        artifact_name       TEXT COLLATE "C" NOT NULL,
        sha256              TEXT COLLATE "C" NOT NULL,
        size_bytes          BIGINT NOT NULL,
        metrics             TEXT COLLATE "C" NOT NULL DEFAULT '{}',
        description         TEXT COLLATE "C" NOT NULL DEFAULT '',
        tags                TEXT COLLATE "C" NOT NULL DEFAULT '{}',
        training_data_hash  TEXT COLLATE "C",
        code_version        TEXT COLLATE "C",
        parent_version      TEXT COLLATE "C",
        trigger             TEXT COLLATE "C",
        reference_name      TEXT COLLATE "C",
        reference_sha256    TEXT COLLATE "C",
        stage               TEXT COLLATE "C" NOT NULL DEFAULT 'registered',
        created_at          TEXT COLLATE "C" NOT NULL,
        rowid               BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (model, version)
    );
    CREATE TABLE deployments (
        model               TEXT COLLATE "C" PRIMARY KEY REFERENCES models(name),
        production_version  TEXT COLLATE "C",
        previous_versions   TEXT COLLATE "C" NOT NULL DEFAULT '[]',
        canary_version      TEXT COLLATE "C",
        canary_weight       DOUBLE PRECISION NOT NULL DEFAULT 0,
        generation          BIGINT NOT NULL DEFAULT 0,
        updated_at          TEXT COLLATE "C"
    );
    CREATE TABLE audit_log (
        id            BIGINT PRIMARY KEY,
        at            TEXT COLLATE "C" NOT NULL,
        actor         TEXT COLLATE "C" NOT NULL,
        uid           BIGINT,
        via           TEXT COLLATE "C" NOT NULL,
        action        TEXT COLLATE "C" NOT NULL,
        model         TEXT COLLATE "C",
        from_version  TEXT COLLATE "C",
        to_version    TEXT COLLATE "C",
        reason        TEXT COLLATE "C" NOT NULL DEFAULT '',
        outcome       TEXT COLLATE "C" NOT NULL,
        detail        TEXT COLLATE "C" NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_log_model ON audit_log(model, id);
    """ + _APPEND_ONLY,
    """
    CREATE TABLE events (
        id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at       TEXT COLLATE "C" NOT NULL,
        kind     TEXT COLLATE "C" NOT NULL,
        model    TEXT COLLATE "C",
        payload  TEXT COLLATE "C" NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_at ON events(at);
    CREATE TABLE job_runs (
        id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        job          TEXT COLLATE "C" NOT NULL,
        started_at   TEXT COLLATE "C" NOT NULL,
        finished_at  TEXT COLLATE "C" NOT NULL,
        ok           BIGINT NOT NULL,
        summary      TEXT COLLATE "C" NOT NULL DEFAULT ''
    );
    CREATE INDEX job_runs_job ON job_runs(job, id);
    CREATE TABLE kv (
        key    TEXT COLLATE "C" PRIMARY KEY,
        value  TEXT COLLATE "C" NOT NULL
    );
    """,
    """
    CREATE TABLE canaries (
        id                  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        model               TEXT COLLATE "C" NOT NULL REFERENCES models(name),
        canary_version      TEXT COLLATE "C" NOT NULL,
        production_version  TEXT COLLATE "C",
        phase               TEXT COLLATE "C" NOT NULL,
        revision            BIGINT NOT NULL DEFAULT 0,
        active              BIGINT NOT NULL DEFAULT 1,
        state               TEXT COLLATE "C" NOT NULL,
        policy              TEXT COLLATE "C" NOT NULL,
        created_at          TEXT COLLATE "C" NOT NULL,
        updated_at          TEXT COLLATE "C" NOT NULL
    );
    CREATE UNIQUE INDEX canaries_one_active_per_model ON canaries(model) WHERE active = 1;
    CREATE TABLE canary_evaluations (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        canary_id   BIGINT NOT NULL REFERENCES canaries(id),
        at          TEXT COLLATE "C" NOT NULL,
        verdict     TEXT COLLATE "C" NOT NULL,
        evaluation  TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX canary_evaluations_canary ON canary_evaluations(canary_id, id);
    CREATE TABLE health_results (
        id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at       TEXT COLLATE "C" NOT NULL,
        model    TEXT COLLATE "C" NOT NULL,
        version  TEXT COLLATE "C" NOT NULL,
        status   TEXT COLLATE "C" NOT NULL,
        result   TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX health_results_version ON health_results(model, version, id);
    CREATE INDEX health_results_at ON health_results(at);
    CREATE TABLE alerts (
        fingerprint  TEXT COLLATE "C" PRIMARY KEY,
        status       TEXT COLLATE "C" NOT NULL,
        state        TEXT COLLATE "C" NOT NULL,
        updated_at   TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE alert_history (
        id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at           TEXT COLLATE "C" NOT NULL,
        fingerprint  TEXT COLLATE "C" NOT NULL,
        status       TEXT COLLATE "C" NOT NULL,
        state        TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX alert_history_at ON alert_history(at);
    CREATE TABLE silences (
        id       TEXT COLLATE "C" PRIMARY KEY,
        ends_at  TEXT COLLATE "C" NOT NULL,
        silence  TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE drift_results (
        id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at       TEXT COLLATE "C" NOT NULL,
        model    TEXT COLLATE "C" NOT NULL,
        version  TEXT COLLATE "C" NOT NULL,
        kind     TEXT COLLATE "C" NOT NULL,
        verdict  TEXT COLLATE "C" NOT NULL,
        report   TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX drift_results_version ON drift_results(model, kind, id);
    CREATE INDEX drift_results_at ON drift_results(at);
    CREATE TABLE retrain_runs (
        id                 TEXT COLLATE "C" PRIMARY KEY,
        model              TEXT COLLATE "C" NOT NULL,
        trigger            TEXT COLLATE "C" NOT NULL,
        status             TEXT COLLATE "C" NOT NULL,
        started_at         TEXT COLLATE "C" NOT NULL,
        finished_at        TEXT COLLATE "C",
        candidate_version  TEXT COLLATE "C",
        run                TEXT COLLATE "C" NOT NULL,
        rowid              BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX retrain_runs_model ON retrain_runs(model, started_at);
    CREATE TABLE ingest_offsets (
        key          TEXT COLLATE "C" PRIMARY KEY,
        inode        BIGINT NOT NULL,
        "offset"     BIGINT NOT NULL,
        line         BIGINT NOT NULL DEFAULT 0,
        fingerprint  TEXT COLLATE "C" NOT NULL DEFAULT ''
    );
    """,
    _chain_audit_log,
    """
    CREATE TABLE leases (
        name         TEXT COLLATE "C" PRIMARY KEY,
        holder       TEXT COLLATE "C" NOT NULL,
        epoch        BIGINT NOT NULL,
        acquired_at  TEXT COLLATE "C" NOT NULL,
        renewed_at   TEXT COLLATE "C" NOT NULL,
        expires_at   TEXT COLLATE "C" NOT NULL
    );
    """,
    """
    CREATE TABLE daemons (
        holder        TEXT COLLATE "C" PRIMARY KEY,
        host          TEXT COLLATE "C" NOT NULL,
        pid           BIGINT NOT NULL,
        version       TEXT COLLATE "C" NOT NULL,
        api           TEXT COLLATE "C" NOT NULL DEFAULT '',
        started_at    TEXT COLLATE "C" NOT NULL,
        heartbeat_at  TEXT COLLATE "C" NOT NULL
    );
    """,
)

# Equal to SQLite's opsctl.adapters.registry.SCHEMA_VERSION (a test keeps the two lists in step).
SCHEMA_VERSION = len(MIGRATIONS)


class PgRow:
    """One result row by position, by column name and as a sequence, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=False))!r})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], PgRow]:
    index: dict[str, int] = {}
    for position, column in enumerate(cursor.description or ()):
        index.setdefault(column.name, position)  # the first of two equal names, as sqlite3.Row
    return lambda values: PgRow(values, index)


def to_pyformat(sql: str) -> str:
    """The stores' ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """``RegistryTx.conn`` on PostgreSQL: ``execute``/``executemany`` with ``?`` placeholders."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[PgRow]:
        cursor = self.raw.cursor(row_factory=_row_factory)
        cursor.execute(to_pyformat(sql), tuple(parameters))
        return cursor

    def executemany(self, sql: str, parameters: Any, /) -> psycopg.Cursor[PgRow]:
        cursor = self.raw.cursor(row_factory=_row_factory)
        cursor.executemany(to_pyformat(sql), [tuple(p) for p in parameters])
        return cursor


class PostgresDialect:
    """What is PostgreSQL-only SQL (see :class:`~opsctl.adapters.registry_engine.Dialect`).

    Every audit append also sends ``NOTIFY opsctl_events`` in its own transaction (so it is delivered
    only if that commits): ``{"origin": ..., "audit_id": N}``, far below the 8000-byte payload limit;
    listeners read the row itself (:mod:`opsctl.adapters.registry_events`). ``origin`` names this
    process, and the ids it appended are remembered until its listener has passed them, so a daemon
    never republishes its own changes, not even when it catches up after a reconnect.
    """

    name = "postgresql"
    integrity_errors: tuple[type[BaseException], ...] = (psycopg.IntegrityError,)

    def __init__(self) -> None:
        self.origin = secrets.token_hex(8)
        self._made_here: set[int] = set()
        self._made_here_lock = threading.Lock()

    def audit_appended(self, conn: PgConnection, audit_id: int) -> None:
        with self._made_here_lock:
            self._made_here.add(audit_id)
        payload = json.dumps({"origin": self.origin, "audit_id": audit_id}, separators=(",", ":"))
        conn.execute("SELECT pg_notify(?, ?)", (EVENTS_CHANNEL, payload))

    def audit_discarded(self, audit_ids: Sequence[int]) -> None:
        # Rolled back: another daemon may append these ids next, and those rows are not ours.
        with self._made_here_lock:
            self._made_here.difference_update(audit_ids)

    def made_here(self, audit_id: int) -> bool:
        """Whether this process appended audit row ``audit_id``."""
        with self._made_here_lock:
            return audit_id in self._made_here

    def forget_made_here(self, up_to: int) -> None:
        """The listener has passed ``up_to``: those ids need not be remembered any longer."""
        with self._made_here_lock:
            self._made_here = {i for i in self._made_here if i > up_to}

    def insert_id(self, conn: PgConnection, sql: str, parameters: Sequence[Any]) -> int:
        return int(conn.execute(sql + " RETURNING id", parameters).fetchone()[0])  # type: ignore[index]

    def audit_high_water(self, conn: PgConnection) -> int | None:
        row = conn.execute("SELECT last_id FROM audit_log_high_water").fetchone()
        return None if row is None or not row[0] else int(row[0])


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT_S}s'")


class PostgresEngine:
    """Connections to one PostgreSQL registry: migrated on first use, then a pool for transactions."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        self.shown_url = redact(url)
        self.dialect = PostgresDialect()
        self._pool_size = pool_size
        self._pool: ConnectionPool[Any] | None = None
        self._lock = threading.Lock()

    def _error(self, what: str, error: Exception) -> RegistryError:
        return RegistryError(f"{what} PostgreSQL registry {self.shown_url}: {str(error).strip()}")

    def _ready_pool(self) -> ConnectionPool[Any]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                self.migrate()
                pool = ConnectionPool(self.url, min_size=1, max_size=self._pool_size, open=False,
                                      timeout=BUSY_TIMEOUT_S, name="opsctl-registry",
                                      kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                                      configure=_configure)
                pool.open()
                self._pool = pool
            return self._pool

    def stored_version(self) -> int:
        """The schema version in the database (0 for an empty one), without migrating or opening the pool."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                exists = conn.execute("SELECT to_regclass('opsctl_schema')").fetchone()
                if exists is None or exists[0] is None:
                    return 0
                row = conn.execute("SELECT version FROM opsctl_schema").fetchone()
                return 0 if row is None else int(row[0])
        except psycopg.Error as error:
            raise self._error("cannot read the", error) from error

    def migrate(self) -> tuple[int, int]:
        """Bring the schema to this opsctl's version (under a lock: one process migrates, the others wait).

        Returns the version before the first step this call applied and after the last (equal when none was due).
        """
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
                try:
                    return self._migrate(conn, SCHEMA_VERSION)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        except psycopg.Error as error:
            raise self._error("cannot migrate the", error) from error

    def _migrate(self, conn: psycopg.Connection[Any], target: int) -> tuple[int, int]:
        conn.execute("""CREATE TABLE IF NOT EXISTS opsctl_schema (
            only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), version INTEGER NOT NULL)""")
        conn.execute("INSERT INTO opsctl_schema(version) VALUES (0) ON CONFLICT DO NOTHING")
        current = int(conn.execute("SELECT version FROM opsctl_schema").fetchone()[0])  # type: ignore[index]
        if current > target:
            raise too_new(self.shown_url, current, target)
        before = current
        while current < target:
            with conn.transaction():
                migration = MIGRATIONS[current]
                if isinstance(migration, str):
                    conn.execute(migration.encode())  # bytes: run as written, no placeholders
                else:
                    migration(conn)
                conn.execute("UPDATE opsctl_schema SET version = %s", (current + 1,))
            current += 1
        return before, current

    def schema_version(self) -> int:
        with self.read() as conn:
            return int(conn.execute("SELECT version FROM opsctl_schema").fetchone()[0])  # type: ignore[index]

    @contextmanager
    def write(self) -> Iterator[PgConnection]:
        """One write transaction, alone among writers: committed on success, rolled back on any error."""
        try:
            with self._ready_pool().connection() as raw, raw.transaction():
                raw.execute(f"SET LOCAL lock_timeout = '{int(BUSY_TIMEOUT_S * 1000)}ms'")
                try:
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                except psycopg.errors.LockNotAvailable as error:
                    raise ConflictError(f"registry is busy (another change holds the lock): {error}") from error
                yield PgConnection(raw)
        except PoolTimeout as error:
            raise self._error("no connection to the", error) from error
        except psycopg.OperationalError as error:
            raise self._error("lost the", error) from error

    @contextmanager
    def read(self) -> Iterator[PgConnection]:
        """A consistent snapshot for several reads."""
        try:
            with self._ready_pool().connection() as raw, raw.transaction():
                raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                yield PgConnection(raw)
        except PoolTimeout as error:
            raise self._error("no connection to the", error) from error
        except psycopg.OperationalError as error:
            raise self._error("lost the", error) from error

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


class PgReadConnection:
    """A read-only connection for reports (:mod:`opsctl.adapters.registry_reader`): one READ ONLY,
    REPEATABLE READ transaction, so every query sees the same snapshot and the server refuses writes."""

    def __init__(self, url: str) -> None:
        self.shown_url = redact(url)
        try:
            raw = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, application_name="opsctl-read")
        except psycopg.Error as error:
            raise RegistryError(f"cannot reach the PostgreSQL registry {self.shown_url}:"
                                f" {str(error).strip()}") from error
        raw.read_only = True
        raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.raw = raw
        self.conn = PgConnection(raw)
        if self.execute("SELECT to_regclass('opsctl_schema')").fetchone()[0] is None:
            self.close()
            raise NotFoundError("registry", self.shown_url,
                                "no opsctl registry in this database yet: start the daemon, or register a model")

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[PgRow]:
        try:
            return self.conn.execute(sql, parameters)
        except psycopg.Error as error:
            raise RegistryError(f"cannot read the PostgreSQL registry {self.shown_url}:"
                                f" {str(error).strip()}") from error

    def table_names(self) -> set[str]:
        return {row[0] for row in self.execute("SELECT table_name FROM information_schema.tables"
                                               " WHERE table_schema = current_schema()")}

    def close(self) -> None:
        self.raw.close()  # ends the read-only transaction (nothing to commit)


def connect_read_only(url: str) -> PgReadConnection:
    """A read-only connection to the PostgreSQL registry at ``url``; NotFoundError when it has no registry."""
    return PgReadConnection(url)
