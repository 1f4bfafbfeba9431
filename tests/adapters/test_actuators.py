"""Actuators and hooks: real subprocesses and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from opsctl.adapters.actuators import (
    ActuatorSettings,
    CommandActuator,
    HookCall,
    Hooks,
    HookSpec,
    Retrying,
    Split,
    WebhookActuator,
    build_actuator,
)
from opsctl.errors import ActuatorError
from opsctl.settings_loader import load_dataclass
from tests.fixtures.prometheus import WebhookRecorder

SPLIT = Split("fraud", "v1", "v2", 20.0)


def recorder_script(tmp_path: Path) -> tuple[list[str], Path]:
    out = tmp_path / "calls.jsonl"
    script = tmp_path / "set_weight.py"
    script.write_text(
        "import json, os, sys\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'env': {k: v for k, v in os.environ.items()"
        " if k.startswith('OPSCTL_')}}) + '\\n')\n"
    )
    return [sys.executable, str(script), "{model}", "{canary_version}={canary_weight}",
            "{production_version}={production_weight}"], out


def test_command_actuator_passes_versions_and_weights_as_args_and_env(tmp_path: Path) -> None:
    argv, out = recorder_script(tmp_path)
    CommandActuator(argv).apply(SPLIT)
    call = json.loads(out.read_text())
    assert call["argv"] == ["fraud", "v2=20", "v1=80"]
    assert call["env"]["OPSCTL_CANARY_WEIGHT"] == "20" and call["env"]["OPSCTL_PRODUCTION_VERSION"] == "v1"


def test_command_failure_and_timeout_raise_actuator_error(tmp_path: Path) -> None:
    with pytest.raises(ActuatorError, match="exited with 3: nope"):
        CommandActuator([sys.executable, "-c", "import sys; print('nope', file=sys.stderr); sys.exit(3)"]).apply(SPLIT)
    with pytest.raises(ActuatorError, match="timed out"):
        CommandActuator([sys.executable, "-c", "import time; time.sleep(30)"], timeout_seconds=0.3).apply(SPLIT)
    with pytest.raises(ActuatorError, match="cannot run"):
        CommandActuator([str(tmp_path / "missing")]).apply(SPLIT)


def test_webhook_actuator_posts_the_split_and_checks_the_status() -> None:
    recorder = WebhookRecorder()
    try:
        WebhookActuator(recorder.url, timeout_seconds=2).apply(SPLIT)
        assert recorder.bodies[-1] == {"type": "traffic_split", **SPLIT.to_json()}
        recorder.status = 503
        with pytest.raises(ActuatorError, match="HTTP 503"):
            WebhookActuator(recorder.url, timeout_seconds=2).apply(SPLIT)
    finally:
        recorder.close()
    with pytest.raises(ActuatorError, match="unreachable"):
        WebhookActuator(recorder.url, timeout_seconds=1).apply(SPLIT)


class Flaky:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def apply(self, split: Split) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ActuatorError(f"attempt {self.calls} failed")

    def current_weight(self, model: str) -> float | None:
        return None


def test_retrying_retries_with_backoff_then_gives_up() -> None:
    slept: list[float] = []
    ok = Flaky(2)
    Retrying(ok, attempts=3, backoff_seconds=0.5, sleep=slept.append).apply(SPLIT)
    assert ok.calls == 3 and slept == [0.5, 1.0]
    bad = Flaky(5)
    with pytest.raises(ActuatorError, match="after 3 attempts"):
        Retrying(bad, attempts=3, backoff_seconds=0, sleep=slept.append).apply(SPLIT)
    assert bad.calls == 3


def test_hooks_run_commands_and_webhooks_and_skip_unconfigured(tmp_path: Path) -> None:
    argv, out = recorder_script(tmp_path)
    recorder = WebhookRecorder()
    try:
        hooks = Hooks(ActuatorSettings(pre_rollout=HookSpec(command=argv), rollback=HookSpec(url=recorder.url)))
        hooks.run(HookCall("pre_rollout", "fraud", "v2", "v1", 0.0))
        assert json.loads(out.read_text())["env"]["OPSCTL_HOOK"] == "pre_rollout"
        hooks.run(HookCall("rollback", "fraud", "v2", "v1", 0.0))
        assert recorder.bodies[-1]["hook"] == "rollback" and recorder.bodies[-1]["canary_version"] == "v2"
        hooks.run(HookCall("post_rollout", "fraud", "v2", "v1", 100.0))  # not configured: nothing to do
        assert not hooks.configured("post_rollout")
    finally:
        recorder.close()


def test_settings_load_from_toml_tables_and_reject_nonsense() -> None:
    settings = load_dataclass(ActuatorSettings, {"kind": "command", "command": ["x", "{model}"],
                                                 "confirm_promotion": {"url": "http://127.0.0.1:1/ok"}},
                              key="actuators", path="t.toml")
    assert settings.confirm_promotion.url == "http://127.0.0.1:1/ok"
    assert build_actuator(settings).name == "command" and build_actuator(ActuatorSettings()).name == "routing_table"
    with pytest.raises(ValueError, match="needs command"):
        ActuatorSettings(kind="command")
    with pytest.raises(ValueError, match="kind must be"):
        ActuatorSettings(kind="nginx")
    with pytest.raises(ValueError, match="not both"):
        HookSpec(command=["x"], url="http://x")
