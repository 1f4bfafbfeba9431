"""Hostile and careless input at the API edge: 400 with the JSON error shape, nothing committed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess, upload


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(make_opsctl_env(tmp_path_factory.mktemp("api") / "opsctl")).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def artifact(daemon: DaemonProcess) -> dict[str, str]:
    path = daemon.env.root / "model.bin"
    path.write_bytes(b"weights")
    return upload(daemon.http(), path)


def _bad_request(response: httpx.Response, words: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "UsageError" and words in error["message"], error


@pytest.mark.parametrize("metric", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_non_finite_metric_is_refused_and_nothing_is_committed(daemon: DaemonProcess, artifact: dict[str, str],
                                                                  metric: str) -> None:
    client = daemon.http()
    body = f'{{"version": "1", "artifact": {json.dumps(artifact)}, "metrics": {{"auc": {metric}}}}}'
    response = client.post("/v1/models/nan-model/versions", content=body.encode(),
                           headers={"content-type": "application/json"})
    _bad_request(response, "request body")
    assert client.get("/v1/models/nan-model/versions").status_code == 404
    listed = daemon.env.run("models", "-o", "json")
    assert listed.code == 0 and "nan-model" not in listed.stdout


def test_a_name_with_a_trailing_newline_is_refused(daemon: DaemonProcess, artifact: dict[str, str]) -> None:
    client = daemon.http()
    response = client.post("/v1/models/evil%0A/versions", json={"version": "1", "artifact": artifact})
    _bad_request(response, "invalid model name")
    response = client.post("/v1/models/fine/versions", json={"version": "1\n", "artifact": artifact})
    _bad_request(response, "invalid version")
    assert daemon.env.run("models", "-o", "json").json() == []


def test_a_body_that_is_not_utf8_is_a_json_400(daemon: DaemonProcess) -> None:
    response = daemon.http().post("/v1/models/m/promote", content=b'{"version": "\xff\xfe"}')
    _bad_request(response, "not UTF-8")


def test_json_nested_100000_deep_is_a_json_400(daemon: DaemonProcess) -> None:
    body = b'{"version": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _bad_request(daemon.http().post("/v1/models/m/promote", content=body), "nested deeper")
    moderately = b'{"version": "1", "reason": "x", "tags": ' + b"[" * 40 + b"]" * 40 + b"}"
    _bad_request(daemon.http().post("/v1/models/m/promote", content=moderately), "nested deeper")


def test_an_oversized_body_is_a_json_400(daemon: DaemonProcess) -> None:
    body = json.dumps({"version": "1", "reason": "x" * (2 * 1024 * 1024)}).encode()
    _bad_request(daemon.http().post("/v1/models/m/promote", content=body), "larger than")


@pytest.mark.parametrize("number", [str(2**63), str(-(2**63) - 1), "9" * 5000])
def test_integers_beyond_sqlite_range_are_refused(daemon: DaemonProcess, number: str) -> None:
    body = f'{{"version": "1", "expected_generation": {number}}}'.encode()
    _bad_request(daemon.http().post("/v1/models/m/promote", content=body), "out of range")


def test_a_negative_generation_and_a_huge_history_limit_are_refused(daemon: DaemonProcess) -> None:
    response = daemon.http().post("/v1/models/m/promote", json={"version": "1", "expected_generation": -1})
    _bad_request(response, "expected_generation")
    _bad_request(daemon.http().get("/v1/history", params={"limit": str(2**64)}), "limit")


@pytest.mark.parametrize("lineage", [{"parent_version": 5}, {"code_version": ["a"]}, {"nope": "x"}, "x"])
def test_lineage_fields_of_the_wrong_type_are_refused(daemon: DaemonProcess, artifact: dict[str, str],
                                                      lineage: object) -> None:
    response = daemon.http().post("/v1/models/lineage/versions",
                                  json={"version": "1", "artifact": artifact, "lineage": lineage})
    _bad_request(response, "lineage")
    assert daemon.http().get("/v1/models/lineage/versions").status_code == 404


def test_versions_still_list_after_refused_input(daemon: DaemonProcess, artifact: dict[str, str]) -> None:
    client = daemon.http()
    created = client.post("/v1/models/ok-model/versions",
                          json={"version": "1", "artifact": artifact, "metrics": {"auc": 0.9}})
    assert created.status_code == 201, created.text
    listed = daemon.env.run("versions", "ok-model", "-o", "json")
    assert listed.code == 0 and listed.json()[0]["metrics"] == {"auc": 0.9}
