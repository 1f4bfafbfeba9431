"""The files opsctl ships beside its code: the documented config, the systemd unit and its README, the
Prometheus sample config and rules, the Grafana dashboard and the alert runbooks.

An installed wheel carries them as package data under ``opsctl/shipped/``, with the same relative paths
as in the repository (``config/opsctl.toml``, ``docs/runbooks/OpsctlDaemonDown.md`` ...); a source
checkout or an editable install reads the repository's own files.

>>> shipped_path("config", "opsctl.toml").name
'opsctl.toml'
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
INSTALLED_ROOT = _PACKAGE / "shipped"  # the wheel's package data (see pyproject.toml, opsctl.shipped)
SOURCE_ROOT = _PACKAGE.parent  # the repository, for a checkout or an editable install


def shipped_root() -> Path:
    """The folder the shipped files' relative paths start from: the wheel's copy when installed."""
    return INSTALLED_ROOT if INSTALLED_ROOT.is_dir() else SOURCE_ROOT


def shipped_path(*parts: str) -> Path:
    """One shipped file, e.g. ``shipped_path("systemd", "opsctl.service")``."""
    return shipped_root().joinpath(*parts)


# The first systemd release that knows Type=notify-reload; older ones ignore the line and run Type=simple.
NOTIFY_RELOAD_SINCE = 253


def render_unit(template: str, opsctl: str, documentation: Path, *, notify_reload: bool = False) -> str:
    """The systemd unit for one installation: ``ExecStart=`` runs ``opsctl`` (an absolute path) and
    ``Documentation=`` names ``documentation``, a file that exists on this host. ``notify_reload``
    (systemd 253+) turns ``Type=notify`` into ``Type=notify-reload``, which sends SIGHUP itself and
    waits for the daemon's ``READY=1``, so ``ExecReload=`` goes.

    >>> unit = "[Unit]\\nDescription=d\\n[Service]\\nExecStart=/opt/x/opsctl daemon --config /etc/opsctl/opsctl.toml\\n"
    >>> print(render_unit(unit, "/srv/venv/bin/opsctl", Path("/srv/doc/README.md")))
    [Unit]
    Description=d
    Documentation=file:///srv/doc/README.md
    [Service]
    ExecStart=/srv/venv/bin/opsctl daemon --config /etc/opsctl/opsctl.toml
    <BLANKLINE>
    """
    if not opsctl.startswith("/") or any(c.isspace() or c in "\"'\\" for c in opsctl):
        raise ValueError(f"the unit needs an absolute path without spaces or quotes for opsctl, got {opsctl!r}")
    escaped = opsctl.replace("%", "%%")  # systemd expands %-specifiers in ExecStart=
    lines = []
    for line in template.splitlines():
        if line.startswith("Documentation="):
            continue  # the template's own, if any: replaced by the one that exists here
        if notify_reload and line.startswith("ExecReload="):
            continue
        if notify_reload and line == "Type=notify":
            line = "Type=notify-reload"
        if line.startswith("ExecStart="):
            _, _, arguments = line.partition("=")[2].partition(" ")
            line = f"ExecStart={escaped} {arguments}"
        lines.append(line)
        if line.startswith("Description="):
            lines.append(f"Documentation={documentation.as_uri().replace('%', '%%')}")
    return "\n".join(lines) + "\n"
