"""Read the health report's data out of the registry database, read-only."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from pathlib import Path

from opsctl.adapters.registry_reader import connect_read_only, json_column, number
from opsctl.clock import parse_utc
from opsctl.core.report import CHART_CHECKS, AlertLine, CanaryLine, DriftLine, SeriesPoint, VersionSection


def versions(path: Path, since: datetime, model: str | None = None) -> list[VersionSection]:
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


def alerts(path: Path, model: str | None = None) -> list[AlertLine]:
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


def canaries(path: Path, model: str | None = None) -> list[CanaryLine]:
    lines = []
    with closing(connect_read_only(path)) as conn:
        for row in conn.execute("SELECT * FROM canaries WHERE id IN (SELECT max(id) FROM canaries GROUP BY model)"):
            if model and row["model"] != model:
                continue
            verdict = conn.execute("SELECT verdict FROM canary_evaluations WHERE canary_id = ? ORDER BY id DESC"
                                   " LIMIT 1", (row["id"],)).fetchone()
            lines.append(CanaryLine(row["model"], row["canary_version"], row["phase"], parse_utc(row["updated_at"]),
                                    verdict["verdict"] if verdict else None))
    return lines


def drift(path: Path, model: str | None = None) -> list[DriftLine]:
    lines = []
    with closing(connect_read_only(path)) as conn:
        query = ("SELECT * FROM drift_results WHERE id IN (SELECT max(id) FROM drift_results"
                 " GROUP BY model, version, kind) ORDER BY model, version, kind")
        for row in conn.execute(query):
            if model and row["model"] != model:
                continue
            report = json_column(row["report"]) or {}
            features = tuple((str(f.get("feature") or f.get("name")), str(f.get("verdict")),
                              number(f.get("effect_size"))) for f in report.get("features", [])
                             if isinstance(f, dict))
            lines.append(DriftLine(row["model"], row["version"], row["kind"], row["verdict"], parse_utc(row["at"]),
                                   features))
    return lines
