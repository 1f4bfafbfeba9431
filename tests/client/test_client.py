"""The typed daemon client against a real daemon process: typed documents back, path segments quoted,
one daemon-unavailable error naming the socket and how to start the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.client import DaemonClient
from opsctl.config import load_settings
from opsctl.documents import DaemonInfo, DriftSection, StatusDocument
from opsctl.domain import Deployment
from opsctl.errors import DaemonUnavailableError, UsageError
from tests.fixtures.cli import OpsctlEnv
from tests.fixtures.daemon import DaemonProcess, upload


def _seed(daemon: DaemonProcess, model: str) -> None:
    artifact = daemon.env.root / f"{model}.bin"
    artifact.write_bytes(model.encode())
    with daemon.http() as http:
        assert http.post(f"/v1/models/{model}/versions",
                         json={"version": "1.0.0", "artifact": upload(http, artifact)}).status_code == 201
        assert http.post(f"/v1/models/{model}/promote", json={"version": "1.0.0"}).status_code == 200


def test_status_sections_are_typed(daemon: DaemonProcess) -> None:
    _seed(daemon, "fraud")
    with DaemonClient(socket_path=str(daemon.env.socket)) as client:
        status = client.status()
    assert isinstance(status, StatusDocument)
    assert isinstance(status.daemon, DaemonInfo) and status.daemon.up and status.daemon.pid == daemon.pid
    assert status.models == (Deployment.from_json(status.models[0].to_json()),)
    assert status.models[0].model == "fraud" and status.models[0].production_version == "1.0.0"
    assert {j.name for j in status.jobs} >= {"housekeeping", "drift"}
    # The drift job has a section even before its first check: the deployed version, not checked yet.
    assert isinstance(status.drift, DriftSection)
    (fraud,) = status.drift.models
    assert fraud.model == "fraud" and [v.version for v in fraud.versions] == ["1.0.0"]
    assert fraud.versions[0].role == "production"


@pytest.mark.parametrize("name", ["what?version=1", "a#b", "x y", "%2e%2e"])
def test_names_travel_as_one_quoted_segment(daemon: DaemonProcess, name: str) -> None:
    # Unquoted, `?` would start a query, `#` a fragment and `%2e%2e` decode to `..`: each reached another
    # endpoint or the wrong model. Quoted, the daemon receives exactly this name and says it is not one.
    _seed(daemon, "fraud")
    with DaemonClient(socket_path=str(daemon.env.socket)) as client:
        with pytest.raises(UsageError) as versions:
            client.models.versions(name)
        with pytest.raises(UsageError) as drift:
            client.drift.get(name)
        with pytest.raises(UsageError) as canary:
            client.canaries.pause(name, reason="test")
    for error in (versions, drift, canary):
        assert repr(name) in str(error.value), str(error.value)


def test_a_daemon_that_is_not_running_is_one_error_naming_the_socket(opsctl_env: OpsctlEnv) -> None:
    settings = load_settings(str(opsctl_env.config))
    with pytest.raises(DaemonUnavailableError) as missing:
        DaemonClient.from_settings(settings)
    message = str(missing.value)
    assert message == (f"the daemon is not running (no socket at {settings.daemon.socket}); start it with"
                       " `systemctl start opsctl` (or `opsctl daemon` in the foreground)")


def test_a_socket_nobody_listens_on_is_the_same_error(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # bound, never listening: what a crashed daemon leaves behind
    with DaemonClient(socket_path=str(path)) as client, pytest.raises(DaemonUnavailableError) as refused:
        client.status()
    assert str(refused.value).startswith(f"the daemon does not answer on {path} (")
    assert str(refused.value).endswith(
        "; start it with `systemctl start opsctl` (or `opsctl daemon` in the foreground)")
