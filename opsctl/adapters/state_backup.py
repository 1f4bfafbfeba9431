"""File work for backups of the state dir: an online copy of the registry, verified copies of artifacts.

The registry is copied with SQLite's online backup API in one step from a read-only connection. In WAL
mode a reader never blocks the daemon's writers, and a single step reads one consistent snapshot (a
stepwise backup restarts whenever another process writes, so under a busy daemon it might never end).
The copy is switched to ``journal_mode = DELETE`` so it is one self-contained file.

Artifacts are content-addressed and never change once stored, so a copy taken after the snapshot is
the one the snapshot refers to; each is hashed while it is copied and refused on a mismatch.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.files import PRIVATE_FILE_MODE, storage_error
from opsctl.adapters.registry_reader import connect_sqlite_read_only
from opsctl.errors import IntegrityError, OpsctlError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class CopiedFile:
    """A file written into a backup or a state dir: its name there, sha256 and size."""

    name: str
    sha256: str
    size_bytes: int


def snapshot_registry(source: Path, dest: Path) -> CopiedFile:
    """Copy the live registry at ``source`` to the new file ``dest`` (one consistent snapshot)."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    src = connect_sqlite_read_only(source)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
        os.close(fd)
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(out, pages=-1)
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
        os.chmod(tmp, PRIVATE_FILE_MODE)
        _fsync(tmp)
        os.replace(tmp, dest)
    except sqlite3.OperationalError as error:
        _remove(tmp)
        if "full" in str(error):
            raise storage_error(OSError(errno.ENOSPC, str(error)), dest.parent) from None
        if "readonly" in str(error) or "read-only" in str(error):
            raise storage_error(OSError(errno.EROFS, str(error)), dest.parent) from None
        raise OpsctlError(f"cannot copy the registry {source}: {error}") from None
    except OSError as error:
        _remove(tmp)
        raise storage_error(error, dest.parent) from None
    finally:
        src.close()
    digest, size = _hash(dest)
    return CopiedFile(dest.name, digest, size)


def referenced_artifacts(registry_file: Path) -> list[tuple[str, str]]:
    """(name, sha256) of every artifact a registry file's versions refer to: models and reference samples."""
    conn = connect_sqlite_read_only(registry_file)
    try:
        rows = conn.execute("SELECT artifact_name, sha256, reference_name, reference_sha256 FROM versions"
                            " ORDER BY model, version").fetchall()
    finally:
        conn.close()
    found: dict[str, str] = {}
    for row in rows:
        found[str(row["artifact_name"])] = str(row["sha256"])
        if row["reference_name"]:
            found[str(row["reference_name"])] = str(row["reference_sha256"])
    return sorted(found.items())


def copy_artifact(source_root: Path, name: str, sha256: str, dest_root: Path,
                  on_bytes: Callable[[int], None] | None = None) -> CopiedFile:
    """Copy one stored artifact (read-only, 0440, as the store keeps them), verified against ``sha256``."""
    ArtifactStore(source_root).stored(name, sha256)  # a content-addressed name, a regular file
    return copy_verified(source_root / name, dest_root / name, sha256, mode=0o440, on_bytes=on_bytes)


def copy_verified(source: Path, dest: Path, sha256: str, *, mode: int = PRIVATE_FILE_MODE,
                  on_bytes: Callable[[int], None] | None = None) -> CopiedFile:
    """Copy ``source`` to the new file ``dest``, hashing as it streams; IntegrityError on a mismatch.

    Nothing is left at ``dest`` unless the copy is whole, fsynced and matches ``sha256``.
    """
    tmp = dest.with_name(f".{dest.name}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        src = source.open("rb")
    except FileNotFoundError:
        raise IntegrityError(f"{source.name} is missing from {source.parent}") from None
    except OSError as error:
        raise OpsctlError(f"cannot read {source}: {error.strerror}") from None
    try:
        with src, open(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            _remove(tmp)
            raise IntegrityError(f"{source} failed verification: sha256 is {digest.hexdigest()[:16]}…,"
                                 f" expected {sha256[:16]}…")
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except OSError as error:
        _remove(tmp)
        raise storage_error(error, dest.parent) from None
    return CopiedFile(dest.name, sha256, size)


def hash_file(path: Path) -> CopiedFile:
    """A file's name, sha256 and size."""
    digest, size = _hash(path)
    return CopiedFile(path.name, digest, size)


def fsync_dir(path: Path) -> None:
    """Make the names in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
