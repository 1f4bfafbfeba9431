"""Gather the checklist's facts: the registry (read-only), Prometheus' loaded rules, Alertmanager's status,
the shipped runbooks. Every probe that cannot answer leaves its fact empty (the item reads ``unknown``)."""

from __future__ import annotations

import re
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from opsctl.adapters.artifacts import sha256_file
from opsctl.adapters.http_config import HttpConfig, build_client
from opsctl.adapters.registry_reader import ReadConnection, Where, connect_read_only, json_column
from opsctl.clock import parse_utc
from opsctl.core.checklist import FleetFacts, HealthCheckFact, ModelFacts
from opsctl.core.runbooks import SHIPPED_RUNBOOKS
from opsctl.errors import ConfigError, NotFoundError

_RULE = re.compile(r"^\s*- alert: (\w+)", re.M)


def shipped_rule_names(alerts_yml: Path) -> tuple[str, ...]:
    """The alert names in a Prometheus rules file."""
    return tuple(_RULE.findall(alerts_yml.read_text())) if alerts_yml.is_file() else ()


def _accuracy(metrics: Any) -> float | None:
    value = metrics.get("accuracy") if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def model_facts(registry: Where, artifacts: Path, now: datetime, model: str | None = None) -> list[ModelFacts]:
    """Facts for every model (or one) with a deployment row."""
    with closing(connect_read_only(registry)) as conn:
        query = "SELECT * FROM deployments" + (" WHERE model = ?" if model else "") + " ORDER BY model"
        deployments = conn.execute(query, (model,) if model else ()).fetchall()
        if model and not deployments:
            raise NotFoundError("model", model, "no deployment in the registry")
        return [_one(conn, row, artifacts, now) for row in deployments]


def _one(conn: ReadConnection, dep: Any, artifacts: Path, now: datetime) -> ModelFacts:
    name, prod = dep["model"], dep["production_version"]
    if prod is None:
        return ModelFacts(name, None)
    versions = {r["version"]: r for r in conn.execute("SELECT * FROM versions WHERE model = ?", (name,))}
    previous_list = json_column(dep["previous_versions"]) or []
    previous = previous_list[-1] if previous_list else None
    prev_row = versions.get(previous) if previous else None
    artifact_error = None
    if prev_row is not None:
        path = artifacts / prev_row["artifact_name"]
        if not path.is_file():
            artifact_error = f"{path} is missing"
        elif sha256_file(path)[0] != prev_row["sha256"]:
            artifact_error = f"{path} does not match its registered sha256"
    prod_row = versions.get(prod)
    tags = json_column(prod_row["tags"]) if prod_row is not None else {}
    canary = conn.execute("SELECT phase FROM canaries WHERE model = ? AND canary_version = ? ORDER BY id DESC"
                          " LIMIT 1", (name, prod)).fetchone()
    health = conn.execute("SELECT * FROM health_results WHERE model = ? AND version = ? ORDER BY id DESC LIMIT 1",
                          (name, prod)).fetchone()
    result = json_column(health["result"]) if health else {}
    checks = tuple(HealthCheckFact(str(c.get("name")), c.get("value"), c.get("threshold"), str(c.get("verdict")))
                   for c in (result or {}).get("checks", []))
    drift = conn.execute("SELECT at, verdict FROM drift_results WHERE model = ? AND kind = 'drift'"
                         " ORDER BY id DESC LIMIT 1", (name,)).fetchone()
    offsets = {r["key"]: r["offset"] for r in conn.execute('SELECT key, "offset" FROM ingest_offsets')}

    def ingested(suffix: str) -> int | None:
        sizes = [size for key, size in offsets.items() if Path(key).name.startswith(f"{name}.{suffix}.jsonl")]
        return sum(sizes) if sizes else None

    month_ago = now - timedelta(days=30)
    rollbacks = sum(1 for r in conn.execute("SELECT at FROM audit_log WHERE model = ? AND action = 'rollback'"
                                            " AND outcome = 'ok'", (name,)) if parse_utc(r["at"]) >= month_ago)
    return ModelFacts(
        model=name, production_version=prod,
        production_accuracy=_accuracy(json_column(prod_row["metrics"])) if prod_row is not None else None,
        previous_version=previous,
        previous_accuracy=_accuracy(json_column(prev_row["metrics"])) if prev_row is not None else None,
        previous_artifact_error=artifact_error,
        canary_phase=canary["phase"] if canary else None,
        load_test=str(tags["load_test"]) if isinstance(tags, dict) and "load_test" in tags else None,
        health_status=health["status"] if health else None,
        health_reason=(result or {}).get("reason", ""),
        health_at=parse_utc(health["at"]) if health else None,
        checks=checks,
        drift_at=parse_utc(drift["at"]) if drift else None,
        drift_verdict=drift["verdict"] if drift else None,
        predictions_bytes=ingested("predictions"), feedback_bytes=ingested("feedback"),
        rollbacks_30d=rollbacks,
    )


def last_job_run(registry: Where, job: str) -> tuple[datetime, bool, str] | None:
    with closing(connect_read_only(registry)) as conn:
        row = conn.execute("SELECT finished_at, ok, summary FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT 1",
                           (job,)).fetchone()
    return (parse_utc(row["finished_at"]), bool(row["ok"]), row["summary"]) if row else None


def prometheus_rule_names(url: str, timeout: float, http: HttpConfig | None = None
                          ) -> tuple[tuple[str, ...] | None, str]:
    """Alert rule names Prometheus has loaded, or (None, why not); ``http``: [prometheus]'s auth and TLS."""
    try:
        with _client(http, "prometheus", timeout) as client:
            response = client.get(f"{url.rstrip('/')}/api/v1/rules", params={"type": "alert"})
        response.raise_for_status()
        groups = response.json()["data"]["groups"]
    except (httpx.HTTPError, KeyError, ValueError, ConfigError) as error:
        return None, str(error) or type(error).__name__
    return tuple(rule["name"] for group in groups for rule in group.get("rules", [])), ""


def alertmanager_receivers(url: str, timeout: float, http: HttpConfig | None = None) -> tuple[int | None, str]:
    """Receivers with at least one integration in Alertmanager's running config, or (None, why not)."""
    if not url:
        return None, "not configured"
    try:
        with _client(http, "alertmanager", timeout) as client:
            response = client.get(f"{url.rstrip('/')}/api/v2/status")
        response.raise_for_status()
        original = response.json()["config"]["original"]
    except (httpx.HTTPError, KeyError, ValueError, ConfigError) as error:
        return None, str(error) or type(error).__name__
    receivers = original.split("receivers:", 1)[1] if "receivers:" in original else ""
    blocks = re.split(r"^\s*- name:", receivers, flags=re.M)[1:]
    return sum(1 for block in blocks if re.search(r"_configs:", block)), ""


def _client(http: HttpConfig | None, section: str, timeout: float) -> httpx.Client:
    if http is None:
        return httpx.Client(timeout=timeout)
    return build_client(replace(http, timeout_seconds=timeout, connect_timeout_seconds=None), section)


def missing_runbooks(names: tuple[str, ...], folder: Path = SHIPPED_RUNBOOKS) -> tuple[str, ...]:
    return tuple(name for name in names if not (folder / f"{name}.md").is_file())


def fleet_facts(*, registry: Where, now: datetime, health_seconds: float, drift_seconds: float,
                ingest_seconds: float, log_dirs_configured: bool, prometheus_url: str, alertmanager_url: str,
                timeout: float, expected_rules: tuple[str, ...], daemon_rules: tuple[str, ...],
                prometheus_http: HttpConfig | None = None, alertmanager_http: HttpConfig | None = None) -> FleetFacts:
    ingest = last_job_run(registry, "ingest")
    rules, prom_error = prometheus_rule_names(prometheus_url, timeout, prometheus_http)
    receivers, am_error = alertmanager_receivers(alertmanager_url, timeout, alertmanager_http)
    return FleetFacts(
        now=now, health_seconds=health_seconds, drift_seconds=drift_seconds, ingest_seconds=ingest_seconds,
        log_dirs_configured=log_dirs_configured,
        ingest_last_at=ingest[0] if ingest else None, ingest_last_ok=ingest[1] if ingest else None,
        ingest_last_summary=ingest[2] if ingest else "",
        prometheus_rules=rules, prometheus_error=prom_error, expected_rules=expected_rules,
        alertmanager_url=alertmanager_url, alertmanager_error=am_error if alertmanager_url else "",
        receivers_with_integrations=receivers,
        runbooks_missing=missing_runbooks((*expected_rules, *daemon_rules)),
    )
