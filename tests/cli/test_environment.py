"""The state dir's modes do not depend on the umask, and the environment's failures are one clear line.

The full and read-only file systems are real: a 2 MB tmpfs mounted for the test (needs root; without
it these tests are skipped and say why).
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli import OPSCTL, CliResult, OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess


def _run(env: OpsctlEnv, *args: str, umask: int) -> CliResult:
    done = subprocess.run([OPSCTL, *args], env=env.env, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: os.umask(umask))
    return CliResult(done.returncode, done.stdout, done.stderr)


def _one_error_line(result: CliResult) -> None:
    # Direct mode adds its one-line notice ("the daemon is not answering ..."); the error is one more line.
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "the daemon is not answering" not in line]
    assert len(errors) == 1, result.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_fresh_state_dir_and_registry_are_not_world_readable_whatever_the_umask(tmp_path: Path,
                                                                                  umask: int) -> None:
    env = make_opsctl_env(tmp_path / "o")
    artifact = tmp_path / "m.joblib"
    artifact.write_bytes(b"weights")
    result = _run(env, "register", "fraud", "--version", "1", "--artifact", str(artifact), umask=umask)
    assert result.code == 0, result.stderr
    state = env.state_dir
    assert _mode(state) == 0o750
    # The WAL and shared-memory files go with the last connection; the daemon test sees them live.
    assert _mode(state / "registry.db") == 0o640
    assert _mode(state / "artifacts") == 0o750
    stored = [p for p in (state / "artifacts").iterdir()]
    assert len(stored) == 1 and _mode(stored[0]) == 0o440


def test_a_daemon_started_under_umask_000_keeps_its_state_private(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "o")
    old = os.umask(0)
    try:
        process = DaemonProcess(env).start()
    finally:
        os.umask(old)
    try:
        assert _mode(env.state_dir) == 0o750
        live = [env.state_dir / f"registry.db{suffix}" for suffix in ("", "-wal", "-shm")]
        assert all(path.exists() for path in live)
        for path in live:
            assert _mode(path) == 0o640, (path, oct(_mode(path)))
        assert _mode(env.socket) == 0o660
    finally:
        process.stop()


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_an_artifact_that_is_not_a_regular_file_is_named_as_such(opsctl_env: OpsctlEnv, tmp_path: Path,
                                                                  fifo: Path, kind: str) -> None:
    source = {"directory": tmp_path, "fifo": fifo, "device": Path("/dev/zero")}[kind]
    result = opsctl_env.run("register", "fraud", "--version", "1", "--artifact", str(source), timeout=20)
    assert result.code == 1 and "not a regular file" in result.stderr, result.stderr
    _one_error_line(result)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _env_on(root: Path, state: Path) -> OpsctlEnv:
    env = make_opsctl_env(root)
    env.config.write_text(f'[daemon]\nstate_dir = "{state}"\nsocket = "{root / "s.sock"}"\n')
    return env


def test_a_full_state_dir_is_one_line_with_the_free_space_and_the_registry_stays_intact(
        tmp_path: Path, small_fs: Path) -> None:
    env = _env_on(tmp_path / "o", small_fs / "state")
    small = tmp_path / "small.bin"
    small.write_bytes(b"w")
    assert env.run("register", "fraud", "--version", "1", "--artifact", str(small)).code == 0
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    result = env.run("register", "fraud", "--version", "2", "--artifact", str(big))
    assert result.code == 1, result.stderr
    assert f"no space left on {small_fs / 'state' / 'artifacts'} (" in result.stderr and "MB free)" in result.stderr
    _one_error_line(result)
    assert [v["version"] for v in env.run("versions", "fraud", "-o", "json").json()] == ["1"]
    assert not [p for p in (small_fs / "state" / "artifacts").iterdir() if p.name.startswith(".incoming-")]


def test_a_read_only_state_dir_is_named(tmp_path: Path, small_fs: Path) -> None:
    env = _env_on(tmp_path / "o", small_fs / "state")
    small = tmp_path / "small.bin"
    small.write_bytes(b"w")
    assert env.run("register", "fraud", "--version", "1", "--artifact", str(small)).code == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    other = tmp_path / "other.bin"
    other.write_bytes(b"x")
    result = env.run("register", "fraud", "--version", "2", "--artifact", str(other))
    assert result.code == 1 and "read-only file system" in result.stderr, result.stderr
    _one_error_line(result)


def test_partial_uploads_are_removed_when_the_daemon_starts(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "o")
    artifacts = env.state_dir / "artifacts"
    artifacts.mkdir(parents=True)
    leftover = artifacts / ".incoming-abc123"
    leftover.write_bytes(b"half a model")
    process = DaemonProcess(env).start()
    try:
        assert not leftover.exists()
    finally:
        process.stop()
