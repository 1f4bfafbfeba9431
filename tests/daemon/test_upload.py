"""Artifacts travel as bytes: the daemon never opens a client's path, checks the sha256 both sides, limits
the size, keeps nothing from a failed upload, and a retry answers the version already registered."""

from __future__ import annotations

import hashlib
import os
import pty
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli import OPSCTL, OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess, upload


def _stored(env: OpsctlEnv) -> list[str]:
    folder = env.state_dir / "artifacts"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_client_path_is_refused_and_nothing_is_read(daemon: DaemonProcess) -> None:
    secret = daemon.env.root / "secret"
    secret.write_text("root:$6$hash")
    response = daemon.http().post("/v1/models/leak/versions", json={"version": "1", "artifact_path": str(secret)})
    assert response.status_code == 400 and "does not read files by path" in response.json()["error"]["message"]
    assert _stored(daemon.env) == []
    assert daemon.http().get("/v1/models/leak/versions").status_code == 404


def test_a_stored_name_must_exist_and_match_its_sha256(daemon: DaemonProcess) -> None:
    fake = {"name": "sha256-" + "a" * 64, "sha256": "a" * 64}
    response = daemon.http().post("/v1/models/m/versions", json={"version": "1", "artifact": fake})
    assert response.status_code == 404
    escape = {"name": "../registry.db", "sha256": "a" * 64}
    response = daemon.http().post("/v1/models/m/versions", json={"version": "1", "artifact": escape})
    assert response.status_code == 400


def test_bytes_damaged_in_transit_are_refused_and_nothing_is_kept(daemon: DaemonProcess) -> None:
    response = daemon.http().post("/v1/uploads", content=b"weights",
                                  headers={"X-Opsctl-Sha256": hashlib.sha256(b"other").hexdigest()})
    assert response.status_code == 422 and "damaged in transit" in response.json()["error"]["message"]
    assert _stored(daemon.env) == []


def test_an_upload_without_its_sha256_is_refused(daemon: DaemonProcess) -> None:
    response = daemon.http().post("/v1/uploads", content=b"weights")
    assert response.status_code == 400 and "X-Opsctl-Sha256" in response.json()["error"]["message"]


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[DaemonProcess]:
    env = make_opsctl_env(tmp_path / "o")
    env.config.write_text(env.config.read_text().replace("[daemon]\n", "[daemon]\nmax_upload_bytes = 1000\n"))
    process = DaemonProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


def test_an_artifact_over_the_size_limit_is_refused_and_nothing_is_kept(small_limit: DaemonProcess) -> None:
    env = small_limit.env
    big = env.root / "big.bin"
    big.write_bytes(os.urandom(5000))
    result = env.run("register", "m", "--version", "1", "--artifact", str(big))
    assert result.code == 2 and "larger than the limit of 1000 bytes" in result.stderr, result.stderr
    data = os.urandom(3000)
    chunked = small_limit.http().post("/v1/uploads", content=iter([data[:1500], data[1500:]]),
                                      headers={"X-Opsctl-Sha256": hashlib.sha256(data).hexdigest()})
    assert chunked.status_code == 413 and "larger than the limit" in chunked.json()["error"]["message"]
    assert _stored(env) == []


def test_registering_the_same_bytes_again_answers_the_existing_version(daemon: DaemonProcess) -> None:
    env = daemon.env
    artifact = env.root / "m.joblib"
    artifact.write_bytes(b"weights")
    first = env.run("register", "m", "--version", "1", "--artifact", str(artifact), "-o", "json")
    assert first.code == 0, first.stderr
    again = env.run("register", "m", "--version", "1", "--artifact", str(artifact), "-o", "json")
    assert again.code == 0 and again.json() == first.json()
    artifact.write_bytes(b"other weights")
    other = env.run("register", "m", "--version", "1", "--artifact", str(artifact))
    assert other.code == 4 and "already registered" in other.stderr
    history = env.run("history", "m", "-o", "json").json()
    assert [e["action"] for e in history] == ["register"]
    stored = [p for p in (env.state_dir / "artifacts").iterdir()]
    assert not [p for p in stored if p.name.startswith(".incoming-")]


# The interpreter lives under /root (0700 here), which `nobody` cannot traverse. In a private mount
# namespace (this machine is untouched) /root becomes a 0755 tmpfs holding only the interpreter's tree.
_AS_NOBODY = """set -e
mkdir -p "$KEEP"
mount --bind /root/.pyenv "$KEEP"
mount -t tmpfs -o mode=0755 tmpfs /root
mkdir /root/.pyenv
mount --bind "$KEEP" /root/.pyenv
exec runuser -u nobody -- "$@"
"""


def test_registering_works_when_the_daemon_cannot_read_the_operators_file(tmp_path: Path) -> None:
    """The daemon runs as `nobody` (runuser, as root); the artifact sits in a folder only root can read."""
    if os.geteuid() != 0:
        pytest.skip("running the daemon as another user needs root")
    shared = Path(tempfile.mkdtemp(prefix="opsctl-nobody-", dir="/tmp"))  # pytest's tmp is root-only
    try:
        os.chmod(shared, 0o755)
        env = make_opsctl_env(shared / "o")
        env.state_dir.mkdir(mode=0o750)
        for owned_by_the_daemon in (env.root, env.state_dir):  # the socket's folder and the state dir
            os.chown(owned_by_the_daemon, 65534, 65534)
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        artifact = private / "model.joblib"
        artifact.write_bytes(b"operator's weights")
        log = (shared / "daemon.log").open("wb")
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _AS_NOBODY, "sh",
                   OPSCTL, "daemon", "--config", str(env.config)]
        proc = subprocess.Popen(command, env={**env.env, "KEEP": str(shared / "pyenv")}, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            process = DaemonProcess(env)
            deadline = time.monotonic() + 30
            while not process.answers():
                assert proc.poll() is None and time.monotonic() < deadline, (shared / "daemon.log").read_text()
                time.sleep(0.05)
            owner = Path(f"/proc/{_daemon_pid(env)}").stat().st_uid
            assert owner == 65534  # the daemon really runs as nobody
            unreadable = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/head", "-c1", str(artifact)],
                                        capture_output=True)
            assert unreadable.returncode != 0  # and nobody really cannot read the artifact
            result = env.run("register", "m", "--version", "1", "--artifact", str(artifact), "-o", "json")
            assert result.code == 0, result.stderr
            assert "acting directly" not in result.stderr
            assert result.json()["sha256"] == hashlib.sha256(b"operator's weights").hexdigest()
            history = env.run("history", "m", "-o", "json").json()
            assert history[-1]["actor"] == "root" and history[-1]["via"] == "daemon"
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _daemon_pid(env: OpsctlEnv) -> int:
    status = DaemonProcess(env).http().get("/v1/status").json()
    return int(status["daemon"]["pid"])


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_1_gib_artifact_uploads_with_progress_and_the_daemon_memory_stays_flat(daemon: DaemonProcess) -> None:
    env = daemon.env
    big = env.root / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(1024**3)  # sparse: the bytes still travel, the disk is spared the source copy
    before = _hwm_kib(daemon.pid)
    pid, fd = pty.fork()
    if pid == 0:  # the child: opsctl register with stderr on a terminal
        os.execve(OPSCTL, [OPSCTL, "register", "big", "--version", "1", "--artifact", str(big)], env.env)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "uploading big.bin:  50%" in text and "100% (1073.7 of 1073.7 MB)" in text
    assert "registered big 1" in text
    grown_mib = (_hwm_kib(daemon.pid) - before) / 1024
    print(f"daemon peak RSS grew by {grown_mib:.1f} MiB for a 1 GiB upload")
    assert grown_mib < 64


def test_uploads_never_registered_are_removed_after_a_day_at_the_next_start(daemon: DaemonProcess) -> None:
    env = daemon.env
    kept = env.root / "kept.joblib"
    kept.write_bytes(b"registered weights")
    assert env.run("register", "m", "--version", "1", "--artifact", str(kept)).code == 0
    orphan = env.root / "orphan.bin"
    orphan.write_bytes(b"uploaded, then the register never came")
    fresh = env.root / "fresh.bin"
    fresh.write_bytes(b"uploaded a moment ago")
    orphan_name = upload(daemon.http(), orphan)["name"]
    fresh_name = upload(daemon.http(), fresh)["name"]
    daemon.stop()
    two_days_ago = time.time() - 2 * 86400
    for name in _stored(env):
        if name != fresh_name:
            os.utime(env.state_dir / "artifacts" / name, (two_days_ago, two_days_ago))
    daemon.start()
    left = _stored(env)
    assert orphan_name not in left and fresh_name in left
    assert env.run("verify", "m", "1").code == 0  # the registered artifact, as old, is kept and intact
