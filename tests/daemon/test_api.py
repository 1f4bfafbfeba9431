"""The daemon's API in-process through httpx.ASGITransport (tests/fixtures/api.py): routes, status
codes, error documents and the OpenAPI document. No process and no socket: those are what
tests/daemon/test_daemon.py is about."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctld.api import ENDPOINTS
from opsctld.main import load_subsystems
from tests.fixtures.api import in_process_api
from tests.fixtures.cli import make_opsctl_env

pytestmark = pytest.mark.asyncio


async def test_openapi_documents_every_route(tmp_path: Path) -> None:
    async with in_process_api(make_opsctl_env(tmp_path / "opsctl")) as api:
        document = (await api.http.get("/openapi.json")).json()
        documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
        served = {(e.method, e.path) for e in ENDPOINTS} | {
            (e.method, e.path) for s in load_subsystems() for e in s.endpoints}
        assert documented == served
        for method, path in sorted(documented):
            if path == "/v1/events":
                continue  # an endless stream; tests/daemon/test_daemon.py reads it from the real daemon
            concrete = "/".join("x" if part.startswith("{") else part for part in path.split("/"))
            response = await api.http.request(method, concrete, json={} if method == "POST" else None)
            # A documented route is really served: never a router miss (plain-text 404) or 405.
            assert response.status_code != 405, (method, path)
            assert response.status_code != 404 or response.json()["error"]["type"] == "NotFoundError", (method, path)
            ops = document["paths"][path][method.lower()]
            if response.status_code == 200 and "application/json" in ops["responses"]["200"]["content"]:
                body = response.json()
                for key in ops["responses"]["200"]["content"]["application/json"]["schema"].get("required", []):
                    assert key in body, (path, key)


async def test_errors_come_back_as_json_with_http_status(tmp_path: Path) -> None:
    async with in_process_api(make_opsctl_env(tmp_path / "opsctl")) as api:
        missing = await api.http.get("/v1/models/nope/versions")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
        bad = await api.http.post("/v1/models/nope/promote", content=b"{not json")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        assert bad.json()["error"]["exit_code"] == 2
