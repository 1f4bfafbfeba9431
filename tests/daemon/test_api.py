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


def _schemas_in(node: object) -> list[dict[str, object]]:
    """Every JSON Schema object under a parameter's or request body's ``schema`` key."""
    found: list[dict[str, object]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("type"), str | list) or "anyOf" in item or "enum" in item:
                found.append(item)
            stack.extend(v for k, v in item.items() if k not in {"enum", "required", "description"})
        elif isinstance(item, list):
            stack.extend(item)
    return found


async def test_requests_are_checked_with_only_the_keywords_the_validator_knows(tmp_path: Path) -> None:
    # The daemon validates requests against these schemas: a keyword it does not check would be a promise
    # the API does not keep (and the validator refuses it, as a 500, at the first request).
    from opsctl.core.json_schema import SUPPORTED_KEYWORDS

    async with in_process_api(make_opsctl_env(tmp_path / "opsctl")) as api:
        document = (await api.http.get("/openapi.json")).json()
    inputs = [[*op.get("parameters", []), op.get("requestBody", {})]
              for ops in document["paths"].values() for op in ops.values()]
    schemas = _schemas_in(inputs)
    assert len(schemas) > 50
    for schema in schemas:
        assert set(schema) <= SUPPORTED_KEYWORDS, schema


async def test_a_request_that_fits_the_document_but_cannot_be_acted_on_is_422(tmp_path: Path) -> None:
    async with in_process_api(make_opsctl_env(tmp_path / "opsctl")) as api:
        shape = await api.http.post("/v1/abtest/ztest", json={"control": "1/10", "treatment": "2/10", "alpah": 0.1})
        assert shape.status_code == 400
        assert shape.json()["error"]["message"] == "'alpah' is not a known field (known: alpha, alternative, control," \
                                                   " treatment)"
        values = await api.http.post("/v1/abtest/ztest", json={"control": "11/10", "treatment": "2/10"})
        assert values.status_code == 422
        assert values.json()["error"] == {"type": "UsageError", "exit_code": 2,
                                          "message": "control_successes (11) exceeds control_total (10)"}
