"""Live probes for ``opsctl doctor``: each gathers plain facts (``opsctl.core.doctor``) from Prometheus,
the Alertmanagers, the file system and the registry; the diagnosis is the core's."""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import httpx

from opsctl.adapters.alertmanager import AlertmanagerSettings
from opsctl.adapters.http_config import build_client, describe_http_error, describe_status
from opsctl.adapters.prometheus import PrometheusSource, promql_selector, render
from opsctl.adapters.registry_reader import Where, connect_read_only
from opsctl.core.doctor import (
    FreshnessFacts,
    LogDirFacts,
    QueryFacts,
    SelectorFacts,
    has_extra_matchers,
    similar_names,
    vector_selectors,
)
from opsctl.errors import ConfigError, MetricsSourceError, NotFoundError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float | None:
    """Seconds in a Prometheus duration like ``1m30s``; None when it is not one."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def deployed_versions(registry: Where) -> list[tuple[str, str]]:
    """(model, version) of every production and canary version in the registry (read-only); none without one."""
    try:
        conn = connect_read_only(registry)
    except NotFoundError:
        return []
    with closing(conn):
        rows = conn.execute("SELECT model, production_version, canary_version FROM deployments ORDER BY model")
        out: list[tuple[str, str]] = []
        for row in rows:
            for version in (row["production_version"], row["canary_version"]):
                if version and (row["model"], version) not in out:
                    out.append((row["model"], version))
    return out


class PrometheusProbe:
    """The doctor's questions to Prometheus, through the same authenticated client as the health job."""

    def __init__(self, source: PrometheusSource) -> None:
        self.source = source
        self.settings = source.settings
        self._names: list[str] | None = None

    def ping(self) -> tuple[float | None, float]:
        """Prometheus' clock minus ours (seconds, from the middle of the round trip) and the round trip."""
        started = time.time()
        result = self.source.query("vector(time())")
        ended = time.time()
        value = result[0][1] if result else None
        return (None if value is None else value - (started + ended) / 2), ended - started

    def metric_names(self) -> list[str]:
        """Metric names Prometheus has, within the ``[prometheus] matchers`` (a team's slice of a shared one)."""
        if self._names is None:
            scope = promql_selector(dict(self.settings.matchers))
            params = {"match[]": f"{{{scope}}}"} if scope else None
            self._names = [str(n) for n in self.source.api_get("/api/v1/label/__name__/values", params) or []]
        return self._names

    def targets(self) -> tuple[list[float], list[str]]:
        """Scrape intervals of the active targets, and "instance: error" of the ones that are down."""
        data = self.source.api_get("/api/v1/targets", {"state": "active"}) or {}
        intervals: list[float] = []
        down: list[str] = []
        for target in data.get("activeTargets", []):
            seconds = duration_seconds(str(target.get("scrapeInterval", "")))
            if seconds is not None:
                intervals.append(seconds)
            if target.get("health") != "up":
                instance = target.get("labels", {}).get("instance") or target.get("scrapeUrl", "?")
                down.append(f"{instance}: {target.get('lastError') or target.get('health')}")
        return intervals, down

    def _has_series(self, selector: str, at: datetime) -> bool:
        return bool(self.source.query(f"count(last_over_time({selector}[{self.settings.window}]))", at=at))

    def _scope(self, model: str, version: str) -> str:
        s = self.settings
        return promql_selector({**dict(s.matchers), s.model_label: model, s.version_label: version})

    def query_facts(self, name: str, template: str, model: str, version: str, at: datetime) -> tuple[QueryFacts, str]:
        """Evaluate one SLA query for one version and, when it returns nothing, gather why; and its PromQL."""
        s = self.settings
        scope = self._scope(model, version)
        promql = render(template, window=s.window, model_label=s.model_label, version_label=s.version_label,
                        selector=scope)
        try:
            result = self.source.query(promql, at=at)
        except MetricsSourceError as error:
            if "rejected the query" not in str(error) and "instant vector" not in str(error):
                raise
            return QueryFacts(name, model, version, False, error=str(error)), promql
        for labels, value in result:
            if labels.get(s.model_label, model) == model and labels.get(s.version_label, version) == version:
                return QueryFacts(name, model, version, True, value=value), promql
        selectors = tuple(self._selector_facts(metric, text, scope, model, at)
                          for metric, text in vector_selectors(promql))
        return QueryFacts(name, model, version, False, selectors=selectors), promql

    def _selector_facts(self, metric: str, text: str, scope: str, model: str, at: datetime) -> SelectorFacts:
        s = self.settings
        names = self.metric_names()
        if metric not in names:
            return SelectorFacts(text, metric, False, False, similar_metrics=similar_names(metric, names))
        team = promql_selector(dict(s.matchers))
        labels = tuple(sorted(str(n) for n in self.source.api_get(
            "/api/v1/labels", {"match[]": f"{metric}{{{team}}}"}) or []))
        if scope not in text:
            # Not scoped to the version by the template ({selector} is elsewhere, e.g. `up` in availability):
            # only its existence says anything.
            return SelectorFacts(text, metric, False, True, labels, metric_has_version=True, selector_has_version=True)
        model_scope = promql_selector({**dict(s.matchers), s.model_label: model})
        versions = tuple(sorted(str(v) for v in self.source.api_get(
            f"/api/v1/label/{s.version_label}/values", {"match[]": f"{metric}{{{model_scope}}}"}) or []))
        return SelectorFacts(
            text, metric, has_extra_matchers(text, scope), True, labels,
            metric_has_version=self._has_series(f"{metric}{{{scope}}}", at),
            selector_has_version=self._has_series(text, at),
            versions_present=versions)

    def freshness(self, model: str, version: str, at: datetime, scrape_interval: float | None,
                  down: list[str]) -> FreshnessFacts:
        s = self.settings
        scope = self._scope(model, version)
        common = {"model_label": s.model_label, "version_label": s.version_label, "selector": scope}
        template = s.queries.request_rate or ""  # every preset has one; the settings check it uses {window}
        over_window = bool(self.source.query(render(template, window=s.window, **common), at=at))
        fresh = bool(self.source.query(render(template, window=s.staleness_window, **common), at=at))
        age = None
        if not fresh:
            selectors = vector_selectors(render(template, window=s.window, **common))
            scoped = [text for _metric, text in selectors if scope in text]
            if scoped:
                found = self.source.query(f"time() - max(max_over_time(timestamp({scoped[0]})[15m:1s]))", at=at)
                age = found[0][1] if found else None
        return FreshnessFacts(model, version, over_window, fresh, s.staleness_seconds, scrape_interval, age,
                              tuple(down[:5]))


def alertmanager_reachable(settings: AlertmanagerSettings, url: str) -> tuple[bool, str]:
    """(ok, why not) for one Alertmanager, with the configured credentials (GET /api/v2/status)."""
    try:
        client = build_client(settings.http, "alertmanager")
    except ConfigError as error:
        return False, str(error)
    with client:
        try:
            response = client.get(f"{url.rstrip('/')}/api/v2/status")
        except httpx.TransportError as error:
            return False, describe_http_error(error, url)
        except ConfigError as error:  # a secret file became unreadable
            return False, str(error)
    refused = describe_status(response.status_code, url)
    if refused:
        return False, refused
    if response.status_code != 200:
        return False, f"HTTP {response.status_code} at {url}"
    try:
        cluster = response.json().get("cluster", {}).get("status", "")
    except ValueError:
        return False, f"{url} answered, but not like an Alertmanager (no JSON status)"
    return True, f"cluster {cluster}" if cluster else "up"


def log_dir_facts(path: Path, now: float) -> LogDirFacts:
    if not path.exists():
        return LogDirFacts(str(path), False, False)
    if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
        return LogDirFacts(str(path), True, False)
    newest: float | None = None
    count = 0
    for entry in path.iterdir():
        if ".predictions.jsonl" in entry.name or ".feedback.jsonl" in entry.name:
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            count += 1
            newest = mtime if newest is None else max(newest, mtime)
    return LogDirFacts(str(path), True, True, None if newest is None else max(0.0, now - newest), count)


def disk_usage(path: Path) -> tuple[int | None, int | None, str]:
    """(free, total, the path measured): the state dir, or its nearest existing parent."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    try:
        usage = shutil.disk_usage(current)
    except OSError:
        return None, None, str(current)
    return usage.free, usage.total, str(current)


def socket_mode(path: Path) -> int | None:
    """The permission bits of the daemon's socket, None when there is none."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISSOCK(info.st_mode) else None
