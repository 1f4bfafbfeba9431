"""Use case: ``opsctl doctor``, every integration checked live, each finding with what to fix.

Order: the daemon, its socket and token, the state dir's disk; Prometheus reachable and authenticated,
the clock against Prometheus', staleness against the scrape interval; for each deployed version the six
SLA queries (which return a series and, for those that do not, why) and its freshness; the
Alertmanagers; the prediction log dirs. A check that cannot run because an earlier one failed (no
Prometheus, no query checks) says so as ``unknown``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.adapters.doctor_probe import (
    PrometheusProbe,
    alertmanager_reachable,
    deployed_versions,
    disk_usage,
    log_dir_facts,
    socket_mode,
)
from opsctl.adapters.preflight import check_socket_path, read_token_file
from opsctl.adapters.prometheus import PrometheusSource
from opsctl.adapters.registry_reader import RegistryLocation
from opsctl.clock import Clock, utc_iso
from opsctl.core.doctor import (
    DoctorReport,
    Finding,
    Status,
    diagnose_clock_skew,
    diagnose_disk,
    diagnose_freshness,
    diagnose_log_dir,
    diagnose_query,
    diagnose_staleness_setting,
)
from opsctl.errors import ConfigError, MetricsSourceError, OpsctlError

if TYPE_CHECKING:
    from datetime import datetime

    from opsctl.config import Settings


@dataclass(frozen=True)
class DaemonCheck:
    """Whether the daemon answered (the CLI asks it through the typed client) and what it said."""

    up: bool
    detail: str
    failing_jobs: tuple[str, ...] = ()  # "name: last summary" of jobs whose last run failed


# A prediction log untouched for this many ingest intervals (at least an hour) is "not recent".
LOG_RECENT_MIN_SECONDS = 3600.0


def run_doctor(settings: Settings, clock: Clock, daemon_check: Callable[[], DaemonCheck],
               source_factory: Callable[..., PrometheusSource] = PrometheusSource) -> DoctorReport:
    """Check every integration now; the report's ``exit_code`` follows ``opsctl health``'s convention."""
    now = clock.now()
    shown = "no config file, the built-in defaults" if settings.source == "defaults" else settings.source
    findings: list[Finding] = [Finding("config", Status.OK, f"{shown}: valid")]
    findings.extend(_daemon_findings(settings, daemon_check))
    free, total, measured = disk_usage(Path(settings.daemon.state_dir))
    findings.append(diagnose_disk(measured, free, total))
    queries: dict[str, str] = {}
    with source_factory(settings.prometheus) as source:
        findings.extend(_prometheus_findings(settings, PrometheusProbe(source), now, queries))
    findings.extend(_alertmanager_findings(settings))
    recent = max(LOG_RECENT_MIN_SECONDS, 10 * settings.jobs.ingest_seconds)
    base = Path(settings.source).parent if settings.source not in ("defaults", "<config>") else Path.cwd()
    for entry in settings.ingest.log_dirs:
        path = Path(entry) if os.path.isabs(entry) else base / entry
        findings.append(diagnose_log_dir(log_dir_facts(path, now.timestamp()), recent))
    return DoctorReport(utc_iso(now), tuple(findings), queries)


def _daemon_findings(settings: Settings, daemon_check: Callable[[], DaemonCheck]) -> list[Finding]:
    daemon = settings.daemon
    out: list[Finding] = []
    answer = daemon_check()
    if not answer.up:
        out.append(Finding("daemon", Status.FAIL, answer.detail, f"start it: {daemon.start_command}"))
    elif answer.failing_jobs:
        out.append(Finding("daemon", Status.WARN, f"{answer.detail}; jobs whose last run failed: "
                           + "; ".join(answer.failing_jobs), "see `opsctl status` and the daemon's log"))
    else:
        out.append(Finding("daemon", Status.OK, answer.detail))
    socket = Path(daemon.socket)
    try:
        check_socket_path(socket)
    except ConfigError as error:
        out.append(Finding("socket", Status.FAIL, str(error), "remove the file or choose another [daemon] socket"))
    else:
        mode = socket_mode(socket)
        wanted = int(daemon.socket_mode, 8)
        if mode is None:
            out.append(Finding("socket", Status.UNKNOWN, f"{socket} does not exist (the daemon creates it)"))
        elif mode & 0o002:
            out.append(Finding("socket", Status.FAIL, f"{socket} has mode {mode:04o}: every local user can change "
                               "production", f"chmod {daemon.socket_mode} {socket} and restart the daemon"))
        elif mode != wanted:
            out.append(Finding("socket", Status.WARN, f"{socket} has mode {mode:04o}, [daemon] socket_mode says "
                               f"{daemon.socket_mode}", "restart the daemon so it applies socket_mode"))
        else:
            out.append(Finding("socket", Status.OK, f"{socket} mode {mode:04o}"))
    if daemon.token_file:
        try:
            tokens = read_token_file(Path(daemon.token_file))
        except ConfigError as error:
            out.append(Finding("token file", Status.FAIL, str(error), "fix the token file (chmod 600, one token "
                               "per line)"))
        else:
            out.append(Finding("token file", Status.OK, f"{daemon.token_file}: {len(tokens)} tokens, owner-only"))
    return out


def _prometheus_findings(settings: Settings, probe: PrometheusProbe, now: datetime,
                         queries: dict[str, str]) -> list[Finding]:
    prom = settings.prometheus
    out: list[Finding] = []
    try:
        skew, round_trip = probe.ping()
    except MetricsSourceError as error:
        out.append(Finding("prometheus", Status.FAIL, str(error), _prometheus_fix(str(error))))
        out.append(Finding("queries", Status.UNKNOWN, "not checked: Prometheus did not answer"))
        return out
    out.append(Finding("prometheus", Status.OK, f"{prom.url} answers ({prom.http.scheme_note})"))
    if prom.tls_config.insecure_skip_verify:
        out.append(Finding("prometheus TLS", Status.WARN, "insecure_skip_verify = true: any server can pose as "
                           "Prometheus and feed health verdicts", "set [prometheus.tls_config] ca_file instead"))
    out.append(diagnose_clock_skew(skew, round_trip, prom.staleness_seconds))
    try:
        intervals, down = probe.targets()
    except MetricsSourceError as error:
        intervals, down = [], []
        out.append(Finding("targets", Status.UNKNOWN, f"cannot list scrape targets: {error}"))
    out.append(diagnose_staleness_setting(prom.staleness_seconds, intervals))
    try:
        versions = deployed_versions(RegistryLocation.of(settings.registry, settings.daemon.registry_path))
    except OpsctlError as error:
        out.append(Finding("queries", Status.UNKNOWN, f"cannot read the registry: {error}"))
        return out
    if not versions:
        out.append(Finding("queries", Status.UNKNOWN, "no deployed versions in the registry, nothing to query",
                           "register and promote a version (opsctl register / promote)"))
        return out
    interval = max(intervals) if intervals else None
    for model, version in versions:
        try:
            missing = prom.not_provided()
            for name, template in prom.queries.items():
                if template is None:
                    # The preset's server does not export it: say so, never "ok".
                    out.append(Finding(f"query {name}", Status.UNKNOWN, missing.get(name) or "no template",
                                       f"add [prometheus.queries] {name} if your servers export it",
                                       model=model, version=version))
                    continue
                facts, promql = probe.query_facts(name, template, model, version, now)
                queries.setdefault(name, promql)
                out.append(diagnose_query(facts, model_label=prom.model_label, version_label=prom.version_label))
            out.append(diagnose_freshness(probe.freshness(model, version, now, interval, down)))
        except MetricsSourceError as error:
            out.append(Finding("queries", Status.UNKNOWN, f"stopped: {error}", model=model, version=version))
    return out


def _prometheus_fix(reason: str) -> str:
    if "authentication failed" in reason or "authorization failed" in reason:
        return "check [prometheus.basic_auth] username / password_file (or [prometheus.authorization])"
    if reason.startswith("TLS:") or "TLS:" in reason:
        return "set [prometheus.tls_config] ca_file to the CA that signed Prometheus' certificate (server_name " \
               "when the URL's host is not in it)"
    if "cannot authenticate" in reason:
        return "fix the file named above"
    return "check [prometheus] url and that Prometheus is running and reachable from this host"


def _alertmanager_findings(settings: Settings) -> list[Finding]:
    am = settings.alertmanager
    if not am.alertmanager_urls:
        return [Finding("alertmanager", Status.WARN, "no Alertmanager configured: alerts are not sent anywhere",
                        "set [alertmanager] urls = [...]")]
    out = []
    for url in am.alertmanager_urls:
        ok, detail = alertmanager_reachable(am, url)
        if ok:
            out.append(Finding(f"alertmanager {url}", Status.OK, f"answers ({detail})"))
        else:
            out.append(Finding(f"alertmanager {url}", Status.FAIL, detail,
                               "check [alertmanager] urls, credentials and tls_config"))
    return out
