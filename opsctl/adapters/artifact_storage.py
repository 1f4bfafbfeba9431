"""The artifact storage seam: what services and the daemon need from wherever model artifacts live.

Services and the daemon depend on :class:`ArtifactStorage`, not on a directory. The one
implementation is the content-addressed directory :class:`opsctl.adapters.artifacts.ArtifactStore`,
which every daemon and model server reaches on a shared mount at the same path
(``docs/deployment.md``). An object store (S3, GCS, MinIO) can implement the same two Protocols;
``verified_path`` would then return a verified local copy, because joblib and the model servers
read files.

The contract every implementation keeps: artifacts are addressed by content (``sha256-<hex><suffix>``)
and never change once stored; nothing is returned, loaded or served before its bytes matched the
sha256 the registry holds; an upload that fails (too large, damaged in transit, storage error)
leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact in the store: its content-addressed name, sha256 and size."""

    name: str
    sha256: str
    size_bytes: int


class ArtifactUpload(Protocol):
    """An artifact being received: write chunks, then commit (named by its hash) or abort (nothing kept)."""

    size: int

    def write(self, chunk: bytes) -> None:
        """Append bytes (UsageError past the size limit, after aborting)."""
        ...

    def abort(self) -> None:
        """Drop what was received."""
        ...

    def commit(self, expected_sha256: str | None = None) -> StoredArtifact:
        """Make the artifact durable under its content name (IntegrityError when ``expected_sha256`` differs)."""
        ...


class ArtifactStorage(Protocol):
    """Where registered model artifacts and reference samples live."""

    def put(self, source: Path) -> StoredArtifact:
        """Store a local regular file; returns its content name and sha256."""
        ...

    def put_stream(self, chunks: Iterable[bytes], *, suffix: str = "", expected_sha256: str | None = None,
                   max_bytes: int | None = None) -> StoredArtifact:
        """Store the bytes of ``chunks``, refusing (keeping nothing) over ``max_bytes`` or on a sha256 mismatch."""
        ...

    def begin(self, *, suffix: str = "", max_bytes: int | None = None) -> ArtifactUpload:
        """Start receiving an artifact (the daemon's streamed upload)."""
        ...

    def stored(self, name: str, sha256: str) -> StoredArtifact:
        """An artifact already stored (NotFoundError if absent): the existence check before registering it."""
        ...

    def verified_path(self, name: str, sha256: str) -> Path:
        """A local path to the artifact's bytes, verified against ``sha256`` (what model servers and loaders open)."""
        ...

    def load_model(self, name: str, sha256: str) -> Any:
        """Verify, then load the model object (only verified bytes reach the unpickler)."""
        ...

    def remove_unreferenced(self, keep: set[str], *, older_than_seconds: float) -> int:
        """Remove stored artifacts not named in ``keep`` and older than the cutoff; returns how many."""
        ...
