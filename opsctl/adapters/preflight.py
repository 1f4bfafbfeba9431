"""Start-up checks that need no binding: what ``opsctl config check`` and the daemon both run first.

Each check looks at the file system only (no socket bound, nothing created), so a failing daemon
start leaves nothing behind and ``config check`` finds the same problems the daemon would.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from opsctl.config import Settings
from opsctl.errors import ConfigError

MIN_TOKEN_LENGTH = 16


def _nearest_existing(path: Path) -> Path:
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _creatable_dir(path: Path, what: str, key: str) -> None:
    """``path`` is a writable directory, or can be created as one (its nearest existing parent is)."""
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{what} {path} exists and is not a directory", key=key)
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} {path} is not writable by this user", key=key)
        return
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {parent} is not a directory", key=key)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} cannot be created: {parent} is not writable by this user", key=key)


def check_state_dir(path: Path) -> None:
    _creatable_dir(path, "state_dir", "daemon.state_dir")


def check_socket_path(path: Path) -> None:
    _creatable_dir(path.parent, "the socket's directory", "daemon.socket")
    if path.is_symlink() or (path.exists() and not stat.S_ISSOCK(path.lstat().st_mode)):
        raise ConfigError(f"{path} exists and is not a socket; refusing to replace it", key="daemon.socket")


def read_token_file(path: Path) -> str:
    """The token in ``path``: a regular file only its owner can read or write, at least 16 characters."""
    key = "daemon.token_file"
    try:
        info = path.stat()
    except OSError as error:
        raise ConfigError(f"cannot read token_file {path}: {error.strerror}", key=key) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"token_file {path} is not a regular file", key=key)
    if info.st_mode & 0o066:
        raise ConfigError(f"token_file {path} is readable or writable by group or others"
                          f" (mode {info.st_mode & 0o777:04o});"
                          f" run `chmod 600 {path}`", key=key)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read token_file {path}: {error.strerror}", key=key) from None
    except UnicodeDecodeError:
        raise ConfigError(f"token_file {path} is not UTF-8 text", key=key) from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"token_file {path} holds a token shorter than {MIN_TOKEN_LENGTH} characters", key=key)
    return token


def preflight(settings: Settings) -> None:
    """Every start-up check that does not bind: raises ConfigError naming the first problem."""
    daemon = settings.daemon
    check_state_dir(Path(daemon.state_dir))
    check_socket_path(Path(daemon.socket))
    if daemon.tcp_listen:
        if not daemon.token_file:
            raise ConfigError("tcp_listen requires token_file", key="daemon.token_file")
        read_token_file(Path(daemon.token_file))
