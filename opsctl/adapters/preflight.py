"""Start-up checks that need no binding: what ``opsctl config check`` and the daemon both run first.

Each check looks at the file system only (no socket bound, nothing created), so a failing daemon
start leaves nothing behind and ``config check`` finds the same problems the daemon would.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class TokenIdentity:
    """Who a TCP bearer token belongs to; a trusted proxy may name the person it acts for; a scrape token
    reads ``/metrics`` and ``/healthz`` and nothing else."""

    token: str = field(repr=False)
    identity: str
    trusted_proxy: bool = False
    scrape_only: bool = False


_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,62}")
PROXY_FLAG = "trusted-proxy"
SCRAPE_FLAG = "scrape"


def read_token_file(path: Path) -> tuple[TokenIdentity, ...]:
    """The tokens in ``path``, a regular file only its owner can read or write.

    One token per line, ``TOKEN IDENTITY [trusted-proxy|scrape]`` (``#`` starts a comment); a file holding one
    bare token (the older format) gives it the identity ``token``. Tokens have at least 16 characters.
    A ``scrape`` token (for Prometheus) may only read ``/metrics`` and ``/healthz``.
    """
    key = "daemon.token_file"
    try:
        info = path.stat()
    except OSError as error:
        raise ConfigError(f"cannot read token_file {path}: {error.strerror}", key=key) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"token_file {path} is not a regular file", key=key)
    if info.st_mode & 0o066:
        raise ConfigError(f"token_file {path} is readable or writable by group or others"
                          f" (mode {info.st_mode & 0o777:04o}); run `chmod 600 {path}`", key=key)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read token_file {path}: {error.strerror}", key=key) from None
    except UnicodeDecodeError:
        raise ConfigError(f"token_file {path} is not UTF-8 text", key=key) from None
    lines = [(n, line.split("#", 1)[0].split()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, words) for n, words in lines if words]
    if not lines:
        raise ConfigError(f"token_file {path} holds no token", key=key)
    tokens: list[TokenIdentity] = []
    for number, words in lines:
        where = f"token_file {path} line {number}"
        if len(words) == 1 and len(lines) == 1:
            words = [words[0], "token"]
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] not in (PROXY_FLAG, SCRAPE_FLAG)):
            raise ConfigError(f"{where}: expected 'TOKEN IDENTITY [{PROXY_FLAG}|{SCRAPE_FLAG}]'", key=key)
        token, identity = words[0], words[1]
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"{where} holds a token shorter than {MIN_TOKEN_LENGTH} characters", key=key)
        if not _IDENTITY.fullmatch(identity):
            raise ConfigError(f"{where}: identity {identity!r} must be letters, digits, '.', '_', '@' or '-'",
                              key=key)
        if any(t.token == token for t in tokens):
            raise ConfigError(f"{where}: the same token appears twice", key=key)
        flag = words[2] if len(words) == 3 else None
        tokens.append(TokenIdentity(token, identity, trusted_proxy=flag == PROXY_FLAG, scrape_only=flag == SCRAPE_FLAG))
    return tuple(tokens)


def preflight(settings: Settings) -> None:
    """Every start-up check that does not bind: raises ConfigError naming the first problem."""
    daemon = settings.daemon
    check_state_dir(Path(daemon.state_dir))
    check_socket_path(Path(daemon.socket))
    if daemon.tcp_listen:
        if not daemon.token_file:
            raise ConfigError("tcp_listen requires token_file", key="daemon.token_file")
        read_token_file(Path(daemon.token_file))
    check_http_files(settings)


def check_http_files(settings: Settings) -> None:
    """The password, credential, header, CA and client-certificate files of [prometheus] and
    [alertmanager] exist and are readable (their content is never printed)."""
    from opsctl.adapters.http_config import check_files

    check_files(settings.prometheus.http, "prometheus")
    if settings.alertmanager.alertmanager_urls:
        check_files(settings.alertmanager.http, "alertmanager")
