"""``opsctl config check`` refuses what would later crash the daemon or the CLI, and the daemon's start-up
failures exit 2 with one line and leave nothing behind."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import OPSCTL, OpsctlEnv, make_opsctl_env


def _with(env: OpsctlEnv, daemon_lines: str = "", extra: str = "") -> OpsctlEnv:
    text = env.config.read_text().replace("[daemon]\n", "[daemon]\n" + daemon_lines)
    env.config.write_text(text + extra)
    return env


def _one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.parametrize("extra", [
    "[jobs]\nhealth_seconds = nan\n", "[jobs]\nhealth_seconds = inf\n", "[jobs]\nhealth_seconds = 1e308\n",
    "[daemon_extra]\n", "[sla]\nlatency_p95_ms = nan\n",
])
def test_non_finite_or_absurd_numbers_fail_config_check(tmp_path: Path, extra: str) -> None:
    env = make_opsctl_env(tmp_path / "o")
    if extra.startswith("[daemon_extra]"):
        env = _with(env, "request_timeout_seconds = nan\n")
    else:
        env = _with(env, extra=extra)
    result = env.run("config", "check")
    assert result.code == 2, result.stdout
    _one_line_error(result.stderr)


def test_a_world_writable_socket_mode_is_refused(tmp_path: Path) -> None:
    result = _with(make_opsctl_env(tmp_path / "o"), 'socket_mode = "0777"\n').run("config", "check")
    assert result.code == 2 and "socket_mode" in result.stderr


def _token(tmp_path: Path, text: str, mode: int) -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(("text", "mode", "words"), [
    ("s3cret-token-for-tests-only", 0o644, "group or others"),
    ("short", 0o600, "shorter than 16"),
    (None, 0o600, "No such file"),
])
def test_a_readable_short_or_missing_token_file_fails_config_check(tmp_path: Path, text: str | None, mode: int,
                                                                     words: str) -> None:
    token = _token(tmp_path, text, mode) if text is not None else tmp_path / "missing"
    env = _with(make_opsctl_env(tmp_path / "o"), f'tcp_listen = "127.0.0.1:1"\ntoken_file = "{token}"\n')
    result = env.run("config", "check")
    assert result.code == 2 and words in result.stderr, result.stderr
    _one_line_error(result.stderr)


def test_a_socket_under_a_regular_file_and_a_state_dir_that_is_a_file_fail_config_check(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = make_opsctl_env(tmp_path / "o")
    env.config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\nsocket = "{blocker / "opsctl.sock"}"\n')
    result = env.run("config", "check")
    assert result.code == 2 and "socket" in result.stderr
    env.config.write_text(f'[daemon]\nstate_dir = "{blocker}"\nsocket = "{tmp_path / "s.sock"}"\n')
    result = env.run("config", "check")
    assert result.code == 2 and "not a directory" in result.stderr


def test_a_good_config_passes(tmp_path: Path) -> None:
    token = _token(tmp_path, "s3cret-token-for-tests-only", 0o600)
    env = _with(make_opsctl_env(tmp_path / "o"), f'tcp_listen = "127.0.0.1:1"\ntoken_file = "{token}"\n')
    result = env.run("config", "check")
    assert result.code == 0, result.stderr


def _daemon(env: OpsctlEnv) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPSCTL, "daemon", "--config", str(env.config)], env=env.env, capture_output=True,
                          text=True, timeout=60)


def test_daemon_with_a_state_dir_that_is_a_file_exits_2_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = make_opsctl_env(tmp_path / "o")
    env.config.write_text(f'[daemon]\nstate_dir = "{blocker}"\nsocket = "{tmp_path / "run" / "s.sock"}"\n')
    result = _daemon(env)
    assert result.returncode == 2 and "not a directory" in result.stderr
    _one_line_error(result.stderr)
    assert not (tmp_path / "run").exists()


def test_daemon_with_its_tcp_port_in_use_exits_2_and_leaves_nothing_behind(tmp_path: Path) -> None:
    token = _token(tmp_path, "s3cret-token-for-tests-only", 0o600)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = make_opsctl_env(tmp_path / "o")
        env.config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
                              f'socket = "{tmp_path / "run" / "s.sock"}"\n'
                              f'tcp_listen = "127.0.0.1:{port}"\ntoken_file = "{token}"\n')
        result = _daemon(env)
    assert result.returncode == 2 and f"127.0.0.1:{port}" in result.stderr, result.stderr
    _one_line_error(result.stderr)
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()
