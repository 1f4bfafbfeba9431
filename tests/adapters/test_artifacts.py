"""Content-addressed artifacts: verified before anything loads them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.errors import IntegrityError


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _artifact(tmp_path: Path, content: bytes = b"model-bytes", name: str = "model.joblib") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_put_names_the_file_by_its_sha256(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_artifact(tmp_path))
    assert stored.sha256 == hashlib.sha256(b"model-bytes").hexdigest()
    assert stored.name == f"sha256-{stored.sha256}.joblib"
    assert stored.size_bytes == len(b"model-bytes")
    assert store.verified_path(stored.name, stored.sha256).read_bytes() == b"model-bytes"


def test_identical_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    a = store.put(_artifact(tmp_path, name="a.joblib"))
    b = store.put(_artifact(tmp_path, name="b.joblib"))
    assert a == b
    assert len([p for p in store.root.iterdir() if not p.name.startswith(".")]) == 1


def test_tampered_artifact_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_artifact(tmp_path))
    path = store.root / stored.name
    os.chmod(path, 0o640)
    path.write_bytes(b"evil-pickle")
    with pytest.raises(IntegrityError, match="failed verification"):
        store.verified_path(stored.name, stored.sha256)
    with pytest.raises(IntegrityError):
        store.load_model(stored.name, stored.sha256)


def test_missing_artifact_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_artifact(tmp_path))
    (store.root / stored.name).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        store.verified_path(stored.name, stored.sha256)


@pytest.mark.parametrize("name", ["../registry.db", "sub/file", "..", "/etc/passwd", "a\\b"])
def test_names_with_path_separators_are_refused(store: ArtifactStore, name: str) -> None:
    with pytest.raises(IntegrityError, match="path separator"):
        store.verified_path(name, "0" * 64)


def test_symlink_out_of_the_directory_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    outside = _artifact(tmp_path, b"outside", "outside.joblib")
    digest = hashlib.sha256(b"outside").hexdigest()
    store.root.mkdir(parents=True, exist_ok=True)
    link = store.root / f"sha256-{digest}.joblib"
    link.symlink_to(outside)
    with pytest.raises(IntegrityError, match="symlink"):
        store.verified_path(link.name, digest)


def test_load_model_round_trips_a_verified_joblib(store: ArtifactStore, tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "m.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    stored = store.put(path)
    assert store.load_model(stored.name, stored.sha256) == {"weights": [1, 2, 3]}
