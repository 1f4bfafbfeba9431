"""The SDK router against the real daemon's token-protected TCP listener, served over TLS by a CA made here."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from opsctl.sdk.router import RoutingTableClient
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess

TOKEN = "model-server-token-0123456789abcdef"
FALLBACK = {"1": 100.0}


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(root: Path) -> Tls:
    """A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl command."""
    root.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (root / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=opsctl test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = root / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return Tls(ca, cert, key)


@dataclass
class TcpDaemon:
    env: OpsctlEnv
    process: DaemonProcess
    url: str
    tls: Tls

    def promote(self, version: str) -> None:
        with self.process.http() as http:
            response = http.post("/v1/models/fraud/promote", json={"version": version, "reason": "test"})
        assert response.status_code == 200, response.text


@pytest.fixture
def tcp_daemon(tmp_path: Path) -> Iterator[TcpDaemon]:
    tls = make_tls(tmp_path / "tls")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} model-server\n")
    tokens.chmod(0o600)
    env = make_opsctl_env(tmp_path / "opsctl", f'tcp_listen = "127.0.0.1:{port}"\ntoken_file = "{tokens}"\n'
                                                f'tls_cert_file = "{tls.cert}"\ntls_key_file = "{tls.key}"\n')
    for version in ("1", "2"):
        artifact = env.root / f"m{version}.bin"
        artifact.write_bytes(version.encode())
        assert env.run("register", "fraud", "--version", version, "--artifact", str(artifact)).code == 0
    process = DaemonProcess(env).start()
    try:
        yield TcpDaemon(env, process, f"https://127.0.0.1:{port}", tls)
    finally:
        process.stop()


def client(daemon: TcpDaemon, **kwargs: object) -> RoutingTableClient:
    return RoutingTableClient(daemon.url, model="fraud", fallback=FALLBACK, ttl_seconds=0, timeout=5,
                              registry=CollectorRegistry(), **kwargs)  # type: ignore[arg-type]


def test_the_right_token_and_ca_follow_the_routing_table(tcp_daemon: TcpDaemon, tmp_path: Path) -> None:
    token_file = tmp_path / "model-server.token"
    token_file.write_text(f"# given to the fraud model server\n{TOKEN}\n")
    tcp_daemon.promote("2")
    with client(tcp_daemon, token_file=token_file, ca_file=tcp_daemon.tls.ca) as router:
        split = router.split()
        assert (split.source, split.weights) == ("daemon", (("2", 100.0),))
        assert router.last_error is None
        tcp_daemon.promote("1")
        assert router.router().route("user-1") == "1"
        assert router.status().to_json()["split"]["splits"] == [{"version": "1", "weight": 100.0}]
    with client(tcp_daemon, token=TOKEN, ca_file=tcp_daemon.tls.ca) as router:
        assert router.split().source == "daemon"


def test_a_wrong_token_stays_on_the_fallback_and_says_why(tcp_daemon: TcpDaemon, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    tcp_daemon.promote("2")
    token_file = tmp_path / "stale.token"
    token_file.write_text("not-the-daemons-token-0123456789\n")
    with caplog.at_level(logging.WARNING, logger="opsctl.sdk.router"), \
            client(tcp_daemon, token_file=token_file, ca_file=tcp_daemon.tls.ca) as router:
        split = router.split()
        assert (split.source, split.weights) == ("fallback", (("1", 100.0),))
        assert router.last_error is not None
        assert f"authentication failed (401): the token from {token_file} was refused" in router.last_error
        status = router.status()
        assert status.source == "fallback" and status.failures == 1
        assert "authentication failed" in caplog.text
        router.split()
        assert caplog.text.count("authentication failed") == 1  # one warning per new error, not per read

        # The file is re-read when refused: a rotated token is picked up without restarting the server.
        token_file.write_text(f"{TOKEN}\n")
        assert router.split().source == "daemon" and router.last_error is None

    with client(tcp_daemon, ca_file=tcp_daemon.tls.ca) as router:
        assert router.split().source == "fallback"
        assert "no token was given" in (router.last_error or "")
    # The refused clients changed nothing and the daemon still serves.
    assert tcp_daemon.process.proc is not None and tcp_daemon.process.proc.poll() is None
    with tcp_daemon.process.http() as http:
        assert http.get("/v1/routing/fraud").json()["splits"] == [{"version": "2", "weight": 100.0}]


def test_a_daemon_certificate_from_an_unknown_ca_is_not_trusted(tcp_daemon: TcpDaemon) -> None:
    with client(tcp_daemon, token=TOKEN) as router:  # the system's CAs do not know the test CA
        assert router.split().source == "fallback"
        assert (router.last_error or "").startswith("daemon: TLS: the daemon's certificate was not verified")
    trusting = ssl.create_default_context(cafile=str(tcp_daemon.tls.ca))
    assert httpx.get(f"{tcp_daemon.url}/healthz", verify=trusting, timeout=5).status_code == 200


def test_token_options_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most one of token and token_file"):
        RoutingTableClient("https://x", model="m", token="t" * 20, token_file=tmp_path / "t")
    with pytest.raises(ValueError, match="cannot read token_file"):
        RoutingTableClient("https://x", model="m", token_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no token"):
        RoutingTableClient("https://x", model="m", token_file=tmp_path / "empty")
    with pytest.raises(ValueError, match="cannot use ca_file"):
        RoutingTableClient("https://x", model="m", ca_file=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="over TCP"):
        RoutingTableClient(socket_path=str(tmp_path / "s"), model="m", token="t" * 20)
