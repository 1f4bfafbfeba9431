"""The token file's lines: TOKEN IDENTITY [trusted-proxy|scrape]."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.adapters.preflight import read_token_file
from opsctl.errors import ConfigError


def _tokens(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_scope_markers(tmp_path: Path) -> None:
    tokens = read_token_file(_tokens(tmp_path, "a" * 20 + " admin\n" + "b" * 20 + " prometheus scrape\n"
                                     + "c" * 20 + " grafana trusted-proxy\n"))
    assert [(t.identity, t.scrape_only, t.trusted_proxy) for t in tokens] == [
        ("admin", False, False), ("prometheus", True, False), ("grafana", False, True)]


def test_an_unknown_marker_is_refused_with_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 1: expected 'TOKEN IDENTITY \[trusted-proxy\|scrape\]'"):
        read_token_file(_tokens(tmp_path, "a" * 20 + " prometheus read-only\n"))
