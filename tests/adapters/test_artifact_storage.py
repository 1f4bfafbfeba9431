"""The directory store keeps the ``ArtifactStorage`` seam: every method the services call, same parameters."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from opsctl.adapters.artifact_storage import ArtifactStorage, ArtifactUpload
from opsctl.adapters.artifacts import ArtifactStore, IncomingArtifact


def _members(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


@pytest.mark.parametrize(("protocol", "implementation"), [(ArtifactStorage, ArtifactStore),
                                                           (ArtifactUpload, IncomingArtifact)])
def test_the_directory_store_has_every_protocol_method_with_the_same_signature(
        protocol: type, implementation: type) -> None:
    members = _members(protocol)
    assert members, "the protocol declares methods"
    for name in members:
        assert hasattr(implementation, name), f"{implementation.__name__} lacks {name}"
        # Parameters must match exactly; a return type may be narrower (IncomingArtifact is an ArtifactUpload).
        assert (inspect.signature(getattr(implementation, name)).parameters
                == inspect.signature(getattr(protocol, name)).parameters), name


def test_a_stream_stored_through_the_seam_reads_back_verified(tmp_path: Path) -> None:
    store: ArtifactStorage = ArtifactStore(tmp_path / "artifacts")
    stored = store.put_stream([b"model ", b"bytes"], suffix=".pkl")
    assert store.stored(stored.name, stored.sha256) == stored
    assert store.verified_path(stored.name, stored.sha256).read_bytes() == b"model bytes"
    assert store.remove_unreferenced({stored.name}, older_than_seconds=0.0) == 0
    assert store.remove_unreferenced(set(), older_than_seconds=0.0) == 1
