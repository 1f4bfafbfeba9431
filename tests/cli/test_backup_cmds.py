"""``opsctl backup`` while a real daemon runs and writes, ``opsctl restore`` into an empty state dir, a second
daemon started on the restored state: same models, versions, audit chain and artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

MODEL = "fraud"
VERSIONS = ("v1", "v2", "v3")


def cli_json(env: OpsctlEnv, *args: str) -> Any:
    result = env.run(*args, "-o", "json")
    assert result.code == 0, (args, result.code, result.stderr)
    return result.json()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[DaemonProcess]:
    # Jobs write every fraction of a second (job_runs, offsets, events) while the backup reads.
    env = make_opsctl_env(tmp_path / "source", "[jobs]\nhousekeeping_seconds = 0.2\ningest_seconds = 0.1\n")
    reference = env.root / "reference.csv"
    reference.write_text("x1,x2\n" + "".join(f"{i * 0.1},{i % 7}\n" for i in range(500)))
    for version in VERSIONS:
        artifact = env.root / f"{version}.bin"
        artifact.write_bytes(os.urandom(300_000))
        registered = env.run("register", MODEL, "--version", version, "--artifact", str(artifact),
                             "--reference", str(reference), "--reason", f"train {version}")
        assert registered.code == 0, registered.stderr
    assert env.run("promote", MODEL, "v1", "--yes").code == 0
    process = DaemonProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


class Promoter(threading.Thread):
    """Promotes v2, v1, v2, ... through the daemon's API until stopped: audit rows and deployment changes."""

    def __init__(self, daemon: DaemonProcess) -> None:
        super().__init__(daemon=True)
        self.daemon_process = daemon
        self.stop = threading.Event()
        self.done = 0
        self.errors: list[str] = []

    def run(self) -> None:
        with self.daemon_process.http(timeout=10) as http:
            while not self.stop.is_set():
                version = VERSIONS[1] if self.done % 2 == 0 else VERSIONS[0]
                response = http.post(f"/v1/models/{MODEL}/promote", json={"version": version, "reason": "churn"})
                if response.status_code != 200:
                    self.errors.append(response.text)
                    return
                self.done += 1


def test_backup_during_writes_restores_the_same_registry_audit_chain_and_artifacts(source: DaemonProcess,
                                                                                  tmp_path: Path) -> None:
    env = source.env
    dest = tmp_path / "backups" / "2026-12-05"
    promoter = Promoter(source)
    promoter.start()
    try:
        wait_for(lambda: promoter.done >= 5 or promoter.errors, 20, what="promotes under way")
        audit_before = len(cli_json(env, "history", "-n", "100000"))
        promotes_before = promoter.done
        backed_up = cli_json(env, "backup", str(dest))
        promotes_during = promoter.done - promotes_before
        audit_after = len(cli_json(env, "history", "-n", "100000"))
    finally:
        promoter.stop.set()
        promoter.join(20)
    assert not promoter.errors, promoter.errors
    assert promotes_during > 0  # the daemon changed production while the backup ran

    # The manifest lists every file with its sha256, and the files match it.
    manifest = json.loads((dest / "manifest.json").read_text())
    assert backed_up["manifest"] == str(dest / "manifest.json")
    assert manifest["format"] == "opsctl-backup/1" and manifest["registry"]["sha256"] == sha256(dest / "registry.db")
    assert (manifest["models"], manifest["versions"]) == (1, 3)
    assert manifest["audit"]["ok"] is True
    assert audit_before <= manifest["audit"]["rows"] <= audit_after
    stored = {p.name: p for p in (env.state_dir / "artifacts").iterdir() if not p.name.startswith(".")}
    assert {a["name"] for a in manifest["artifacts"]} == set(stored)  # 3 models + the shared reference sample
    assert len(manifest["artifacts"]) == 4
    for entry in manifest["artifacts"]:
        copy = dest / "artifacts" / entry["name"]
        assert sha256(copy) == entry["sha256"] == sha256(stored[entry["name"]])
        assert entry["name"].startswith(f"sha256-{entry['sha256']}")

    # Restore into an empty state dir, start a daemon on it.
    restored_env = make_opsctl_env(tmp_path / "restored")
    restored_env.state_dir.mkdir()
    report = cli_json(restored_env, "restore", str(dest), "--state-dir", str(restored_env.state_dir))
    assert report["artifacts_verified"] is True and report["artifacts"] == 4
    assert report["audit"] == manifest["audit"]
    assert restored_env.run("audit", "verify").code == 0
    restored = DaemonProcess(restored_env).start()
    try:
        history = cli_json(restored_env, "history", "-n", "100000")
        source_history = cli_json(env, "history", "-n", "100000")
        # The restored audit log is the source's as it was at the snapshot: a prefix, row for row.
        assert len(history) == manifest["audit"]["rows"]
        assert history == source_history[: len(history)]
        # The deployment is the one that snapshot's last promote made.
        last_promote = [h for h in history if h["action"] == "promote"][-1]
        (model,) = cli_json(restored_env, "models")
        assert model["model"] == MODEL and model["production_version"] == last_promote["to_version"]

        def comparable(versions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return [(v["version"], v["sha256"], v["artifact"], v["size_bytes"], v["reference_sha256"], v["lineage"])
                    for v in versions]

        assert comparable(cli_json(restored_env, "versions", MODEL)) == comparable(cli_json(env, "versions", MODEL))
        verified = restored_env.run("verify", MODEL)
        assert verified.code == 0, verified.stderr
        with restored.http() as http:
            assert http.get(f"/v1/routing/{MODEL}").json()["splits"] == [
                {"version": last_promote["to_version"], "weight": 100.0}]
    finally:
        restored.stop()

    # A non-empty state dir is refused and left alone.
    before = sorted(p.name for p in restored_env.state_dir.iterdir())
    again = restored_env.run("restore", str(dest), "--state-dir", str(restored_env.state_dir))
    assert again.code == 4 and "is not empty" in again.stderr and "nothing was written" in again.stderr
    assert sorted(p.name for p in restored_env.state_dir.iterdir()) == before
    refused = env.run("backup", str(dest), "-o", "json")
    assert refused.code == 4 and refused.json()["error"]["type"] == "ConflictError"


def test_a_damaged_or_unfinished_backup_is_refused_and_the_state_dir_left_empty(source: DaemonProcess,
                                                                                tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    cli_json(source.env, "backup", str(dest))
    damaged = tmp_path / "damaged"
    shutil.copytree(dest, damaged)
    artifact = next((damaged / "artifacts").iterdir())
    artifact.chmod(0o640)
    data = bytearray(artifact.read_bytes())
    data[1000] ^= 0xFF
    artifact.write_bytes(bytes(data))

    target = tmp_path / "target"
    result = source.env.run("restore", str(damaged), "--state-dir", str(target), "-o", "json")
    assert result.code == 5, result.stderr
    assert "failed verification" in result.json()["error"]["message"]
    assert not target.exists()  # it made the directory, so it removed it

    (damaged / "manifest.json").unlink()
    target.mkdir()
    result = source.env.run("restore", str(damaged), "--state-dir", str(target))
    assert result.code == 5 and "no manifest.json" in result.stderr
    assert list(target.iterdir()) == []

    missing = source.env.run("restore", str(tmp_path / "nowhere"), "--state-dir", str(target))
    assert missing.code == 3, missing.stderr


def test_backup_errors_are_one_line(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "empty")
    result = env.run("backup", str(tmp_path / "b"))
    assert result.code == 3 and "registry" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()
    (tmp_path / "file").write_text("x")
    env.state_dir.mkdir()
    result = env.run("restore", str(tmp_path / "b"), "--state-dir", str(tmp_path / "file"))
    assert result.code in (2, 3) and "Traceback" not in result.stderr


def test_a_full_disk_is_a_storage_error_and_leaves_no_partial_backup(tmp_path: Path) -> None:
    """A real full file system: a 400 KB tmpfs, mounted in a private mount namespace (root only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs in a private mount namespace")
    env = make_opsctl_env(tmp_path / "source")
    for version in VERSIONS:
        artifact = env.root / f"{version}.bin"
        artifact.write_bytes(os.urandom(300_000))
        assert env.run("register", MODEL, "--version", version, "--artifact", str(artifact)).code == 0
    mount = tmp_path / "small"
    mount.mkdir()
    script = (f'mount -t tmpfs -o size=400k tmpfs "{mount}" || exit 99\n'
              f'"$OPSCTL" backup "{mount}/b" -o json > "{tmp_path}/out.json" 2> "{tmp_path}/err.txt"\n'
              f'echo $? > "{tmp_path}/code"\nls -A "{mount}" > "{tmp_path}/left.txt"\n')
    import subprocess

    from tests.fixtures.cli import OPSCTL

    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          env={**env.env, "OPSCTL": OPSCTL}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "code").read_text().strip() == "1"
    error = json.loads((tmp_path / "out.json").read_text())["error"]
    assert error["type"] == "StorageError" and error["message"].startswith(f"no space left on {mount}/b")
    assert "Traceback" not in (tmp_path / "err.txt").read_text()
    assert (tmp_path / "left.txt").read_text() == ""  # the partial backup was removed


def test_progress_shows_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    import pty
    import subprocess

    from tests.fixtures.cli import OPSCTL

    env = make_opsctl_env(tmp_path / "source")
    artifact = env.root / "v1.bin"
    artifact.write_bytes(os.urandom(3_000_000))
    assert env.run("register", MODEL, "--version", "v1", "--artifact", str(artifact)).code == 0
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([OPSCTL, "backup", str(tmp_path / "b")], env=env.env, stdout=subprocess.PIPE,
                              stderr=terminal, timeout=60)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert b"registry: 1/1" in shown and b"artifacts: 3.0 of 3.0 MB" in shown
    assert b"backed up" in done.stdout
    piped = env.run("backup", str(tmp_path / "c"))
    assert piped.code == 0 and piped.stderr == ""  # no progress noise in a pipe or a log


def test_backup_and_restore_refuse_a_postgresql_registry_naming_pg_dump(tmp_path: Path, postgres_server: Any) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", f'\n[registry]\nurl = "{postgres_server.create_database()}"\n')
    dest = tmp_path / "backup"
    for args in (("backup", str(dest)), ("restore", str(dest))):
        result = env.run(*args)
        assert result.code == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "PostgreSQL" in line and "pg_dump" in line and "postgresql://opsctl@127.0.0.1" in line, line
    assert not dest.exists()  # nothing half-made
