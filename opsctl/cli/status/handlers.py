"""``opsctl status``: daemon up/down, jobs, and what each model serves.

Exit 0 when the daemon answers; 6 when it does not (the registry's view is
still printed, so the on-call engineer sees what is deployed either way).
"""

from __future__ import annotations

from typing import Any

from opsctl.cli.context import CliContext
from opsctl.core.durations import format_duration
from opsctl.errors import DaemonUnavailableError


def _daemon_status(ctx: CliContext) -> dict[str, Any]:
    with ctx.daemon() as client:
        return client.status_json()


def status(ctx: CliContext) -> int:
    try:
        document = _daemon_status(ctx)
        code = 0
    except DaemonUnavailableError as error:
        from opsctl.backends import DirectBackend

        backend = DirectBackend(ctx.settings)
        deployments = backend.deployments()
        document = {"daemon": {"up": False, "error": str(error), "socket": ctx.settings.daemon.socket},
                    "jobs": [], "models": [d.to_json() for d in deployments], "source": "registry"}
        if ctx.settings.registry.engine == "postgresql":  # the other daemons on the shared registry, as it says
            from opsctl.adapters.daemon_roster import read_roster
            from opsctl.clock import SystemClock

            document["daemons"] = [d.to_json() for d in read_roster(
                backend.registry, now=SystemClock().now(), ttl_seconds=ctx.settings.registry.lease_ttl_seconds)]
        ctx.out.message(f"opsctl: {error}; showing the registry's view")
        code = DaemonUnavailableError.exit_code
    if ctx.out.json:
        ctx.out.emit_json(document)
        return code
    daemon = document["daemon"]
    if daemon["up"]:
        uptime = format_duration(daemon["uptime_seconds"])
        ctx.out.line(ctx.out.style("daemon: up", "green", "bold") +
                     f"  version {daemon['version']}  pid {daemon['pid']}  uptime {uptime}")
    else:
        ctx.out.line(ctx.out.style("daemon: DOWN", "red", "bold") + f"  ({daemon['socket']})")
    leader = document.get("leader")
    if leader is not None:  # several daemons on one PostgreSQL registry
        ctx.out.line(_leader_line(leader))
    if document.get("daemons"):
        ctx.out.line()
        ctx.out.table(["daemon", "version", "api", "role", "last heartbeat"],
                      [[d["holder"] + (" (this)" if d.get("this_daemon") else ""), d["version"], d["api"] or None,
                        _role(d), d["heartbeat_at"]] for d in document["daemons"]])
    if document["jobs"]:
        ctx.out.line()
        ctx.out.table(["job", "every", "last run", "result", "took", "summary"],
                      [[j["name"], format_duration(j["interval_seconds"]), j["last_finished_at"],
                        {True: "ok", False: "FAILED", None: "-"}[j["last_ok"]],
                        f"{j['last_duration_seconds'] * 1000:.0f} ms" if j["last_duration_seconds"] is not None
                        else None, j["last_summary"]] for j in document["jobs"]])
    ctx.out.line()
    ctx.out.table(["model", "production", "canary", "weight"],
                  [[m["model"], m["production_version"], m["canary_version"],
                    f"{m['canary_weight']:g}%" if m["canary_version"] else None] for m in document["models"]],
                  empty="no models registered yet")
    return code


def _leader_line(leader: dict[str, Any]) -> str:
    lease = leader.get("lease")
    role = "this daemon leads" if leader.get("leading") else "this daemon stands by"
    if lease is None:
        return f"leader: none yet ({role})"
    return f"leader: {lease['holder']}  epoch {lease['epoch']}  since {lease['acquired_at']}  ({role})"


def _role(daemon: dict[str, Any]) -> str:
    if daemon["stale"]:
        return "STALE (no heartbeat within the lease TTL)"
    if daemon["leading"]:
        return f"leader  epoch {daemon['epoch']}  since {daemon['leading_since']}"
    return "standby"
