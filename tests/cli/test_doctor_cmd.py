"""``opsctl doctor`` as a user runs it: the real CLI, the real daemon, the session's real Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsctl.adapters.prometheus_launcher import free_port
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess


def by_check(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in document["findings"]}


def test_doctor_with_everything_down_exits_2_and_says_what_to_start(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", f'[prometheus]\nurl = "http://127.0.0.1:{free_port()}"\n')
    result = env.run("doctor", "-o", "json")
    assert result.code == 2, result.stderr
    document = result.json()
    assert document["exit_code"] == 2
    checks = by_check(document)
    assert checks["config"]["status"] == "ok"
    assert checks["daemon"]["status"] == "fail" and "start it" in checks["daemon"]["fix"]
    assert checks["prometheus"]["status"] == "fail" and "unreachable" in checks["prometheus"]["summary"]
    assert checks["queries"]["status"] == "unknown"
    table = env.run("doctor")
    assert table.code == 2 and "prometheus" in table.stdout and "unreachable" in table.stdout


def test_doctor_with_the_daemon_up_and_prometheus_answering(tmp_path: Path, prometheus_stack: Any,
                                                            alertmanager: Any) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", f'[prometheus]\nurl = "{prometheus_stack.url}"\n'
                                               f'staleness_seconds = 5\n[alertmanager]\nurl = "{alertmanager.url}"\n')
    daemon = DaemonProcess(env).start()
    try:
        document = env.run("doctor", "-o", "json").json()
    finally:
        daemon.stop()
    checks = by_check(document)
    for name in ("config", "daemon", "socket", "prometheus", "clock skew", "staleness vs scrape interval",
                 f"alertmanager {alertmanager.url}"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["socket"]["summary"].endswith("mode 0660")
    # Nothing deployed yet: the query checks cannot say anything, so the run is not "all ok".
    assert checks["queries"]["status"] == "unknown" and document["exit_code"] == 3


def test_doctor_on_a_broken_config_names_the_key(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", '[prometheus]\nstaleness_seconds = "soon"\n')
    result = env.run("doctor", "-o", "json")
    assert result.code == 2
    (finding,) = result.json()["findings"]
    assert finding["check"] == "config" and finding["status"] == "fail"
    assert "prometheus.staleness_seconds" in finding["summary"]
