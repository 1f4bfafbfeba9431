"""SIGHUP validates the new config fully, then swaps it in whole, or keeps the old one and counts the failure."""

from __future__ import annotations

import signal

import pytest

from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for


def _failed_reloads(daemon: DaemonProcess) -> float:
    for line in daemon.http().get("/metrics").text.splitlines():
        if line.startswith('opsctl_config_reloads_total{result="failed"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_a_reload_with_an_absurd_interval_keeps_the_old_config_and_counts_the_failure(
        daemon: DaemonProcess, value: str) -> None:
    config = daemon.env.config
    config.write_text(config.read_text() + f"health_seconds = {value}\n")  # into the fixture's [jobs] table
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: _failed_reloads(daemon) == 1, what="the failed reload counted")
    status = daemon.http().get("/v1/status")
    assert status.status_code == 200
    health = next(j for j in status.json()["jobs"] if j["name"] == "health")
    assert health["interval_seconds"] == 15.0
