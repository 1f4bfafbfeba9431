"""``opsctl health`` and ``opsctl alerts``: exit codes, durations, and what a user sees with the daemon down.

The behaviour with a running daemon (tables, JSON, acks, silences) is exercised end to end in
tests/daemon/test_health_subsystem.py.
"""

from __future__ import annotations

import pytest

from opsctl.cli.health.handlers import health_exit_code
from opsctl.core.durations import format_duration, parse_duration
from opsctl.errors import UsageError
from tests.fixtures.cli import OpsctlEnv


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400),
    (" 2H ", 7200), ("0.5h", 1800),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "m", "3x", "1h 30m", "-5m", "0m", "1h30", "h1"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59.9, "59s"), (119, "119s"), (120, "2m"), (5400, "90m"), (7260, "2h01m"),
    (200_000, "2d7h"), (-3, "0s"),
])
def test_spans_read_in_the_coarsest_unit_that_still_says_enough(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def version(status: str, critical: bool = False) -> dict[str, object]:
    return {"status": status, "critical": critical}


@pytest.mark.parametrize(("statuses", "code"), [
    ([], 0),
    ([version("healthy"), version("healthy")], 0),
    ([version("healthy"), version("degraded")], 1),
    ([version("unknown"), version("healthy")], 3),
    ([version("unknown"), version("degraded")], 1),  # a known problem outranks missing data
    ([version("degraded", critical=True), version("unknown"), version("degraded")], 2),
])
def test_exit_code_follows_the_monitoring_plugin_convention(statuses: list[dict[str, object]], code: int) -> None:
    assert health_exit_code(statuses) == code


def test_health_with_the_daemon_down_is_unknown_and_says_how_to_start_it(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("health")
    assert result.code == 3
    assert "UNKNOWN" in result.stderr and "daemon" in result.stderr
    assert "opsctl daemon" in result.stderr and "systemctl start opsctl" in result.stderr
    assert result.stdout == ""
    as_json = opsctl_env.run("health", "fraud", "-o", "json")
    assert as_json.code == 3
    document = as_json.json()
    assert (document["status"], document["exit_code"], document["models"]) == ("unknown", 3, [])


@pytest.mark.parametrize("args", [
    ["alerts"], ["alerts", "--all", "-o", "json"], ["alerts", "ack", "abcdef12"],
    ["alerts", "silence", "--match", "model=fraud", "--for", "2h", "--comment", "deploy"],
    ["alerts", "silences"], ["alerts", "unsilence", "abc"],
])
def test_alert_commands_need_the_daemon_and_exit_6_with_one_line(opsctl_env: OpsctlEnv, args: list[str]) -> None:
    result = opsctl_env.run(*args)
    assert result.code == 6
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the daemon is not running" in lines[0] and "opsctl daemon" in lines[0]


@pytest.mark.parametrize(("args", "fragment"), [
    (["alerts", "silence", "--match", "model=fraud", "--for", "2 hours", "--comment", "x"], "bad duration"),
    (["alerts", "silence", "--match", "not a matcher", "--for", "2h", "--comment", "x"], "bad matcher"),
    (["alerts", "silence", "--match", "model=fraud", "--for", "2h"], "--comment"),
    (["alerts", "ack", "abcdef", "--for", "forever"], "bad duration"),
])
def test_bad_arguments_are_usage_errors_before_any_request(opsctl_env: OpsctlEnv, args: list[str],
                                                           fragment: str) -> None:
    result = opsctl_env.run(*args)
    assert result.code == 2, result.stderr
    assert fragment in result.stderr
