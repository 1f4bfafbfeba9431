"""The daemon under the shipped unit's sandbox, and an operator working from their home directory.

No systemd runs here, so the test rebuilds what the unit asks for by hand (root only): a dedicated
system user and group, the daemon in a private mount namespace (``unshare --mount``) where every mount
is read-only but the state and runtime directories (``ProtectSystem=strict`` with ``StateDirectory=``
and ``RuntimeDirectory=``, i.e. the ``ReadWritePaths=``), ``/home`` and ``/root`` are empty and
inaccessible (``ProtectHome=yes``) and ``/tmp`` is private (``PrivateTmp=yes``), started through
``setpriv`` without capabilities and with ``no_new_privs`` (``NoNewPrivileges=yes``, ``UMask=0027``).
The other directives (seccomp filters, ``MemoryDenyWriteExecute=``, ``PrivateDevices=``) are not
reproduced; ``tests/test_systemd_unit.py`` checks them with ``systemd-analyze``.

An operator in the service's group then registers two versions from files in their home directory
(which the daemon cannot see: the CLI uploads the bytes), promotes, rolls back and reads the history.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.wait import wait_for
from tests.fixtures.wheel import BORROWED_SITE_PACKAGES, install_wheel

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates users and a mount namespace"),
              pytest.mark.xdist_group("wheel")]  # one worker builds the wheel once for both modules

# The daemon's interpreter must live outside home directories (ProtectHome=yes hides them, and /root is
# private here); the borrowed third-party libraries are built for 3.11.
PYTHON = "/usr/bin/python3.11"

SANDBOX = r"""
set -eu
mount --make-rprivate /
# ReadWritePaths= (StateDirectory=, RuntimeDirectory=): bind mounts of their own stay writable.
for path in "$STATE_DIR" "$RUNTIME_DIR"; do mount --bind "$path" "$path"; done
# ProtectSystem=strict: every other mount read-only (the API file systems excepted, as systemd does).
for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
    case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$STATE_DIR"|"$RUNTIME_DIR") continue;; esac
    mount -o remount,bind,ro "$m"
done
# ProtectHome=yes: empty and inaccessible.
for home in /home /root /run/user; do
    if [ -d "$home" ]; then mount -t tmpfs -o mode=000 tmpfs "$home"; fi
done
# PrivateTmp=yes.
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
umask 0027
exec setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups --no-new-privs \
    --bounding-set=-all --inh-caps=-all -- "$OPSCTL" daemon --config "$CONFIG"
"""


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def _mounted(path: Path) -> bool:
    # os.path.ismount misses a bind mount within one file system (same device on both sides).
    return str(path) in {line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()}


@dataclass(frozen=True)
class Server:
    service: str  # user and group the daemon runs as
    operator: str  # a user in the service's group
    opsctl: Path
    config: Path
    state_dir: Path
    socket: Path
    daemon: subprocess.Popen[bytes]
    log: Path

    def as_operator(self, *args: str) -> subprocess.CompletedProcess[str]:
        home = Path("/home") / self.operator
        env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "NO_COLOR": "1",
               "USER": self.operator, "LOGNAME": self.operator}
        return subprocess.run(["setpriv", f"--reuid={self.operator}", f"--regid={self.operator}", "--init-groups",
                               "--", str(self.opsctl), *args, "--config", str(self.config)],
                              capture_output=True, text=True, cwd=home, env=env, timeout=120)

    def in_sandbox(self, script: str) -> subprocess.CompletedProcess[str]:
        """A shell script as the service user inside the daemon's own mount namespace."""
        return subprocess.run(["nsenter", f"--target={self.daemon.pid}", "--mount", "--", "setpriv",
                               f"--reuid={self.service}", f"--regid={self.service}", "--init-groups", "--",
                               "sh", "-c", script], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def server(opsctl_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path(PYTHON).exists():
        pytest.fail(f"{PYTHON} missing: the sandboxed daemon needs a Python 3.11 outside home directories")
    for tool in ("unshare", "nsenter", "setpriv", "useradd", "userdel"):
        assert shutil.which(tool), f"{tool} missing (util-linux, passwd)"
    suffix = secrets.token_hex(3)
    service, operator = f"opsctl-t{suffix}", f"opsop-t{suffix}"
    opt, state, runtime, etc = (Path(f"/opt/{service}"), Path(f"/var/lib/{service}"), Path(f"/run/{service}"),
                                Path(f"/etc/{service}"))
    borrowed = opt / "site-packages"
    daemon: subprocess.Popen[bytes] | None = None
    try:
        _run("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(state),
             "--shell", "/usr/sbin/nologin", service)
        _run("useradd", "--create-home", "--user-group", "--groups", service, "--shell", "/bin/sh", operator)
        # The borrowed libraries may sit under /tmp or /root (wherever the checkout is), which the sandbox
        # hides: a read-only bind mount under /opt shows them to the daemon and the operator alike, as a
        # real install's dependencies in /opt would be.
        borrowed.mkdir(parents=True)
        _run("mount", "--bind", BORROWED_SITE_PACKAGES, str(borrowed))
        _run("mount", "-o", "remount,bind,ro", str(borrowed))
        opsctl = install_wheel(opsctl_wheel, opt / "venv", python=PYTHON, borrowed=str(borrowed))
        for path, owner, mode in ((state, service, 0o750), (runtime, service, 0o750), (etc, "root", 0o750)):
            path.mkdir()
            shutil.chown(path, owner, service)
            path.chmod(mode)
        config = etc / "opsctl.toml"
        config.write_text(f'[daemon]\nstate_dir = "{state}"\nsocket = "{runtime}/opsctl.sock"\n')
        shutil.chown(config, "root", service)
        config.chmod(0o640)
        log = tmp_path_factory.mktemp("sandbox") / "daemon.log"
        with log.open("ab") as out:
            daemon = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SANDBOX],
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": str(state),
                     "STATE_DIR": str(state), "RUNTIME_DIR": str(runtime), "SERVICE_USER": service,
                     "OPSCTL": str(opsctl), "CONFIG": str(config)},
                stdout=out, stderr=subprocess.STDOUT)
        socket = runtime / "opsctl.sock"
        running = daemon

        def answers() -> bool:
            if running.poll() is not None:
                raise RuntimeError(f"sandboxed daemon exited with {running.returncode}:\n{log.read_text()}")
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://opsctl",
                                  timeout=5) as http:
                    return http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 60, what="the sandboxed daemon to answer", context=log.read_text)
        yield Server(service, operator, opsctl, config, state, socket, daemon, log)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
        _run("userdel", "--remove", operator, check=False)
        _run("userdel", service, check=False)
        _run("groupdel", operator, check=False)
        _run("groupdel", service, check=False)
        if _mounted(borrowed):
            _run("umount", str(borrowed), check=False)
        if _mounted(borrowed):
            _run("umount", "--lazy", str(borrowed), check=False)
        # Never recurse into the tests' own libraries (read-only, but still).
        for path in (state, runtime, etc) if _mounted(borrowed) else (opt, state, runtime, etc):
            shutil.rmtree(path, ignore_errors=True)


def test_the_sandbox_holds_what_the_unit_promises(server: Server) -> None:
    home = Path("/home") / server.operator
    (home / "secret.txt").write_text("the operator's\n")
    probe = server.in_sandbox(
        f"id -un; touch /etc/probe-{server.service} 2>&1; touch {server.opsctl.parent}/probe 2>&1;"
        f" ls {home} 2>&1; ls -A /tmp | wc -l; touch {server.state_dir}/probe && echo state-writable")
    lines = probe.stdout.splitlines()
    assert lines[0] == server.service, probe.stdout + probe.stderr
    assert "Read-only file system" in lines[1] and "Read-only file system" in lines[2], probe.stdout
    assert "Permission denied" in lines[3] or "No such file" in lines[3], probe.stdout
    assert lines[4] == "0" and lines[5] == "state-writable", probe.stdout
    # The daemon itself: the service user, no capabilities, no_new_privs.
    status = dict(line.split(":", 1) for line in Path(f"/proc/{server.daemon.pid}/status").read_text().splitlines()
                  if ":" in line)
    service_uid = int(_run("id", "-u", server.service).stdout)
    assert [int(uid) for uid in status["Uid"].split()] == [service_uid] * 4, status["Uid"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, status
    assert status["NoNewPrivs"].strip() == "1"
    assert server.daemon.poll() is None


def test_an_operator_registers_from_home_promotes_rolls_back_and_the_audit_names_them(server: Server) -> None:
    home = Path("/home") / server.operator
    for version in ("1", "2"):
        artifact = home / f"model-{version}.bin"
        artifact.write_bytes(f"weights {version}\n".encode())
        shutil.chown(artifact, server.operator, server.operator)
        artifact.chmod(0o600)  # the operator's own file: the daemon's user could not read it even unsandboxed
        registered = server.as_operator("register", "fraud", "--version", version, "--artifact", artifact.name,
                                        "--reason", f"v{version} from home")
        assert registered.returncode == 0, registered.stdout + registered.stderr
    for args in (("promote", "fraud", "1"), ("promote", "fraud", "2"), ("rollback", "fraud")):
        done = server.as_operator(*args, "--yes", "--reason", "sandbox test")
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}\n{server.log.read_text()[-2000:]}"
    versions = server.as_operator("versions", "fraud", "-o", "json")
    assert versions.returncode == 0, versions.stderr
    production = [v["version"] for v in json.loads(versions.stdout) if v["status"] == "production"]
    assert production == ["1"], versions.stdout

    history = server.as_operator("history", "fraud", "-o", "json")
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)
    changes = [e for e in entries if e["action"] in ("register", "promote", "rollback")]
    assert [e["action"] for e in changes] == ["register", "register", "promote", "promote", "rollback"], entries
    operator_uid = int(_run("id", "-u", server.operator).stdout)
    for entry in changes:
        assert server.operator in entry["actor"] and entry["uid"] == operator_uid, entry
        assert entry["via"] != "direct (daemon down)", entry
    # The artifacts live in the state dir, owned by the service user, not read from the operator's home.
    stored = [p for p in (server.state_dir / "artifacts").rglob("*") if p.is_file()]
    assert stored and all(p.owner() == server.service for p in stored)
