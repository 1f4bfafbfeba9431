"""Content-addressed artifact store inside the registry's own directory.

Files are copied in under ``sha256-<hex><suffix>``; every load verifies the
sha256 first and refuses a mismatch, a missing file, a symlink, or a name that
could leave the directory. Nothing is unpickled before it is verified.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.errors import IntegrityError, NotFoundError, UsageError

_CHUNK = 1 << 20
_NAME = re.compile(r"^sha256-[0-9a-f]{64}(\.[A-Za-z0-9_]{1,16}){0,2}$")


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    sha256: str
    size_bytes: int


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ArtifactStore:
    """Artifacts under one root, addressed by content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, source: Path) -> StoredArtifact:
        """Copy ``source`` in (hashing as it streams), fsync, and name it by its hash."""
        source = Path(source)
        if not source.is_file():
            raise NotFoundError("artifact file", str(source))
        self.root.mkdir(parents=True, exist_ok=True)
        suffix = "".join(s for s in source.suffixes[-2:] if re.fullmatch(r"\.[A-Za-z0-9_]{1,16}", s))
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            name = f"sha256-{digest.hexdigest()}{suffix}"
            final = self.root / name
            if final.exists() and not final.is_symlink():
                os.unlink(tmp_name)
            else:
                os.replace(tmp_name, final)
                os.chmod(final, 0o440)
            _fsync_dir(self.root)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        return StoredArtifact(name=name, sha256=digest.hexdigest(), size_bytes=size)

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
