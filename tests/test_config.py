"""Config: found in the documented order, validated with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.config import Settings, find_config, load_file, load_settings, parse_settings
from opsctl.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "opsctl.toml"

MALFORMED = [
    ("[daemon\nstate_dir = 'x'", "not valid TOML", None),
    ("[deamon]\nstate_dir = 'x'", "did you mean [daemon]", "deamon"),
    ("[daemon]\nstate_dri = 'x'", "did you mean 'state_dir'", "daemon.state_dri"),
    ("[jobs]\nhealth_seconds = 'fast'", "must be a number", "jobs.health_seconds"),
    ("[jobs]\nhealth_seconds = -5", "health_seconds must be in (0, ", "jobs"),
    ("[jobs]\nhealth_seconds = true", "must be a number", "jobs.health_seconds"),
    ("[daemon]\ntcp_listen = '127.0.0.1:9000'", "requires token_file", "daemon"),
    ("[daemon]\ntcp_listen = 'localhost'\ntoken_file = 't'", "HOST:PORT", "daemon"),
    ("[daemon]\ntcp_listen = 'h:1'\ntoken_file = 't'\ntls_cert_file = 'c'", "give both or neither", "daemon"),
    ("[daemon]\ntls_cert_file = 'c'\ntls_key_file = 'k'", "set tcp_listen too", "daemon"),
    ("[daemon]\nsocket_mode = '0999'", "octal", "daemon"),
    ("[daemon]\nstate_dir = ''", "state_dir must not be empty", "daemon"),
    ("[daemon]\nsocket = { path = 'x' }", "must be a string", "daemon.socket"),
    ("daemon = 5", "must be a table", "daemon"),
    ("[ui]\nproduction = 'yes'", "must be true or false", "ui.production"),
    ("[daemon]\nretention_days = 0", "retention_days must be in (0, ", "daemon"),
    ("[sla]\nlatency_p95_ms = -1", "latency_p95_ms must be > 0", "sla"),
    ("[sla]\nlatency_p95_ms = 900\nlatency_p99_ms = 500", "must not be below latency_p95_ms", "sla"),
    ("[sla.models.fraud]\nlatency_p95_ms = 'fast'", "must be a number", "sla.models.fraud.latency_p95_ms"),
    ("[canary]\nstages = [50, 20]", "stages must be strictly increasing", "canary"),
    ("[canary]\nfailure_threshold = 0", "failure_threshold must be at least 1", "canary"),
    ("[performance]\nmax_relative_drop = 2", "max_relative_drop must lie strictly between 0 and 1", "performance"),
    ("[alerts]\nresend_interval_seconds = 0", "resend_interval_seconds must be > 0", "alerts"),
    ("[canary]\nstagez = [5]", "did you mean 'stages'", "canary.stagez"),
]


@pytest.mark.parametrize("text,problem,key", MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_config_is_rejected_naming_the_key(text: str, problem: str, key: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, path=Path("/etc/opsctl/opsctl.toml")).validate()
    message = str(caught.value)
    assert problem in message
    assert message.startswith("/etc/opsctl/opsctl.toml: ")
    if key is not None:
        assert f"[{key}]" in message


def test_missing_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_file(tmp_path / "nope.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_file(binary)


def test_lookup_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    user_config = home / ".config" / "opsctl" / "opsctl.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text("")
    assert find_config("explicit.toml", {"OPSCTL_CONFIG": "env.toml", "HOME": str(home)}) == Path("explicit.toml")
    assert find_config(None, {"OPSCTL_CONFIG": "env.toml", "HOME": str(home)}) == Path("env.toml")
    if not Path("/etc/opsctl/opsctl.toml").exists():
        assert find_config(None, {"HOME": str(home)}) == user_config
        assert find_config(None, {"HOME": str(tmp_path / "nobody")}) is None
        assert load_settings(None, {"HOME": str(tmp_path / "nobody")}) == Settings()


def test_relative_paths_resolve_next_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "opsctl.toml"
    config.write_text('[daemon]\nstate_dir = "state"\nsocket = "run/opsctl.sock"\n')
    settings = load_file(config)
    assert settings.daemon.state_dir == str(tmp_path / "state")
    assert settings.daemon.socket == str(tmp_path / "run" / "opsctl.sock")


def test_the_documented_example_config_is_valid() -> None:
    settings = load_file(EXAMPLE).validate()
    assert settings.source == str(EXAMPLE)


def test_a_broken_policy_section_does_not_block_break_glass_commands() -> None:
    """A typo in [canary] must not stop `opsctl rollback`; the daemon and `config check` refuse it."""
    settings = parse_settings("[daemon]\nstate_dir = '/x'\n[canary]\nfailure_threshold = 0\n")
    assert settings.daemon.state_dir == "/x"
    with pytest.raises(ConfigError, match="failure_threshold"):
        settings.validate()


def test_retired_canary_keys_are_dropped_with_a_warning_and_the_rest_still_applies() -> None:
    from opsctl.config import parse_settings

    settings = parse_settings("[canary]\nmin_requests = 500\naccuracy_tolerance = 0.03\n").validate()
    assert settings.canary.accuracy_tolerance == 0.03
    assert len(settings.warnings) == 1
    assert settings.warnings[0].startswith("canary.min_requests is deprecated and ignored")
