"""Read the health report's data out of the registry database, read-only."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

from opsctl.adapters.registry_reader import Where, connect_read_only, json_column, number
from opsctl.clock import parse_utc
from opsctl.core.drift_policy import Distribution
from opsctl.core.report import (
    CHART_CHECKS,
    AlertLine,
    CanaryLine,
    DriftLine,
    MetricInterval,
    PerformanceLine,
    SeriesPoint,
    VersionSection,
)


def versions(path: Where, since: datetime, model: str | None = None) -> list[VersionSection]:
    """Each deployed version with its latest health result and its check values over the window."""
    sections = []
    with closing(connect_read_only(path)) as conn:
        for dep in conn.execute("SELECT * FROM deployments ORDER BY model"):
            if model and dep["model"] != model:
                continue
            roles = [(dep["production_version"], "production"), (dep["canary_version"], "canary")]
            for version, role in roles:
                if not version:
                    continue
                rows = [r for r in conn.execute("SELECT at, status, result FROM health_results WHERE model = ?"
                                                " AND version = ? ORDER BY id", (dep["model"], version))]
                series: dict[str, list[SeriesPoint]] = {name: [] for name, _, _ in CHART_CHECKS}
                for row in rows:
                    at = parse_utc(row["at"])
                    if at < since:
                        continue
                    for check in (json_column(row["result"]) or {}).get("checks", []):
                        value = number(check.get("value"))
                        if check.get("name") in series and value is not None:
                            series[check["name"]].append(SeriesPoint(at, value))
                last = json_column(rows[-1]["result"]) if rows else {}
                checks = tuple((str(c.get("name")), number(c.get("value")), number(c.get("threshold")),
                                str(c.get("verdict"))) for c in (last or {}).get("checks", []))
                sections.append(VersionSection(dep["model"], version, role, rows[-1]["status"] if rows else None,
                                               (last or {}).get("reason", ""), checks,
                                               tuple((k, tuple(v)) for k, v in series.items())))
    return sections


def alerts(path: Where, model: str | None = None) -> list[AlertLine]:
    lines = []
    with closing(connect_read_only(path)) as conn:
        for row in conn.execute("SELECT state FROM alerts"):
            state = json_column(row["state"]) or {}
            labels = state.get("labels") or {}
            if (model and labels.get("model") != model) or state.get("state", state.get("phase")) == "resolved":
                continue
            lines.append(AlertLine(str(state.get("rule")), str(state.get("state", state.get("phase"))),
                                   str(state.get("severity")), labels.get("model", ""),
                                   labels.get("model_version", ""), parse_utc(state["starts_at"]),
                                   str(state.get("summary") or "")))
    return sorted(lines, key=lambda a: a.since)


def canaries(path: Where, model: str | None = None) -> list[CanaryLine]:
    lines = []
    with closing(connect_read_only(path)) as conn:
        for row in conn.execute("SELECT * FROM canaries WHERE id IN (SELECT max(id) FROM canaries GROUP BY model)"
                                " ORDER BY id"):
            if model and row["model"] != model:
                continue
            verdict = conn.execute("SELECT verdict FROM canary_evaluations WHERE canary_id = ? ORDER BY id DESC"
                                   " LIMIT 1", (row["id"],)).fetchone()
            lines.append(CanaryLine(row["model"], row["canary_version"], row["phase"], parse_utc(row["updated_at"]),
                                    verdict["verdict"] if verdict else None))
    return lines


def drift(path: Where, model: str | None = None) -> list[DriftLine]:
    """The latest drift and performance verdict of each version, drift with its per-feature distributions."""
    lines = []
    with closing(connect_read_only(path)) as conn:
        query = ("SELECT * FROM drift_results WHERE id IN (SELECT max(id) FROM drift_results"
                 " GROUP BY model, version, kind) ORDER BY model, version, kind")
        for row in conn.execute(query):
            if model and row["model"] != model:
                continue
            document = json_column(row["report"]) or {}
            # A drift result keeps the check's report under "report" (None when the check could not run).
            report = document.get("report") if isinstance(document.get("report"), dict) else {}
            features = [f for f in report.get("features", []) if isinstance(f, dict)]
            lines.append(DriftLine(
                row["model"], row["version"], row["kind"], row["verdict"], parse_utc(row["at"]),
                tuple((str(f.get("name")), _feature_verdict(f), number(f.get("effect_size"))) for f in features),
                tuple((str(f.get("name")), Distribution.from_json(f["distribution"])) for f in features
                      if isinstance(f.get("distribution"), dict))))
    return lines


def _feature_verdict(feature: dict[str, object]) -> str:
    drifted = feature.get("drifted")
    return "unknown" if drifted is None else "drift" if drifted else "no_drift"


def performance(path: Where, model: str | None = None) -> list[PerformanceLine]:
    """The latest performance check of each version: every metric with its interval, baseline and floor."""
    lines = []
    with closing(connect_read_only(path)) as conn:
        query = ("SELECT * FROM drift_results WHERE id IN (SELECT max(id) FROM drift_results"
                 " WHERE kind = 'performance' GROUP BY model, version) ORDER BY model, version")
        for row in conn.execute(query):
            if model and row["model"] != model:
                continue
            document = json_column(row["report"]) or {}
            metrics = tuple(
                MetricInterval(str(m.get("name")), str(m.get("state")), number(m.get("value")),
                               number(m.get("ci_low")), number(m.get("ci_high")), int(m.get("n") or 0),
                               number(m.get("baseline")), number(m.get("floor")))
                for m in document.get("metrics", []) if isinstance(m, dict))
            lines.append(PerformanceLine(row["model"], row["version"], row["verdict"], parse_utc(row["at"]),
                                         int(document.get("labelled") or 0), number(document.get("confidence")),
                                         metrics))
    return lines
