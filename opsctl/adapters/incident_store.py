"""Read an incident's timeline entries out of the registry database, read-only.

Sources (each a table the daemon or the CLI writes): ``audit_log`` (every change with actor and reason),
``alert_history`` (alert transitions), ``health_results`` (status changes are derived from consecutive
results per version), ``canary_evaluations`` (gate verdicts; changes and failures), ``drift_results``
(verdict changes per version and kind) and ``retrain_runs`` (start and finish). The registry is
opened read-only (:mod:`opsctl.adapters.registry_reader`: the SQLite file or PostgreSQL), so this works
the same whether the daemon runs or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from typing import Any

from opsctl.adapters.registry_reader import ReadConnection, Where, connect_read_only, json_column, number
from opsctl.clock import parse_utc
from opsctl.core.incident import TimelineEntry

SOURCES = ("audit", "alert", "health", "canary", "drift", "retrain")
_TABLES = {"audit": "audit_log", "alert": "alert_history", "health": "health_results",
           "canary": "canary_evaluations", "drift": "drift_results", "retrain": "retrain_runs"}
DAEMON = "opsctld"


def read_entries(path: Where, since: datetime, model: str | None = None) -> tuple[list[TimelineEntry], list[str]]:
    """Entries at or after ``since`` (for one model or all) and the sources the database has."""
    with closing(connect_read_only(path)) as conn:
        tables = conn.table_names()
        present = [source for source in SOURCES if _TABLES[source] in tables]
        readers = {"audit": _audit, "alert": _alerts, "health": _health, "canary": _canary, "drift": _drift,
                   "retrain": _retrain}
        entries: list[TimelineEntry] = []
        for source in present:
            entries.extend(e for e in readers[source](conn, since) if model is None or e.model == model)
    return entries, present


def _doc(text: str) -> dict[str, Any]:
    value = json_column(text)
    return value if isinstance(value, dict) else {}


def _audit(conn: ReadConnection, since: datetime) -> Iterator[TimelineEntry]:
    for row in conn.execute("SELECT * FROM audit_log ORDER BY id"):
        at = parse_utc(row["at"])
        if at < since:
            continue
        change = " -> ".join(v for v in (row["from_version"], row["to_version"]) if v)
        what = f"{row['action']} {change}".strip() + f" ({row['outcome']})"
        if row["detail"]:
            what += f": {row['detail']}"
        yield TimelineEntry(at, "audit", row["action"], row["model"], row["to_version"] or row["from_version"],
                            f"{row['actor']} via {row['via']}", what, row["reason"] or "", ())


def _alerts(conn: ReadConnection, since: datetime) -> Iterator[TimelineEntry]:
    for row in conn.execute("SELECT * FROM alert_history ORDER BY id"):
        at = parse_utc(row["at"])
        if at < since:
            continue
        state = _doc(row["state"])
        labels = state.get("labels") or {}
        value = number(state.get("value"))
        ack = state.get("ack") or {}
        who = f"acked by {ack['by']}" if isinstance(ack, dict) and ack.get("by") else DAEMON
        rule = state.get("rule", "?")
        yield TimelineEntry(at, "alert", row["status"], labels.get("model"), labels.get("model_version"), who,
                            f"alert {rule} {row['status']} ({state.get('severity', '?')})",
                            state.get("summary") or (state.get("annotations") or {}).get("description", ""),
                            (("value", value),) if value is not None else ())


def _failing_numbers(result: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    numbers: list[tuple[str, float]] = []
    for check in result.get("checks") or []:
        value, threshold = number(check.get("value")), number(check.get("threshold"))
        if check.get("verdict") == "fail" and value is not None:
            numbers.append((str(check.get("name")), value))
            if threshold is not None:
                numbers.append((f"{check.get('name')}_threshold", threshold))
    return tuple(numbers)


def _health(conn: ReadConnection, since: datetime) -> Iterator[TimelineEntry]:
    last: dict[tuple[str, str], str] = {}
    for row in conn.execute("SELECT * FROM health_results ORDER BY id"):
        key = (row["model"], row["version"])
        previous = last.get(key)
        last[key] = row["status"]
        if previous == row["status"]:
            continue
        at = parse_utc(row["at"])
        if at < since:
            continue
        result = _doc(row["result"])
        was = f" (was {previous})" if previous else ""
        yield TimelineEntry(at, "health", row["status"], row["model"], row["version"], DAEMON,
                            f"health {row['status']}{was}", result.get("reason", ""), _failing_numbers(result))


def _canary(conn: ReadConnection, since: datetime) -> Iterator[TimelineEntry]:
    query = ("SELECT e.id, e.canary_id, e.at, e.verdict, e.evaluation, c.model, c.canary_version"
             " FROM canary_evaluations e JOIN canaries c ON c.id = e.canary_id ORDER BY e.id")
    last: dict[int, str] = {}
    for row in conn.execute(query):
        previous = last.get(row["canary_id"])
        last[row["canary_id"]] = row["verdict"]
        if previous == row["verdict"] and row["verdict"] != "fail":
            continue
        at = parse_utc(row["at"])
        if at < since:
            continue
        evaluation = _doc(row["evaluation"])
        gates = evaluation.get("gates") or evaluation.get("results") or []
        failed = [str(g.get("name")) for g in gates if isinstance(g, dict) and g.get("verdict") == "fail"]
        why = evaluation.get("reason") or evaluation.get("summary") or (
            f"failed gates: {', '.join(failed)}" if failed else "")
        numbers = tuple((f"{g.get('name')}_{k}", v) for g in gates if isinstance(g, dict)
                        for k in ("statistic", "p_value", "value") if (v := number(g.get(k))) is not None)
        yield TimelineEntry(at, "canary", row["verdict"], row["model"], row["canary_version"], DAEMON,
                            f"canary {row['canary_id']} gate verdict {row['verdict']}", str(why), numbers)


def _drift(conn: ReadConnection, since: datetime) -> Iterator[TimelineEntry]:
    last: dict[tuple[str, str, str], str] = {}
    for row in conn.execute("SELECT id, at, model, version, kind, verdict FROM drift_results ORDER BY id"):
        key = (row["model"], row["version"], row["kind"])
        previous = last.get(key)
        last[key] = row["verdict"]
        if previous == row["verdict"]:
            continue
        at = parse_utc(row["at"])
        if at < since:
            continue
        was = f" (was {previous})" if previous else ""
        yield TimelineEntry(at, "drift", row["verdict"], row["model"], row["version"], DAEMON,
                            f"{row['kind']} verdict {row['verdict']}{was}", "", ())


def _retrain(conn: ReadConnection, since: datetime) -> Iterator[TimelineEntry]:
    for row in conn.execute("SELECT * FROM retrain_runs ORDER BY started_at, rowid"):
        run = _doc(row["run"])
        started = parse_utc(row["started_at"])
        if started >= since:
            yield TimelineEntry(started, "retrain", "started", row["model"], None, DAEMON,
                                f"retrain run {row['id']} started ({row['trigger']})", str(run.get("reason", "")), ())
        if row["finished_at"] and (finished := parse_utc(row["finished_at"])) >= since:
            candidate = f", candidate {row['candidate_version']}" if row["candidate_version"] else ""
            yield TimelineEntry(finished, "retrain", row["status"], row["model"], row["candidate_version"], DAEMON,
                                f"retrain run {row['id']} {row['status']}{candidate}",
                                str(run.get("error") or "").splitlines()[0] if run.get("error") else "", ())
