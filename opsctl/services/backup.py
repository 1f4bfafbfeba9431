"""Backup and restore of the daemon's state dir: the registry and the artifacts it refers to.

A backup is a directory::

    manifest.json      what is in it, with a sha256 per file (written last: no manifest, no backup)
    registry.db        one consistent snapshot of the registry, taken online (the daemon keeps running)
    artifacts/         every model artifact and reference sample the snapshot's versions refer to

It works on the files directly, whether or not the daemon runs: SQLite's online backup API reads a
consistent snapshot beside a live writer, and stored artifacts never change. What it does not hold:
the config and token files, the prediction logs (in ``[ingest] log_dirs``), and retraining scratch
dirs; the registry holds every table (models, versions, deployments, the audit chain, canaries,
alerts, drift and retraining results, ingestion offsets).

A restore goes into an empty (or new) state dir only, verifies every file against the manifest as it
copies, migrates an older schema, checks the audit chain ends where the manifest says, and writes the
routing document, so a daemon started on it serves the backed-up state. Any failure removes what it
wrote and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl import __version__
from opsctl.adapters.files import make_private_dir, storage_error
from opsctl.adapters.registry import SCHEMA_VERSION, Registry, RegistryTx
from opsctl.adapters.registry_engine import RegistrySettings, redact
from opsctl.adapters.registry_reader import connect_sqlite_read_only
from opsctl.adapters.state_backup import (
    CopiedFile,
    copy_artifact,
    copy_verified,
    fsync_dir,
    referenced_artifacts,
    snapshot_registry,
)
from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.audit_chain import ChainReport
from opsctl.errors import ConflictError, IntegrityError, NotFoundError, UsageError

BACKUP_FORMAT = "opsctl-backup/1"
MANIFEST = "manifest.json"
REGISTRY_FILE = "registry.db"
ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class Progress:
    """How far a backup or restore is: ``done`` of ``total`` ``unit`` in ``phase``."""

    phase: str  # "registry" | "artifacts" | "verify"
    done: int
    total: int
    unit: str  # "files" | "bytes"


ProgressFn = Callable[[Progress], None]


def _no_progress(_: Progress) -> None:
    return None


@dataclass(frozen=True)
class RegistryFacts:
    """What a registry file holds, for the manifest and to compare a restore with."""

    schema_version: int
    models: int
    versions: int
    audit: ChainReport

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "models": self.models, "versions": self.versions,
                "audit": self.audit.to_json()}


@dataclass(frozen=True)
class BackupManifest:
    """``manifest.json``: where the backup came from, what it holds, and a sha256 per file."""

    format: str
    created_at: str
    opsctl_version: str
    source_state_dir: str
    registry: CopiedFile
    artifacts: tuple[CopiedFile, ...]
    facts: RegistryFacts

    @property
    def artifact_bytes(self) -> int:
        return sum(a.size_bytes for a in self.artifacts)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format, "created_at": self.created_at, "opsctl_version": self.opsctl_version,
            "source_state_dir": self.source_state_dir,
            "registry": _file_json(self.registry),
            "artifacts": [_file_json(a) for a in self.artifacts],
            **self.facts.to_json(),
        }

    @classmethod
    def from_json(cls, body: Any) -> BackupManifest:
        """Raises ValueError (or KeyError/TypeError) for a document that is not a manifest of this format."""
        if not isinstance(body, dict) or body.get("format") != BACKUP_FORMAT:
            raise ValueError(f"not an {BACKUP_FORMAT} manifest")
        audit = body["audit"]
        return cls(
            format=BACKUP_FORMAT, created_at=str(body["created_at"]), opsctl_version=str(body["opsctl_version"]),
            source_state_dir=str(body["source_state_dir"]),
            registry=_file_from_json(body["registry"]),
            artifacts=tuple(_file_from_json(a) for a in body["artifacts"]),
            facts=RegistryFacts(
                schema_version=int(body["schema_version"]), models=int(body["models"]),
                versions=int(body["versions"]),
                audit=ChainReport(rows=int(audit["rows"]), last_id=audit["last_id"], last_hash=audit["last_hash"],
                                  first_broken_id=audit["first_broken_id"], problem=str(audit["problem"])),
            ),
        )


@dataclass(frozen=True)
class RestoreReport:
    """What a restore wrote into ``state_dir``, as found there after verification."""

    source: str
    state_dir: str
    manifest: BackupManifest
    facts: RegistryFacts
    migrated_from: int | None  # the backup's schema when the restore migrated it, else None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "state_dir": self.state_dir, "backup_created_at": self.manifest.created_at,
                "artifacts": len(self.manifest.artifacts), "artifact_bytes": self.manifest.artifact_bytes,
                "artifacts_verified": True, "migrated_from_schema": self.migrated_from, **self.facts.to_json()}


def registry_facts(path: Path) -> RegistryFacts:
    """Counts and the audit chain's verdict of a registry file, read without changing it."""
    conn = connect_sqlite_read_only(path)
    try:
        schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
        models = int(conn.execute("SELECT count(*) FROM models").fetchone()[0])
        versions = int(conn.execute("SELECT count(*) FROM versions").fetchone()[0])
        audit = RegistryTx(conn).verify_audit_chain()
    finally:
        conn.close()
    return RegistryFacts(schema, models, versions, audit)


def require_sqlite(registry: RegistrySettings, command: str) -> None:
    """UsageError when ``[registry]`` is on PostgreSQL: a backup here is a copy of the SQLite file.

    PostgreSQL has its own backups (pg_dump, base backups and WAL archiving, a managed service's
    snapshots); copying part of it from one client would be neither consistent nor restorable.
    """
    if registry.engine == "postgresql":
        raise UsageError(f"opsctl {command} copies a SQLite registry, and this one is on PostgreSQL"
                         f" ({redact(registry.url)}): use pg_dump / pg_restore (or your PostgreSQL's own backups)"
                         " and copy the artifacts directory with it")


def backup(state_dir: Path, dest: Path, *, clock: Clock | None = None,
           progress: ProgressFn = _no_progress) -> BackupManifest:
    """Back up ``state_dir`` into ``dest`` (new or empty); see the module docstring."""
    clock = clock or SystemClock()
    registry_path = state_dir / REGISTRY_FILE
    if not registry_path.is_file():
        raise NotFoundError("registry", str(registry_path), "is state_dir right? (--state-dir or the config's)")
    created = _prepare_empty_dir(dest, what="backup destination")
    try:
        progress(Progress("registry", 0, 1, "files"))
        registry = snapshot_registry(registry_path, dest / REGISTRY_FILE)
        progress(Progress("registry", 1, 1, "files"))
        facts = registry_facts(dest / REGISTRY_FILE)
        wanted = referenced_artifacts(dest / REGISTRY_FILE)
        source_root = state_dir / ARTIFACTS_DIR
        total = 0
        for name, _ in wanted:
            try:
                total += (source_root / name).stat().st_size
            except FileNotFoundError:
                raise IntegrityError(f"artifact {name}, which the registry refers to, is missing from"
                                     f" {source_root}; nothing was backed up") from None
        artifacts = _copy_artifacts(wanted, source_root, dest / ARTIFACTS_DIR, total, progress)
        manifest = BackupManifest(BACKUP_FORMAT, utc_iso(clock.now()), __version__, str(state_dir), registry,
                                  tuple(artifacts), facts)
        _write_manifest(dest, manifest)
    except BaseException:
        _undo(dest, created)
        raise
    return manifest


def read_manifest(source: Path) -> BackupManifest:
    """The manifest of the backup in ``source``; IntegrityError when there is none or it is not one."""
    path = source / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not source.is_dir():
            raise NotFoundError("backup", str(source)) from None
        raise IntegrityError(f"{source} has no {MANIFEST}: not an opsctl backup, or one that did not finish") from None
    except (OSError, UnicodeDecodeError) as error:
        raise IntegrityError(f"cannot read {path}: {error}") from None
    try:
        return BackupManifest.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise IntegrityError(f"{path} is not a valid {BACKUP_FORMAT} manifest: {error}") from None


def restore(source: Path, state_dir: Path, *, progress: ProgressFn = _no_progress) -> RestoreReport:
    """Restore the backup in ``source`` into ``state_dir`` (new or empty); see the module docstring."""
    manifest = read_manifest(source)
    if manifest.facts.schema_version > SCHEMA_VERSION:
        raise ConflictError(f"the backup's registry has schema {manifest.facts.schema_version}, newer than this"
                            f" opsctl knows ({SCHEMA_VERSION}); restore it with opsctl {manifest.opsctl_version}"
                            " or later")
    created = _prepare_empty_dir(state_dir, what="state dir to restore into")
    try:
        progress(Progress("registry", 0, 1, "files"))
        registry_path = state_dir / REGISTRY_FILE
        copy_verified(source / REGISTRY_FILE, registry_path, manifest.registry.sha256)
        progress(Progress("registry", 1, 1, "files"))
        _copy_artifacts([(a.name, a.sha256) for a in manifest.artifacts], source / ARTIFACTS_DIR,
                        state_dir / ARTIFACTS_DIR, manifest.artifact_bytes, progress)
        progress(Progress("verify", 0, 1, "files"))
        listed = {a.name for a in manifest.artifacts}
        missing = [name for name, _ in referenced_artifacts(registry_path) if name not in listed]
        if missing:
            raise IntegrityError(f"the backup's registry refers to artifacts its manifest does not list:"
                                 f" {', '.join(missing[:3])}")
        registry = Registry(registry_path)
        try:
            registry.schema_version()  # migrates a backup from an older opsctl now
            facts = registry_facts(registry_path)
            _check_same_audit(manifest.facts.audit, facts.audit)
            publication = registry.publish_routing()
            if publication is not None and not publication.ok:
                raise storage_error(OSError(publication.error or "cannot write the routing document"), state_dir)
        finally:
            registry.close()
        fsync_dir(state_dir)
        progress(Progress("verify", 1, 1, "files"))
    except BaseException:
        _undo(state_dir, created)
        raise
    migrated = manifest.facts.schema_version if manifest.facts.schema_version != facts.schema_version else None
    return RestoreReport(str(source), str(state_dir), manifest, facts, migrated)


def _check_same_audit(expected: ChainReport, found: ChainReport) -> None:
    if not found.ok and expected.ok:
        raise IntegrityError(f"the restored audit chain is broken at row {found.first_broken_id}: {found.problem}")
    if (found.rows, found.last_id, found.last_hash) != (expected.rows, expected.last_id, expected.last_hash):
        raise IntegrityError(f"the restored audit log ends at row {found.last_id} ({found.rows} rows), the backup's"
                             f" manifest at row {expected.last_id} ({expected.rows} rows)")


def _copy_artifacts(wanted: list[tuple[str, str]], source_root: Path, dest_root: Path, total: int,
                    progress: ProgressFn) -> list[CopiedFile]:
    try:
        make_private_dir(dest_root)
    except OSError as error:
        raise storage_error(error, dest_root.parent) from None
    done = 0

    def advanced(size: int) -> None:
        nonlocal done
        done += size
        progress(Progress("artifacts", done, total, "bytes"))

    progress(Progress("artifacts", 0, total, "bytes"))
    copied = [copy_artifact(source_root, name, sha256, dest_root, on_bytes=advanced) for name, sha256 in wanted]
    fsync_dir(dest_root)
    return copied


def _prepare_empty_dir(path: Path, *, what: str) -> bool:
    """Make sure ``path`` is a new or empty directory; True when this call created it."""
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise UsageError(f"{what} {path} is not a directory")
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ConflictError(f"{what} {path} is not empty ({shown}); give a new or empty directory,"
                                " nothing was written")
        return False
    try:
        make_private_dir(path)
    except OSError as error:
        raise storage_error(error, path) from None
    return True


def _write_manifest(dest: Path, manifest: BackupManifest) -> None:
    tmp = dest / f".{MANIFEST}.tmp"
    try:
        with open(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640), "w", encoding="utf-8") as out:
            json.dump(manifest.to_json(), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest / MANIFEST)
        fsync_dir(dest)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise storage_error(error, dest) from None


def _undo(path: Path, created: bool) -> None:
    """Remove what a failed backup or restore wrote: ``path`` itself if it made it, else its contents."""
    with contextlib.suppress(FileNotFoundError):
        if created:
            shutil.rmtree(path, onerror=_make_writable_and_retry)
            return
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, onerror=_make_writable_and_retry)
            else:
                entry.unlink()


def _make_writable_and_retry(function: Callable[..., Any], path: str, _: Any) -> None:
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o750)
        function(path)


def _file_json(entry: CopiedFile) -> dict[str, Any]:
    return {"name": entry.name, "sha256": entry.sha256, "size_bytes": entry.size_bytes}


def _file_from_json(body: Any) -> CopiedFile:
    if not isinstance(body, dict):
        raise ValueError("a file entry must be an object")
    return CopiedFile(str(body["name"]), str(body["sha256"]), int(body["size_bytes"]))
