"""File-system helpers shared by the registry and the artifact store: private directories and files
whatever the umask, and one-line errors for a full, read-only or forbidden state dir."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from opsctl.errors import OpsctlError, StorageError

# The registry's files: owner read-write, group read (operators in the daemon's group may inspect).
PRIVATE_FILE_MODE = 0o640


def storage_error(error: OSError, root: Path) -> OpsctlError:
    """A one-line error for what the file system said while writing under ``root``."""
    if error.errno == errno.ENOSPC:
        try:
            free = shutil.disk_usage(_nearest_existing(root)).free // (1024 * 1024)
        except OSError:
            return StorageError(f"no space left on {root}")
        return StorageError(f"no space left on {root} ({free} MB free)")
    if error.errno == errno.EROFS:
        return StorageError(f"{root} is on a read-only file system")
    if error.errno in (errno.EACCES, errno.EPERM):
        return StorageError(f"no permission to write in {root}")
    if error.errno == errno.EDQUOT:
        return StorageError(f"disk quota exceeded on {root}")
    return StorageError(f"cannot write in {root}: {error.strerror or error}")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def make_private_dir(path: Path, mode: int = 0o750) -> None:
    """Create ``path`` (and missing parents) with ``mode`` whatever the umask; an existing one keeps its mode."""
    missing = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(folder, mode)  # mkdir's mode is masked by the umask


def create_private_file(path: Path, mode: int = PRIVATE_FILE_MODE) -> None:
    """Create ``path`` empty with ``mode`` whatever the umask, unless it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
