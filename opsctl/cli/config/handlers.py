"""``opsctl config check``: validate a config file before it reaches the daemon."""

from __future__ import annotations

from pathlib import Path

from opsctl.cli.context import CliContext
from opsctl.config import find_config, load_file
from opsctl.errors import ConfigError


def check(ctx: CliContext) -> int:
    path = Path(ctx.args.file) if ctx.args.file else find_config(getattr(ctx.args, "config", None))
    if path is None:
        ctx.out.message("no config file found; the built-in defaults apply (nothing to check)")
        if ctx.out.json:
            ctx.out.emit_json({"ok": True, "file": None})
        return 0
    settings = load_file(path).validate()
    # The daemon's start-up checks that need no binding (state dir, socket dir, token file).
    from opsctl.adapters.preflight import preflight

    preflight(settings)
    for warning in settings.warnings:
        ctx.out.message(f"warning: {path}: {warning}")
    if ctx.out.json:
        ctx.out.emit_json({"ok": True, "file": str(path), "state_dir": settings.daemon.state_dir,
                           "socket": settings.daemon.socket, "warnings": list(settings.warnings)})
    else:
        ctx.out.line(f"{path}: ok")
    return 0


_EXAMPLES = {
    "config": ("config", "opsctl.toml"),
    "systemd": ("systemd", "opsctl.service"),
    "prometheus-config": ("config", "prometheus", "prometheus.yml"),
    "prometheus-rules": ("config", "prometheus", "alerts.yml"),
    "grafana": ("config", "grafana", "opsctl-sla.json"),
}


def example(ctx: CliContext) -> int:
    """Print one shipped file, adapted to this installation where it names paths."""
    import re

    from opsctl.errors import NotFoundError
    from opsctl.shipped_files import NOTIFY_RELOAD_SINCE, render_unit, shipped_path

    if ctx.args.runbook is not None:
        folder = shipped_path("docs", "runbooks")
        pages = sorted(p.stem for p in folder.glob("*.md") if p.stem != "README")
        if ctx.args.runbook not in pages:
            raise NotFoundError("runbook", ctx.args.runbook, f"opsctl ships: {', '.join(pages)}")
        ctx.out.stdout.write((folder / f"{ctx.args.runbook}.md").read_text(encoding="utf-8"))
        return 0
    text = shipped_path(*_EXAMPLES[ctx.args.example]).read_text(encoding="utf-8")
    if ctx.args.example == "systemd":
        opsctl = installed_opsctl()
        systemd = systemd_version()
        notify_reload = systemd is not None and systemd >= NOTIFY_RELOAD_SINCE
        try:
            text = render_unit(text, opsctl, shipped_path("systemd", "README.md"), notify_reload=notify_reload)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if notify_reload:
            ctx.out.message(f"note: Type=notify-reload for systemd {systemd} on this host; a host with systemd older"
                            f" than {NOTIFY_RELOAD_SINCE} needs Type=notify and ExecReload= (the shipped template)")
        if opsctl.startswith(("/home/", "/root/", "/run/user/")):
            ctx.out.message(f"warning: {opsctl} is under a home directory, which the unit's ProtectHome=yes hides"
                            " from the daemon; install opsctl elsewhere (e.g. a venv in /opt/opsctl)")
    elif ctx.args.example == "prometheus-rules":
        # The rules name their pages relative to the source tree; point them at the copies installed here.
        base = shipped_path("docs", "runbooks").as_uri()
        text = re.sub(r'(runbook_url:\s*")docs/runbooks/', lambda m: f"{m.group(1)}{base}/", text)
    ctx.out.stdout.write(text)
    return 0


def installed_opsctl() -> str:
    """The absolute path of the ``opsctl`` that is running (its console script), else the one on PATH."""
    import os
    import shutil
    import sys

    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "opsctl" and os.access(argv0, os.X_OK):
        return argv0
    found = shutil.which("opsctl")
    if found is None:
        raise ConfigError("cannot find the installed opsctl (not run as `opsctl` and none on PATH); "
                          "run this command with the opsctl the service should use")
    return os.path.abspath(found)


def systemd_version() -> int | None:
    """This host's systemd version (``systemctl --version``), or None without systemd."""
    import re
    import shutil
    import subprocess

    for tool in ("systemctl", "systemd-analyze"):
        path = shutil.which(tool)
        if path is None:
            continue
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.match(r"systemd (\d+)", done.stdout)
        if match:
            return int(match.group(1))
    return None
