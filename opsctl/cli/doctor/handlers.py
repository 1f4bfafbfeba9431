"""``opsctl doctor``: run the checks, print one row per finding (or the JSON report)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from opsctl.cli.context import CliContext
from opsctl.errors import ConfigError, DaemonUnavailableError, OpsctlError

if TYPE_CHECKING:
    from opsctl.config import Settings
    from opsctl.services.doctor import DaemonCheck


def doctor(ctx: CliContext) -> int:
    from opsctl.clock import SystemClock
    from opsctl.core.doctor import EXIT_FAIL, Finding, Status
    from opsctl.services.doctor import run_doctor

    try:
        settings = ctx.settings.validate()
    except ConfigError as error:
        finding = Finding("config", Status.FAIL, str(error), "fix the config (opsctl config check names the key)")
        if ctx.out.json:
            ctx.out.emit_json({"exit_code": EXIT_FAIL, "findings": [finding.to_json()]})
        else:
            ctx.out.table(["CHECK", "STATUS", "FINDING", "FIX"], [(finding.check, "fail", finding.summary,
                                                                   finding.fix)])
        return EXIT_FAIL

    report = run_doctor(settings, SystemClock(), daemon_check(ctx, settings))
    if ctx.out.json:
        ctx.out.emit_json(report.to_json())
    else:
        rows = [(f.check, " ".join(x for x in (f.model, f.version) if x), f.status.value, f.summary, f.fix)
                for f in report.findings]
        ctx.out.table(["CHECK", "VERSION", "STATUS", "FINDING", "FIX"], rows)
    return report.exit_code


def daemon_check(ctx: CliContext, settings: Settings) -> Callable[[], DaemonCheck]:
    """The doctor's daemon probe through this command's client: up or not, and its failing jobs."""
    from opsctl.services.doctor import DaemonCheck

    def check() -> DaemonCheck:
        try:
            with ctx.daemon() as client:
                status = client.status_json()
        except DaemonUnavailableError as error:
            return DaemonCheck(False, str(error))
        except OpsctlError as error:
            return DaemonCheck(False, f"the daemon answered with an error: {error}")
        jobs = status.get("jobs", [])
        failing = tuple(f"{j.get('name', '?')}: {j.get('last_summary', '')}"[:300] for j in jobs
                        if j.get("last_ok") is False)
        return DaemonCheck(True, f"up at {settings.daemon.socket}", failing)

    return check
