"""``opsctl config check`` on configs written for older releases."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.cli import OpsctlEnv

_RETIRED = ("min_requests", "min_labels", "latency_ratio_tolerance", "latency_slack_seconds")


def test_config_check_accepts_retired_canary_keys_with_one_warning_each(opsctl_env: OpsctlEnv,
                                                                        tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[canary]\nmin_requests = 500\nmin_labels = 50\nlatency_ratio_tolerance = 1.2\n"
                   "latency_slack_seconds = 0.05\naccuracy_tolerance = 0.03\n")
    result = opsctl_env.run("config", "check", str(old))
    assert result.code == 0, result.stderr
    assert f"{old}: ok" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(_RETIRED)
    for key, line in zip(_RETIRED, warnings, strict=True):
        assert f"canary.{key} is deprecated and ignored" in line
        assert "sequential" in line and "no minimum sample" in line
    document = opsctl_env.run("config", "check", str(old), "-o", "json").json()
    assert document["ok"] is True and len(document["warnings"]) == len(_RETIRED)


def test_a_retired_key_does_not_hide_a_real_typo(opsctl_env: OpsctlEnv, tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("[canary]\nmin_requests = 500\naccuracy_tolerence = 0.03\n")
    result = opsctl_env.run("config", "check", str(typo))
    assert result.code == 2
    assert "unknown key 'accuracy_tolerence'" in result.stderr
