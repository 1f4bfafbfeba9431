"""``opsctl doctor``: from facts probed live, say what works and what to fix.

Pure: the probes (``opsctl.adapters.doctor_probe``) gather plain facts; each ``diagnose_*`` function
turns facts into :class:`Finding` values with the cause and the fix. What could not be checked is
``unknown``, never ``ok``.

The query diagnosis follows the order a person would: the query answered → ok; otherwise, for each
metric selector in the query, does the metric exist at all (else: "does not exist", with similar names
Prometheus has); does it carry the configured model and version labels (else: the labels it does have);
does it have series for this version (else: the versions it has); does the selector's own extra
matcher (``status="error"``) select nothing while the bare metric has series for this version (a
counter labelled at first use: the ``or ... * 0`` idiom).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"


EXIT_OK, EXIT_WARN, EXIT_FAIL, EXIT_UNKNOWN = 0, 1, 2, 3


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``summary`` says what was found, ``fix`` what to do about it."""

    check: str  # e.g. "prometheus", "query error_rate fraud v2", "disk"
    status: Status
    summary: str
    fix: str = ""
    model: str | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status.value, "summary": self.summary, "fix": self.fix,
                "model": self.model, "version": self.version}


def exit_code(findings: Sequence[Finding]) -> int:
    """Like ``opsctl health``: 2 when something is broken, else 3 when something could not be checked,
    else 1 when something should be fixed, else 0."""
    statuses = {f.status for f in findings}
    if Status.FAIL in statuses:
        return EXIT_FAIL
    if Status.UNKNOWN in statuses:
        return EXIT_UNKNOWN
    if Status.WARN in statuses:
        return EXIT_WARN
    return EXIT_OK


# --------------------------------------------------------------------------- Prometheus queries


@dataclass(frozen=True)
class SelectorFacts:
    """What Prometheus holds for one vector selector of a query, for one model version."""

    selector: str  # as written in the rendered query, e.g. model_predictions_total{status="error",model="m"}
    metric: str
    extra_matchers: bool  # the selector has matchers beyond the model/version/[prometheus] matchers
    exists: bool  # the metric has at least one series (any labels)
    label_names: tuple[str, ...] = ()  # labels the metric's series carry
    metric_has_version: bool = False  # the metric has a series for this model and version
    selector_has_version: bool = False  # this exact selector has a series for this model and version
    versions_present: tuple[str, ...] = ()  # version label values the metric has for this model
    similar_metrics: tuple[str, ...] = ()  # existing metric names close to ``metric``


@dataclass(frozen=True)
class QueryFacts:
    """One of the six SLA queries evaluated for one deployed version."""

    name: str  # request_rate, error_rate, ...
    model: str
    version: str
    returned: bool  # the query returned a series for this version
    value: float | None = None  # None: no series or NaN
    error: str = ""  # Prometheus rejected the query
    selectors: tuple[SelectorFacts, ...] = ()


def diagnose_query(facts: QueryFacts, *, model_label: str, version_label: str) -> Finding:
    """The verdict on one query for one version, with the cause when it returns nothing."""
    check = f"query {facts.name}"
    where = {"model": facts.model, "version": facts.version}
    if facts.error:
        return Finding(check, Status.FAIL, f"Prometheus rejected the query: {facts.error}",
                       f"fix [prometheus.queries] {facts.name}", **where)
    if facts.returned:
        shown = "NaN (no traffic in the window?)" if facts.value is None else f"{facts.value:.4g}"
        return Finding(check, Status.OK, f"returns a series ({shown})", **where)
    for s in facts.selectors:
        if not s.exists:
            similar = f"; similar names Prometheus has: {', '.join(s.similar_metrics)}" if s.similar_metrics else ""
            return Finding(check, Status.FAIL, f"no series: metric {s.metric} does not exist in Prometheus{similar}",
                           f"use the exporter's metric name in [prometheus.queries] {facts.name} (or a preset), "
                           "or check that Prometheus scrapes the exporter", **where)
    for s in facts.selectors:
        missing = [label for label in (model_label, version_label) if label not in s.label_names]
        if missing:
            present = ", ".join(n for n in s.label_names if n != "__name__") or "(none)"
            return Finding(check, Status.FAIL,
                           f"no series: {s.metric} exists with other label names; it has no "
                           f"{' or '.join(repr(m) for m in missing)} label. Labels present: {present}",
                           "set [prometheus] model_label / version_label to the exporter's label names "
                           f"(chosen from: {present})", **where)
    for s in facts.selectors:
        if not s.metric_has_version:
            present = ", ".join(s.versions_present) or "none"
            return Finding(check, Status.FAIL,
                           f"no series: {s.metric} has no series with {model_label}={facts.model!r} "
                           f"{version_label}={facts.version!r}; versions it has for this model: {present}",
                           "check that the deployed version is serving and that its exporter reports the same "
                           "version string as the registry", **where)
    for s in facts.selectors:
        if s.extra_matchers and not s.selector_has_version:
            return Finding(check, Status.FAIL,
                           f"no series: {s.selector} has no series for this version while {s.metric} does "
                           "(a labelled counter that appears only at its first event, e.g. the first error)",
                           f"write the template with the `or ... * 0` idiom: (sum by (...) (rate({s.selector}[...]))"
                           f" or sum by (...) (rate({s.metric}{{...}}[...])) * 0), as the default error_rate does",
                           **where)
    return Finding(check, Status.FAIL,
                   "no series, although every metric it reads has series for this version: the expression "
                   "itself drops them (aggregation labels, a join, a function), or rate() has fewer than two "
                   "samples in the window yet",
                   f"run the query from `opsctl doctor -o json` in the Prometheus UI and fix [prometheus.queries] "
                   f"{facts.name}", **where)


_SELECTOR = re.compile(
    r'(?<![\w:."])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})?(?=\s*[\[{]|(?<=\}))')


def vector_selectors(promql: str) -> tuple[tuple[str, str], ...]:
    """(metric name, selector text) of each vector selector in a query, in order, without repeats.

    >>> vector_selectors('sum by (m) (rate(x_total{status="error",m="a"}[5m])) / avg_over_time(up[5m])')
    (('x_total', 'x_total{status="error",m="a"}'), ('up', 'up'))
    """
    found: list[tuple[str, str]] = []
    for match in _SELECTOR.finditer(promql):
        name, braces = match.group(1), match.group(2) or ""
        item = (name, name + braces)
        if item not in found:
            found.append(item)
    return tuple(found)


def has_extra_matchers(selector_text: str, scope: str) -> bool:
    """Whether the selector matches on more than the rendered ``{selector}`` text ``scope``."""
    inside = selector_text.partition("{")[2].rpartition("}")[0]
    return bool(inside.replace(scope, "").strip(" ,"))


def similar_names(name: str, candidates: Sequence[str], n: int = 3) -> tuple[str, ...]:
    """Up to ``n`` names close to ``name`` (for "did you mean")."""
    return tuple(difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6))


# --------------------------------------------------------------------------- freshness


@dataclass(frozen=True)
class FreshnessFacts:
    """Is a version's request-rate data current? (Prometheus' view of its scrape targets included.)"""

    model: str
    version: str
    over_window: bool  # the request_rate template answers over [prometheus] window
    fresh: bool  # ... and over staleness_seconds
    staleness_seconds: float
    scrape_interval_seconds: float | None
    last_sample_age_seconds: float | None = None
    down_targets: tuple[str, ...] = ()  # "instance: lastError" of targets Prometheus cannot scrape


def diagnose_staleness_setting(staleness_seconds: float, scrape_intervals: Sequence[float]) -> Finding:
    """``staleness_seconds`` must cover two scrapes (``rate`` needs two samples in the short window)."""
    if not scrape_intervals:
        return Finding("staleness vs scrape interval", Status.UNKNOWN,
                       "Prometheus reports no active scrape targets, so the scrape interval is unknown")
    longest = max(scrape_intervals)
    if staleness_seconds < 2 * longest:
        return Finding("staleness vs scrape interval", Status.FAIL,
                       f"[prometheus] staleness_seconds = {staleness_seconds:g} is less than two scrape intervals "
                       f"({longest:g}s each): healthy versions will read as stale",
                       f"set staleness_seconds to at least {2 * longest:g} (3-4 intervals is comfortable)")
    return Finding("staleness vs scrape interval", Status.OK,
                   f"staleness_seconds {staleness_seconds:g} covers {staleness_seconds / longest:.1f} scrape "
                   f"intervals of {longest:g}s")


def diagnose_freshness(facts: FreshnessFacts) -> Finding:
    """Stale: data over the window but nothing in the last ``staleness_seconds`` (exporter stopped)."""
    where = {"model": facts.model, "version": facts.version}
    if facts.fresh:
        return Finding("freshness", Status.OK, f"samples within the last {facts.staleness_seconds:g}s", **where)
    if not facts.over_window and facts.last_sample_age_seconds is None:
        return Finding("freshness", Status.UNKNOWN, "no request-rate data at all (see the request_rate query)",
                       **where)
    age = ("" if facts.last_sample_age_seconds is None
           else f"; last sample {facts.last_sample_age_seconds:.0f}s ago")
    interval = "" if facts.scrape_interval_seconds is None else f" (scrape interval {facts.scrape_interval_seconds:g}s)"
    down = f"; targets down: {'; '.join(facts.down_targets)}" if facts.down_targets else ""
    return Finding("freshness", Status.FAIL,
                   f"stale: no new samples in the last {facts.staleness_seconds:g}s{interval}{age}{down}",
                   "the exporter stopped or Prometheus cannot scrape it: check the serving process and "
                   "Prometheus' targets page", **where)


# --------------------------------------------------------------------------- the rest


def diagnose_clock_skew(skew_seconds: float | None, round_trip_seconds: float, staleness_seconds: float) -> Finding:
    """Our clock against Prometheus' (queries are evaluated at our ``now``)."""
    if skew_seconds is None:
        return Finding("clock skew", Status.UNKNOWN, "could not read Prometheus' time")
    tolerance = max(1.0, round_trip_seconds)
    text = f"this host's clock is {abs(skew_seconds):.2f}s {'behind' if skew_seconds > 0 else 'ahead of'} Prometheus"
    if abs(skew_seconds) <= tolerance:
        return Finding("clock skew", Status.OK, f"{text} (round trip {round_trip_seconds:.2f}s)")
    status = Status.FAIL if abs(skew_seconds) >= staleness_seconds / 2 else Status.WARN
    return Finding("clock skew", status, text + ": health queries ask for a time Prometheus "
                   + ("has no data for yet" if skew_seconds < 0 else "has already moved past"),
                   "synchronise the clocks (systemd-timesyncd / chrony) on this host and Prometheus' host")


@dataclass(frozen=True)
class LogDirFacts:
    path: str
    exists: bool
    readable: bool
    newest_age_seconds: float | None = None  # of the newest *.jsonl file; None: no log file
    files: int = 0


def diagnose_log_dir(facts: LogDirFacts, recent_seconds: float) -> Finding:
    check = f"prediction logs {facts.path}"
    if not facts.exists:
        return Finding(check, Status.FAIL, "does not exist", "create it or fix [ingest] log_dirs")
    if not facts.readable:
        return Finding(check, Status.FAIL, "is not readable by this user",
                       "give the daemon's user read and execute permission on it")
    if facts.newest_age_seconds is None:
        return Finding(check, Status.WARN, "holds no *.predictions.jsonl or *.feedback.jsonl file",
                       "point the SDK's log_dir (or the serving process) at this directory")
    if facts.newest_age_seconds > recent_seconds:
        return Finding(check, Status.WARN,
                       f"newest log written {facts.newest_age_seconds:.0f}s ago (> {recent_seconds:g}s)",
                       "check that the serving processes still write their prediction logs here")
    return Finding(check, Status.OK, f"{facts.files} log files, newest written {facts.newest_age_seconds:.0f}s ago")


def diagnose_disk(path: str, free_bytes: int | None, total_bytes: int | None) -> Finding:
    check = "disk space of the state dir"
    if free_bytes is None or not total_bytes:
        return Finding(check, Status.UNKNOWN, f"could not stat {path}")
    share = free_bytes / total_bytes
    text = f"{free_bytes / 2**30:.1f} GiB free ({share:.0%}) at {path}"
    if free_bytes < 256 * 2**20 or share < 0.02:
        return Finding(check, Status.FAIL, text, "free space: registry writes fail on a full disk")
    if free_bytes < 2 * 2**30 or share < 0.10:
        return Finding(check, Status.WARN, text, "free space before the registry and artifacts fill the disk")
    return Finding(check, Status.OK, text)


@dataclass(frozen=True)
class DoctorReport:
    at: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    queries: dict[str, str] = field(default_factory=dict)  # the PromQL checked, per query name (first model)

    @property
    def exit_code(self) -> int:
        return exit_code(self.findings)

    def to_json(self) -> dict[str, Any]:
        counts = {s.value: sum(1 for f in self.findings if f.status is s) for s in Status}
        return {"at": self.at, "exit_code": self.exit_code, "counts": counts,
                "findings": [f.to_json() for f in self.findings], "queries": dict(self.queries)}
