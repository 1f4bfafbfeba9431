"""The unit `opsctl config example --systemd` writes, from the shipped template."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.shipped_files import render_unit, shipped_path

TEMPLATE = shipped_path("systemd", "opsctl.service").read_text()


def test_the_unit_runs_the_given_opsctl_and_documents_an_existing_file() -> None:
    unit = render_unit(TEMPLATE, "/srv/o%ps/bin/opsctl", Path("/srv/doc/README.md"))
    lines = unit.splitlines()
    assert "ExecStart=/srv/o%%ps/bin/opsctl daemon --config /etc/opsctl/opsctl.toml" in lines  # % escaped
    assert [line for line in lines if line.startswith("Documentation=")] == ["Documentation=file:///srv/doc/README.md"]
    assert "Type=notify" in lines and "ExecReload=/bin/kill -HUP $MAINPID" in lines


def test_notify_reload_drops_exec_reload() -> None:
    lines = render_unit(TEMPLATE, "/opt/opsctl/venv/bin/opsctl", Path("/d/README.md"), notify_reload=True).splitlines()
    assert "Type=notify-reload" in lines and "Type=notify" not in lines
    assert not [line for line in lines if line.startswith("ExecReload=")]


@pytest.mark.parametrize("path", ["opsctl", "/opt/my venv/bin/opsctl", '/opt/"x"/opsctl'])
def test_a_path_the_unit_cannot_carry_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="absolute path without spaces"):
        render_unit(TEMPLATE, path, Path("/d/README.md"))
