"""The command line itself, through the real `opsctl` process: usage errors (JSON under -o json, one
`opsctl:` prefix, did-you-mean) and subcommands that leave every model name reachable."""

from __future__ import annotations

import pytest

from tests.fixtures.cli import OpsctlEnv
from tests.fixtures.daemon import DaemonProcess, upload


def test_a_usage_error_under_json_prints_the_error_document(opsctl_env: OpsctlEnv) -> None:
    for args in (["-o", "json", "versions"], ["versions", "-o", "json"]):
        result = opsctl_env.run(*args)
        assert result.code == 2, result.stderr
        assert result.json() == {"error": {
            "type": "UsageError", "exit_code": 2,
            "message": "versions: the following arguments are required: model (see `opsctl versions --help`)"}}


def test_a_usage_error_is_one_line_with_one_prefix(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("versions")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "opsctl: versions: the following arguments are required: model (see `opsctl versions --help`)"]


@pytest.mark.parametrize("args,expected", [
    (["promot", "m", "v"], "opsctl: unknown command 'promot'; did you mean 'promote'?"),
    (["canary", "stauts"], "opsctl: canary: unknown subcommand 'stauts'; did you mean 'status' or 'start'?"),
    (["alerts", "silense"],
     "opsctl: alerts: unknown subcommand 'silense'; did you mean 'silence' or 'silences' or 'unsilence'?"),
])
def test_a_mistyped_command_suggests_the_close_ones(opsctl_env: OpsctlEnv, args: list[str], expected: str) -> None:
    result = opsctl_env.run(*args)
    assert result.code == 2
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_nothing_close_gets_no_guess(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("xyzzy")
    assert result.code == 2
    assert result.stderr.strip() == "opsctl: unknown command 'xyzzy' (see `opsctl --help`)"


def test_help_documents_how_to_reach_a_model_named_like_a_subcommand(opsctl_env: OpsctlEnv) -> None:
    retrain = opsctl_env.run("retrain", "--help")
    assert retrain.code == 0 and "opsctl retrain run runs" in retrain.stdout
    drift = opsctl_env.run("drift", "--help")
    assert drift.code == 0 and "opsctl drift check compare" in drift.stdout


def _register(daemon: DaemonProcess, model: str) -> None:
    artifact = daemon.env.root / f"{model}.bin"
    artifact.write_bytes(model.encode())
    with daemon.http() as http:
        response = http.post(f"/v1/models/{model}/versions", json={"version": "v1", "artifact": upload(http, artifact)})
        assert response.status_code == 201, response.text
        assert http.post(f"/v1/models/{model}/promote", json={"version": "v1"}).status_code == 200


def test_models_named_runs_and_compare_are_reachable(daemon: DaemonProcess) -> None:
    env = daemon.env
    for model in ("runs", "compare"):
        _register(daemon, model)
    checked = env.run("drift", "check", "compare", "-o", "json")
    assert checked.code == 0, checked.stderr
    assert checked.json()["model"] == "compare"
    assert [v["version"] for v in checked.json()["versions"]] == ["v1"]
    # `opsctl drift compare` still compares files.
    assert "the following arguments are required: REFERENCE, CURRENT" in env.run("drift", "compare").stderr

    listed = env.run("retrain", "runs", "-o", "json")
    assert listed.code == 0 and listed.json() == []
    # The model called `runs` reaches the daemon's retrain endpoint for that model (which has no
    # [retrain] entry here, so the daemon refuses it by name).
    triggered = env.run("retrain", "run", "runs", "-o", "json")
    assert "runs" in triggered.json().get("message", "") + str(triggered.json().get("error", "")), triggered.stdout
    assert triggered.json().get("error", {}).get("type") != "UsageError" or "runs" in triggered.stderr
    # The shorthand keeps working for every other name.
    short = env.run("retrain", "fraud", "-o", "json")
    assert short.json() != listed.json()


def test_a_mistyped_subcommand_taken_for_a_model_gets_the_close_subcommand(opsctl_env: OpsctlEnv) -> None:
    # `opsctl drift comapre A B` reads as `drift check comapre A B`: the error names what was probably meant.
    result = opsctl_env.run("drift", "comapre", "ref.csv", "cur.csv")
    assert result.code == 2
    assert result.stderr.strip() == ("opsctl: unrecognized arguments: ref.csv cur.csv (see `opsctl --help`);"
                                     " did you mean `opsctl drift compare`?")
    # A word far from every subcommand is a model name, and gets no guess.
    far = opsctl_env.run("drift", "fraud", "extra.csv")
    assert far.code == 2 and "did you mean" not in far.stderr
