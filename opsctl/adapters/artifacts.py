"""Content-addressed artifact store in a directory: the one implementation of ``ArtifactStorage``.

Files are copied in under ``sha256-<hex><suffix>``; every load verifies the
sha256 first and refuses a mismatch, a missing file, a symlink, or a name that
could leave the directory. Nothing is unpickled before it is verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from opsctl.adapters.artifact_storage import StoredArtifact
from opsctl.adapters.files import make_private_dir, storage_error
from opsctl.errors import IntegrityError, NotFoundError, OpsctlError, UsageError

_CHUNK = 1 << 20
_NAME = re.compile(r"^sha256-[0-9a-f]{64}(\.[A-Za-z0-9_]{1,16}){0,2}$")


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_chunks(source: Path) -> Iterator[bytes]:
    """A regular file's bytes in chunks; a directory, FIFO or device is refused (now), never opened."""
    source = Path(source)
    try:
        info = source.stat()
    except FileNotFoundError:
        raise NotFoundError("artifact file", str(source)) from None
    except OSError as error:
        raise OpsctlError(f"cannot read {source}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise OpsctlError(f"{source} is not a regular file")
    try:
        handle = source.open("rb")
    except OSError as error:
        raise OpsctlError(f"cannot read {source}: {error.strerror}") from None
    return _read_chunks(handle)


def safe_suffix(filename: str) -> str:
    """The last (at most two) harmless suffixes of a file name, kept on the stored artifact."""
    return "".join(s for s in Path(filename).suffixes[-2:] if re.fullmatch(r"\.[A-Za-z0-9_]{1,16}", s))


class IncomingArtifact:
    """An artifact being received: hashed and size-checked as it is written, named by its hash on commit."""

    def __init__(self, root: Path, out: BinaryIO, tmp_name: str, *, suffix: str, max_bytes: int | None) -> None:
        self.root = root
        self._out = out
        self._tmp_name = tmp_name
        self._suffix = suffix
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            self.abort()
            raise UsageError(f"artifact is larger than the limit of {self._max_bytes} bytes; nothing was stored")
        self._digest.update(chunk)
        try:
            self._out.write(chunk)
        except OSError as error:
            self.abort()
            raise storage_error(error, self.root) from None

    def abort(self) -> None:
        """Drop the partial file."""
        with contextlib.suppress(OSError):
            self._out.close()
        _remove(self._tmp_name)

    def commit(self, expected_sha256: str | None = None) -> StoredArtifact:
        """fsync, compare with ``expected_sha256`` (when given), and move into place read-only."""
        try:
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            actual = self._digest.hexdigest()
            if expected_sha256 is not None and actual != expected_sha256:
                raise IntegrityError(f"upload damaged in transit: sha256 is {actual[:16]}…, the client sent"
                                     f" {expected_sha256[:16]}…; nothing was stored")
            name = f"sha256-{actual}{self._suffix}"
            final = self.root / name
            if final.exists() and not final.is_symlink():
                _remove(self._tmp_name)
            else:
                os.chmod(self._tmp_name, 0o440)
                os.replace(self._tmp_name, final)
            _fsync_dir(self.root)
        except OSError as error:
            self.abort()
            raise storage_error(error, self.root) from None
        except BaseException:
            self.abort()
            raise
        return StoredArtifact(name=name, sha256=actual, size_bytes=self.size)


class ArtifactStore:
    """Artifacts under one root directory, addressed by content; stored files are read-only (0440).

    Implements ``ArtifactStorage`` (``opsctl/adapters/artifact_storage.py``). With several daemons the
    root is a shared mount, at the same path on every daemon and model server.
    """

    INCOMING_PREFIX = ".incoming-"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, source: Path) -> StoredArtifact:
        """Copy a regular file in (hashing as it streams), fsync, and name it by its hash."""
        source = Path(source)
        chunks = file_chunks(source)
        return self.put_stream(chunks, suffix=safe_suffix(source.name))

    def put_stream(self, chunks: Iterable[bytes], *, suffix: str = "", expected_sha256: str | None = None,
                   max_bytes: int | None = None) -> StoredArtifact:
        """Store the bytes of ``chunks``; refuse (keeping nothing) over ``max_bytes`` or a sha256 mismatch."""
        incoming = self.begin(suffix=suffix, max_bytes=max_bytes)
        try:
            for chunk in chunks:
                incoming.write(chunk)
        except BaseException:
            incoming.abort()
            raise
        return incoming.commit(expected_sha256)

    def begin(self, *, suffix: str = "", max_bytes: int | None = None) -> IncomingArtifact:
        """Start receiving an artifact into a private ``.incoming-*`` file (commit or abort it)."""
        if suffix and not re.fullmatch(r"(\.[A-Za-z0-9_]{1,16}){1,2}", suffix):
            raise UsageError(f"unsafe artifact suffix {suffix!r}")
        try:
            make_private_dir(self.root)
            # A day is longer than any upload: older partial files were left by a killed process.
            self.clean_incoming(older_than_seconds=86400)
            fd, tmp_name = tempfile.mkstemp(prefix=self.INCOMING_PREFIX, dir=self.root)
        except OSError as error:
            raise storage_error(error, self.root) from None
        return IncomingArtifact(self.root, os.fdopen(fd, "wb"), tmp_name, suffix=suffix, max_bytes=max_bytes)

    def stored(self, name: str, sha256: str) -> StoredArtifact:
        """An artifact already in the store (uploaded earlier), by the name and sha256 its upload returned."""
        if not _NAME.fullmatch(name) or not name.startswith(f"sha256-{sha256}"):
            raise UsageError(f"{name!r} is not the stored name of an artifact with sha256 {sha256!r}")
        path = self.root / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise NotFoundError("uploaded artifact", name, "upload it first (POST /v1/uploads)") from None
        if not stat.S_ISREG(info.st_mode):
            raise IntegrityError(f"refusing artifact {name}: not a regular file")
        return StoredArtifact(name=name, sha256=sha256, size_bytes=info.st_size)

    def clean_incoming(self, *, older_than_seconds: float = 0.0) -> int:
        """Remove partial uploads left by a killed process; returns how many were removed."""
        return self._remove_old(lambda name: name.startswith(self.INCOMING_PREFIX), older_than_seconds)

    def remove_unreferenced(self, keep: set[str], *, older_than_seconds: float) -> int:
        """Remove stored artifacts no version names (uploads never registered), if older than the cutoff."""
        return self._remove_old(lambda name: name not in keep and _NAME.fullmatch(name) is not None,
                                older_than_seconds)

    def _remove_old(self, chosen: Callable[[str], bool], older_than_seconds: float) -> int:
        removed = 0
        cutoff = time.time() - older_than_seconds
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not chosen(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def verified_path(self, name: str, sha256: str) -> Path:
        """The artifact's path once its name is safe and its content matches ``sha256``."""
        if "/" in name or "\\" in name or os.sep in name or name in {"", ".", ".."} or "\x00" in name:
            raise IntegrityError(f"refusing artifact name {name!r}: it contains a path separator")
        if not _NAME.fullmatch(name):
            raise IntegrityError(f"refusing artifact name {name!r}: not a content-addressed name")
        path = self.root / name
        if path.is_symlink():
            raise IntegrityError(f"refusing artifact {name}: it is a symlink")
        root_real = os.path.realpath(self.root)
        if os.path.dirname(os.path.realpath(path)) != root_real:
            raise IntegrityError(f"refusing artifact {name}: it resolves outside {self.root}")
        if not path.is_file():
            raise IntegrityError(f"artifact {name} is missing from {self.root}")
        actual, _ = sha256_file(path)
        if actual != sha256:
            raise IntegrityError(
                f"artifact {name} failed verification: sha256 is {actual[:16]}…, registry says {sha256[:16]}…"
            )
        return path

    def load_model(self, name: str, sha256: str) -> Any:
        """Verify, then unpickle with joblib (only trusted, verified bytes reach the unpickler)."""
        path = self.verified_path(name, sha256)
        import joblib  # heavy: only the paths that really load a model pay for it

        return joblib.load(path)


def parse_sha256(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise UsageError(f"not a sha256 hex digest: {text!r}")
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk
