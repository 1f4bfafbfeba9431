"""Run a local Prometheus or Alertmanager: write its config, pick a free loopback port, start it with
temporary storage, wait until it answers ``/-/ready`` (polling, never a fixed sleep), stop it cleanly.

Used by the demo fleet and by the test fixtures::

    with LocalPrometheus(config_yaml) as prom:
        httpx.get(f"{prom.url}/api/v1/query", params={"query": "up"})
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from opsctl.errors import OpsctlError


class LaunchError(OpsctlError):
    """A local Prometheus/Alertmanager could not be started."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the caller retries if it loses the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _LocalServer:
    """Shared lifecycle: config files in a temp dir, a child process, readiness polling, clean stop."""

    binaries: Sequence[str] = ()
    config_name = "config.yml"

    def __init__(
        self,
        config_yaml: str,
        *,
        extra_files: Mapping[str, str] | None = None,
        binary: str | None = None,
        ready_timeout_seconds: float = 30.0,
        workdir: Path | None = None,
        web_config_yaml: str | None = None,
        ready_client: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self._config_yaml = config_yaml
        self._extra_files = dict(extra_files or {})
        self._binary = binary
        self._ready_timeout = ready_timeout_seconds
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"opsctl-{self.kind}-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = self.workdir / f"{self.kind}.log"
        # Prometheus' --web.config.file (TLS, basic auth); the readiness probe then needs a client that
        # trusts the CA and carries the credentials.
        self._web_config_yaml = web_config_yaml
        self._ready_client = ready_client or (lambda: httpx.Client(timeout=1.0))

    kind = "server"

    @property
    def url(self) -> str:
        scheme = "https" if self._web_config_yaml and "tls_server_config" in self._web_config_yaml else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _web_flags(self) -> list[str]:
        return [f"--web.config.file={self.workdir / 'web.yml'}"] if self._web_config_yaml else []

    @property
    def config_path(self) -> Path:
        return self.workdir / self.config_name

    def find_binary(self) -> str:
        for name in ([self._binary] if self._binary else list(self.binaries)):
            found = shutil.which(name)
            if found:
                return found
        raise LaunchError(f"{self.kind} binary not found (tried {', '.join(self.binaries)}); "
                          "install Debian's prometheus / prometheus-alertmanager packages")

    def _command(self, binary: str, port: int) -> list[str]:
        raise NotImplementedError

    def write_file(self, name: str, content: str) -> Path:
        """Write a file next to the config atomically (file_sd readers must never see half a file)."""
        path = self.workdir / name
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
        return path

    def start(self) -> None:
        binary = self.find_binary()
        self.write_file(self.config_name, self._config_yaml)
        for name, content in self._extra_files.items():
            self.write_file(name, content)
        if self._web_config_yaml:
            self.write_file("web.yml", self._web_config_yaml)
        last_error = ""
        for _attempt in range(3):  # another process may grab the free port between probe and bind
            self.port = free_port()
            with open(self._log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self._command(binary, self.port),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.workdir,
                )
            try:
                self._wait_ready()
                return
            except LaunchError as error:
                last_error = str(error)
                self._terminate()
        raise LaunchError(last_error)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self._ready_timeout
        with self._ready_client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise LaunchError(f"{self.kind} exited with {self.process.returncode}: {self.log_tail()}")
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise LaunchError(f"{self.kind} not ready after {self._ready_timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, like a crash (the test for 'Prometheus died')."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _terminate(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the process and remove the temporary storage."""
        self._terminate()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _LocalServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalPrometheus(_LocalServer):
    """A Prometheus with temporary TSDB storage on 127.0.0.1 and the lifecycle API (``reload()``)."""

    binaries = ("prometheus",)
    config_name = "prometheus.yml"
    kind = "prometheus"

    def _command(self, binary: str, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
            *self._web_flags(),
        ]

    def reload(self) -> None:
        """Re-read the config files (POST /-/reload)."""
        response = httpx.post(f"{self.url}/-/reload", timeout=10)
        if response.status_code != 200:
            raise LaunchError(f"prometheus reload failed: {response.status_code} {response.text}")


class LocalAlertmanager(_LocalServer):
    """An Alertmanager on 127.0.0.1 with clustering off (no gossip on 0.0.0.0)."""

    binaries = ("prometheus-alertmanager", "alertmanager")
    config_name = "alertmanager.yml"
    kind = "alertmanager"

    def _command(self, binary: str, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
            *self._web_flags(),
        ]


MINIMAL_ALERTMANAGER_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""
