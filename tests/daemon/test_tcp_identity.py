"""Over TCP the audit records the token's identity, never what the client claims (unless a trusted proxy)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess

ALICE = "alice-token-0123456789abcdef"
GRAFANA = "grafana-token-0123456789abcdef"


@dataclass
class TcpDaemon:
    process: DaemonProcess
    base: str

    def post(self, token: str, path: str, body: dict[str, object], user: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if user is not None:
            headers["X-Opsctl-User"] = user
        return httpx.post(f"{self.base}{path}", json=body, headers=headers, timeout=10)

    def last_actor(self, token: str) -> str:
        history = httpx.get(f"{self.base}/v1/history", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        return str(history.json()[-1]["actor"])


def _start(tmp_path: Path, token_text: str) -> Iterator[TcpDaemon]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = tmp_path / "tokens"
    token.write_text(token_text)
    token.chmod(0o600)
    env = make_opsctl_env(tmp_path / "tcp")
    env.config.write_text(env.config.read_text().replace(
        "[daemon]\n", f'[daemon]\ntcp_listen = "127.0.0.1:{port}"\ntoken_file = "{token}"\n'))
    for version in ("1", "2"):
        artifact = env.root / f"m{version}.bin"
        artifact.write_bytes(version.encode())
        assert env.run("register", "fraud", "--version", version, "--artifact", str(artifact)).code == 0
    process = DaemonProcess(env).start()
    try:
        yield TcpDaemon(process, f"http://127.0.0.1:{port}")
    finally:
        process.stop()


@pytest.fixture
def tcp(tmp_path: Path) -> Iterator[TcpDaemon]:
    yield from _start(tmp_path, f"# token identity [trusted-proxy]\n{ALICE} alice\n{GRAFANA} grafana trusted-proxy\n")


def test_a_claimed_user_header_is_ignored_for_an_ordinary_token(tcp: TcpDaemon) -> None:
    response = tcp.post(ALICE, "/v1/models/fraud/promote", {"version": "1", "reason": "r"}, user="mallory")
    assert response.status_code == 200, response.text
    assert tcp.last_actor(ALICE) == "token:alice"


def test_a_trusted_proxy_is_recorded_as_acting_for_the_user(tcp: TcpDaemon) -> None:
    response = tcp.post(GRAFANA, "/v1/models/fraud/promote", {"version": "2", "reason": "r"}, user="bob")
    assert response.status_code == 200, response.text
    assert tcp.last_actor(GRAFANA) == "token:grafana (proxy for bob)"
    bad = tcp.post(GRAFANA, "/v1/models/fraud/promote", {"version": "1"}, user="bob; admin=yes")
    assert bad.status_code == 400
    assert tcp.last_actor(GRAFANA) == "token:grafana (proxy for bob)"


def test_an_unknown_token_is_refused(tcp: TcpDaemon) -> None:
    response = tcp.post("not-a-known-token-at-all", "/v1/models/fraud/promote", {"version": "1"})
    assert response.status_code == 401


def test_a_single_bare_token_keeps_working_as_identity_token(tmp_path: Path) -> None:
    for daemon in _start(tmp_path, f"{ALICE}\n"):
        response = daemon.post(ALICE, "/v1/models/fraud/promote", {"version": "1"}, user="mallory")
        assert response.status_code == 200, response.text
        assert daemon.last_actor(ALICE) == "token:token"
