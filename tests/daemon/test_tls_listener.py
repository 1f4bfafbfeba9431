"""The TCP listener's TLS settings are checked before anything is bound or created."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.fixtures.cli import OPSCTL, make_opsctl_env


def test_an_unusable_certificate_stops_the_start_with_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens = tmp_path / "tokens"
    tokens.write_text("a-token-of-enough-length-0123456789 someone\n")
    tokens.chmod(0o600)
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    env = make_opsctl_env(tmp_path / "opsctl", f'tcp_listen = "127.0.0.1:{port}"\ntoken_file = "{tokens}"\n'
                                                f'tls_cert_file = "{cert}"\ntls_key_file = "{tmp_path / "key.pem"}"\n')
    done = subprocess.run([OPSCTL, "daemon", "--config", str(env.config)], env=env.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert f"cannot use tls_cert_file {cert}" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not env.socket.exists() and not env.state_dir.exists()
    with socket.socket() as again:  # the port was never taken
        again.bind(("127.0.0.1", port))
