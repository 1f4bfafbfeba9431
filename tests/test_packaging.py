"""The wheel ships every package of the source tree and the files a server needs, and works installed
into a fresh virtualenv outside the repository: `opsctl config example` and its variants, a unit that
`systemd-analyze verify` accepts, the daemon, and one-shot commands against it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
import pytest

from tests.fixtures.wait import wait_for
from tests.fixtures.wheel import BORROWED_SITE_PACKAGES, install_wheel

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
pytestmark = pytest.mark.xdist_group("wheel")  # one worker builds the wheel once (tests/daemon/test_sandbox.py)
# Packages that carry only data (package-dir maps them onto a folder of non-code files).
DATA_ONLY = {"opsctl.shipped"}


def test_every_package_in_the_tree_is_listed_for_the_wheel() -> None:
    listed = set(SETUPTOOLS["packages"]) - DATA_ONLY
    mapping = {source: name for name, source in SETUPTOOLS["package-dir"].items() if name not in DATA_ONLY}
    in_tree = set()
    for source, name in mapping.items():
        for init in (ROOT / source).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / source).parts
            in_tree.add(".".join((name, *relative)))
    assert in_tree - listed == set(), "packages missing from [tool.setuptools] packages"
    assert listed - in_tree == set(), "listed packages that do not exist"


def test_every_package_data_glob_matches_a_file() -> None:
    for package, globs in SETUPTOOLS["package-data"].items():
        folder = ROOT / SETUPTOOLS["package-dir"].get(package, package.replace(".", "/"))
        for pattern in globs:
            assert list(folder.glob(pattern)), f"{package}: {pattern!r} matches no file in {folder}"


# -- the wheel, installed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    venv: Path
    work: Path  # a folder outside the repository, the commands' working directory
    env: dict[str, str]

    @property
    def opsctl(self) -> Path:
        return self.venv / "bin" / "opsctl"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.opsctl), *args], capture_output=True, text=True, cwd=self.work,
                              env=self.env, timeout=timeout)


@pytest.fixture(scope="session")
def installed(opsctl_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel in a new virtualenv outside the repository (see tests/fixtures/wheel.py)."""
    base = tmp_path_factory.mktemp("installed")
    venv = base / "venv"
    install_wheel(opsctl_wheel, venv)
    work = base / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPSCTL_", "PYTHON", "VIRTUAL_ENV", "JOURNAL_STREAM", "NOTIFY_SOCKET"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env["HOME"] = str(work)  # no ~/.config/opsctl of whoever runs the tests
    yield Installed(venv, work, env)
    shutil.rmtree(base, ignore_errors=True)


def test_imports_come_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    probe = ("import opsctl, opsctld, sys; from opsctl.shipped_files import shipped_root;"
             "print(opsctl.__file__); print(opsctld.__file__); print(shipped_root());"
             "print([p for p in sys.path if p.startswith(sys.argv[1])])")
    done = subprocess.run([str(installed.venv / "bin" / "python"), "-c", probe, str(ROOT)], capture_output=True,
                          text=True, cwd=installed.work, env=installed.env, timeout=60)
    assert done.returncode == 0, done.stderr
    opsctl_file, opsctld_file, shipped_root, checkout_on_path = done.stdout.split("\n")[:4]
    site = str(installed.venv)
    assert opsctl_file.startswith(site) and opsctld_file.startswith(site) and shipped_root.startswith(site)
    assert shipped_root.endswith("/opsctl/shipped")
    # The only path into the checkout is the borrowed third-party site-packages, never its source.
    assert checkout_on_path == repr([BORROWED_SITE_PACKAGES])


@pytest.mark.parametrize(("flag", "source"), [
    ((), "config/opsctl.toml"),
    (("--prometheus-config",), "config/prometheus/prometheus.yml"),
    (("--grafana",), "config/grafana/opsctl-sla.json"),
    (("--runbook", "OpsctlDaemonDown"), "docs/runbooks/OpsctlDaemonDown.md"),
])
def test_config_example_prints_the_shipped_files(installed: Installed, flag: tuple[str, ...], source: str) -> None:
    done = installed.run("config", "example", *flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / source).read_text()


def test_the_example_config_passes_config_check_once_its_paths_are_local(installed: Installed) -> None:
    text = installed.run("config", "example").stdout
    text = text.replace('"/var/lib/opsctl"', f'"{installed.work / "check-state"}"').replace(
        '"/run/opsctl/opsctl.sock"', f'"{installed.work / "check.sock"}"')
    (installed.work / "example.toml").write_text(text)
    done = installed.run("config", "check", str(installed.work / "example.toml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_rules_link_runbooks_installed_with_the_wheel(installed: Installed) -> None:
    done = installed.run("config", "example", "--prometheus-rules")
    assert done.returncode == 0, done.stderr
    urls = re.findall(r'runbook_url:\s*"([^"]+)"', done.stdout)
    assert len(urls) == 9
    for url in urls:
        page = Path(url2pathname(urlparse(url).path))
        assert url.startswith("file://") and page.is_file() and str(page).startswith(str(installed.venv)), url
    if shutil.which("promtool"):
        rules = installed.work / "alerts.yml"
        rules.write_text(done.stdout)
        checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True,
                                 timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_emitted_unit_runs_this_opsctl_and_verifies(installed: Installed) -> None:
    done = installed.run("config", "example", "--systemd")
    assert done.returncode == 0, done.stderr
    unit = done.stdout
    assert f"ExecStart={installed.opsctl} daemon --config /etc/opsctl/opsctl.toml\n" in unit
    (documentation,) = re.findall(r"^Documentation=(.+)$", unit, flags=re.M)
    page = Path(url2pathname(urlparse(documentation).path))
    assert page.is_file() and str(page).startswith(str(installed.venv)) and page.name == "README.md"
    path = installed.work / "opsctl.service"
    path.write_text(unit)
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: ./dev test installs Debian's systemd package"
    verified = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr


def test_the_daemon_runs_from_the_installed_wheel_and_status_answers(installed: Installed) -> None:
    root = installed.work / "daemon"
    root.mkdir()
    config = root / "opsctl.toml"
    config.write_text(f'[daemon]\nstate_dir = "{root / "state"}"\nsocket = "{root / "opsctl.sock"}"\n')
    log = root / "daemon.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([str(installed.opsctl), "daemon", "--config", str(config)], cwd=installed.work,
                                env=installed.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=str(root / "opsctl.sock")),
                                  base_url="http://opsctl", timeout=5) as http:
                    return http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 30, what="the installed daemon to answer", context=log.read_text)
        status = installed.run("status", "-o", "json", "--config", str(config))
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["daemon"]["pid"] == proc.pid
        for command in (("history",), ("models", "-o", "json"), ("config", "check", str(config))):
            done = installed.run(*command, "--config", str(config)) if command[0] != "config" else \
                installed.run(*command)
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
            assert "acting directly" not in done.stderr  # answered by the daemon, not the registry file
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()
