"""The shipped unit file passes systemd's own checks (no systemd needs to be running)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import OPSCTL

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "opsctl.service"


@pytest.fixture(scope="module")
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze missing: ./dev test installs Debian's systemd package"
    return found


def test_unit_verifies(analyze: str, tmp_path: Path) -> None:
    # The unit as `opsctl config example --systemd` writes it for this venv's opsctl (verify checks that
    # ExecStart= is executable; the template names the README's /opt/opsctl/venv).
    rendered = subprocess.run([OPSCTL, "config", "example", "--systemd"], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    unit = tmp_path / "opsctl.service"
    unit.write_text(rendered.stdout)
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # verify exits 0 on a line it ignores (an unknown Type= falls back to simple): any message is a defect.
    assert done.stderr.strip() == "", done.stderr


def test_unit_exposure_is_at_most_2(analyze: str) -> None:
    done = subprocess.run([analyze, "security", "--offline=true", str(UNIT)], capture_output=True, text=True,
                          timeout=60)
    match = re.search(r"Overall exposure level for opsctl.service: ([0-9.]+)", done.stdout)
    assert match, done.stdout[-500:] + done.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_is_notify_with_watchdog_and_hardening() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "StateDirectory=opsctl", "RuntimeDirectory=opsctl",
                 "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "User=opsctl",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text
