"""Who is on the other end of the Unix socket, from the kernel, not from the client.

uvicorn does not put the peer's credentials in the ASGI scope, so this
protocol reads ``SO_PEERCRED`` when a connection is made and places it in the
per-request ``scope["state"]`` that uvicorn copies from ``app_state``.
"""

from __future__ import annotations

import asyncio
import pwd
import socket
import struct
from dataclasses import dataclass

from uvicorn.protocols.http.h11_impl import H11Protocol

_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid{self.uid}"


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    if sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


class PeerCredH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        creds = None
        if sock is not None:
            try:
                creds = peer_credentials(sock)
            except OSError:
                creds = None
        # A per-connection copy, so one client's identity never leaks to another.
        self.app_state = {**self.app_state, "peer": creds}
