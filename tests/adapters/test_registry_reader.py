"""The read-only readers (report, incident timeline, checklist, doctor, the daemon's change counter) on both
engines: the same registry content, written through the registry, reads back the same on SQLite and on a
real PostgreSQL; the reader cannot write; a registry that is not there is NotFoundError on both."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl.adapters import report_store
from opsctl.adapters.checklist_probe import last_job_run, model_facts
from opsctl.adapters.doctor_probe import deployed_versions
from opsctl.adapters.incident_store import SOURCES, read_entries
from opsctl.adapters.model_changes import ModelChangeCounts
from opsctl.adapters.registry import Registry
from opsctl.adapters.registry_engine import RegistryError, RegistrySettings
from opsctl.adapters.registry_reader import RegistryLocation, connect_read_only
from opsctl.clock import utc_iso
from opsctl.domain import Actor, Deployment, Lineage, Outcome
from opsctl.errors import NotFoundError
from tests.fixtures.postgres import PostgresServer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = Actor("alice", 1000)
DRIFT_ROW = "INSERT INTO drift_results(at, model, version, kind, verdict, report) VALUES (?, ?, ?, ?, ?, ?)"


def location(registry: Registry) -> RegistryLocation:
    """What the readers are given for this registry (as the services build it from the settings)."""
    url = registry.postgres.url if registry.postgres is not None else ""
    return RegistryLocation.of(RegistrySettings(url=url), registry.path)


def at(minutes: float) -> str:
    return utc_iso(T0 + timedelta(minutes=minutes))


def seed(registry: Registry) -> None:
    """fraud: v1 then v2 in production, v2 degrading, an alert, a canary, drift, a retrain run, a rollback."""
    with registry.write() as tx:
        tx.ensure_model("fraud", T0)
        for version, accuracy in (("v1", 0.93), ("v2", 0.95)):
            tx.insert_version(model="fraud", version=version, artifact_name=f"{version}.bin", sha256="0" * 64,
                              size_bytes=10, metrics={"accuracy": accuracy}, description="",
                              tags={"load_test": "ok"} if version == "v2" else {}, lineage=Lineage(),
                              reference_name=None, reference_sha256=None, now=T0)
        deployment = tx.get_deployment("fraud")
        assert deployment is not None
        tx.update_deployment(Deployment("fraud", "v1", (), None, 0.0, deployment.generation, None),
                             expected_generation=deployment.generation, now=T0)
        tx.update_deployment(Deployment("fraud", "v2", ("v1",), None, 0.0, deployment.generation + 1, None),
                             expected_generation=deployment.generation + 1, now=T0)
        for minute, action in ((1, "promote"), (2, "promote"), (30, "rollback"), (31, "canary_start")):
            tx.append_audit(actor=ALICE, action=action, model="fraud", from_version="v1", to_version="v2",
                            reason=f"{action} at {minute}", outcome=Outcome.OK, now=T0 + timedelta(minutes=minute))
        for minute, status, error_rate in ((5, "healthy", 0.1), (10, "healthy", 0.2), (15, "degraded", 3.5)):
            result = {"reason": "error_rate above threshold" if status == "degraded" else "",
                      "checks": [{"name": "error_rate", "value": error_rate, "threshold": 1.0,
                                  "verdict": "fail" if error_rate > 1 else "pass"},
                                 {"name": "latency_p95", "value": 80 + minute, "threshold": 500, "verdict": "pass"}]}
            tx.conn.execute("INSERT INTO health_results(at, model, version, status, result) VALUES (?, ?, ?, ?, ?)",
                            (at(minute), "fraud", "v2", status, json.dumps(result)))
        alert = {"rule": "ModelSlaDegraded", "state": "firing", "severity": "page", "starts_at": at(16),
                 "summary": "fraud v2 error rate 3.5 %", "labels": {"model": "fraud", "model_version": "v2"},
                 "value": 3.5}
        tx.conn.execute("INSERT INTO alerts(fingerprint, status, state, updated_at) VALUES (?, ?, ?, ?)",
                        ("fp1", "firing", json.dumps(alert), at(16)))
        tx.conn.execute("INSERT INTO alert_history(at, fingerprint, status, state) VALUES (?, ?, ?, ?)",
                        (at(16), "fp1", "firing", json.dumps(alert)))
        canary_id = tx.insert_id(
            "INSERT INTO canaries(model, canary_version, production_version, phase, revision, active, state, policy,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("fraud", "v2", "v1", "succeeded", 3, 0, "{}", "{}", at(1), at(2)))
        tx.conn.execute("INSERT INTO canary_evaluations(canary_id, at, verdict, evaluation) VALUES (?, ?, ?, ?)",
                        (canary_id, at(1.5), "pass", json.dumps({"gates": [{"name": "error_rate", "verdict": "pass",
                                                                            "p_value": 0.4}]})))
        drift = {"report": {"features": [{"name": "amount", "drifted": True, "effect_size": 0.8}]}}
        tx.conn.execute(DRIFT_ROW, (at(20), "fraud", "v2", "drift", "drift", json.dumps(drift)))
        performance = {"labelled": 800, "confidence": 0.95, "metrics": [
            {"name": "accuracy", "state": "degraded", "value": 0.875, "ci_low": 0.85, "ci_high": 0.9, "n": 800,
             "baseline": 0.95, "floor": 0.9}]}
        tx.conn.execute(DRIFT_ROW, (at(21), "fraud", "v2", "performance", "degraded", json.dumps(performance)))
        tx.conn.execute("INSERT INTO retrain_runs(id, model, trigger, status, started_at, finished_at,"
                        " candidate_version, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        ("r1", "fraud", "drift", "succeeded", at(22), at(25), "v3", json.dumps({"reason": "drift"})))
        tx.conn.execute('INSERT INTO ingest_offsets(key, inode, "offset", line, fingerprint) VALUES (?, ?, ?, ?, ?)',
                        ("/logs/fraud.predictions.jsonl", 1, 4096, 10, ""))
        tx.record_job_run(job="ingest", started_at=T0, finished_at=T0 + timedelta(seconds=1), ok=True,
                          summary="read 10 lines")


def test_every_reader_reads_the_same_registry_on_both_engines(make_registry: Callable[..., Registry],
                                                               tmp_path: Path) -> None:
    registry = make_registry(publish_routing=False)
    seed(registry)
    where = location(registry)
    since = T0

    (section,) = report_store.versions(where, since)
    assert (section.model, section.version, section.role, section.status) == ("fraud", "v2", "production",
                                                                              "degraded")
    series = dict(section.series)
    assert [p.value for p in series["error_rate"]] == [0.1, 0.2, 3.5]
    assert ("error_rate", 3.5, 1.0, "fail") in section.checks
    (alert,) = report_store.alerts(where)
    assert (alert.rule, alert.state, alert.model, alert.version) == ("ModelSlaDegraded", "firing", "fraud", "v2")
    (canary,) = report_store.canaries(where)
    assert (canary.model, canary.canary_version, canary.phase, canary.last_verdict) == ("fraud", "v2", "succeeded",
                                                                                        "pass")
    drift = report_store.drift(where)
    assert [(d.kind, d.verdict) for d in drift] == [("drift", "drift"), ("performance", "degraded")]
    assert drift[0].features == (("amount", "drift", 0.8),)
    (performance,) = report_store.performance(where)
    assert performance.labelled == 800 and performance.metrics[0].value == 0.875

    entries, sources = read_entries(where, since)
    assert sources == list(SOURCES)
    assert sorted({e.source for e in entries}) == sorted(SOURCES)
    audit = [e for e in entries if e.source == "audit"]
    assert [e.kind for e in audit] == ["promote", "promote", "rollback", "canary_start"]
    health = [(e.kind, e.what) for e in entries if e.source == "health"]
    assert health == [("healthy", "health healthy"), ("degraded", "health degraded (was healthy)")]
    retrain = [e.kind for e in entries if e.source == "retrain"]
    assert retrain == ["started", "succeeded"]
    later, _ = read_entries(where, T0 + timedelta(minutes=29), "fraud")
    assert [e.kind for e in later] == ["rollback", "canary_start"]

    (facts,) = model_facts(where, tmp_path / "artifacts", T0 + timedelta(hours=1))
    assert (facts.production_version, facts.previous_version) == ("v2", "v1")
    assert (facts.production_accuracy, facts.previous_accuracy) == (0.95, 0.93)
    assert facts.load_test == "ok" and facts.canary_phase == "succeeded"
    assert facts.health_status == "degraded" and facts.drift_verdict == "drift"
    assert facts.predictions_bytes == 4096 and facts.feedback_bytes is None and facts.rollbacks_30d == 1
    assert facts.previous_artifact_error is not None and "v1.bin is missing" in facts.previous_artifact_error
    with pytest.raises(NotFoundError):
        model_facts(where, tmp_path / "artifacts", T0, "churn")
    job = last_job_run(where, "ingest")
    assert job is not None and job[1] is True and job[2] == "read 10 lines"

    assert deployed_versions(where) == [("fraud", "v2")]

    counts = ModelChangeCounts(where)
    counts.refresh()
    nonzero = {key: n for key, n in counts.counts().items() if n}
    assert nonzero == {("fraud", "promote"): 2, ("fraud", "rollback"): 1, ("fraud", "canary_start"): 1}
    with registry.write() as tx:
        tx.append_audit(actor=ALICE, action="promote", model="fraud", from_version="v2", to_version="v1",
                        reason="", outcome=Outcome.OK, now=T0)
    counts.refresh()
    assert counts.counts()[("fraud", "promote")] == 3  # only the new row was read


def test_the_reader_cannot_write(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry(publish_routing=False)
    seed(registry)
    conn = connect_read_only(location(registry))
    try:
        with pytest.raises(RegistryError, match="read"):
            conn.execute("DELETE FROM job_runs")
    finally:
        conn.close()
    with registry.read() as tx:
        assert tx.conn.execute("SELECT count(*) FROM job_runs").fetchone()[0] == 1


def test_no_registry_is_not_found_on_either_engine(tmp_path: Path, postgres_server: PostgresServer) -> None:
    empty_database = RegistryLocation.of(RegistrySettings(url=postgres_server.create_database()), tmp_path / "r.db")
    for where in (RegistryLocation(tmp_path / "registry.db"), empty_database):
        with pytest.raises(NotFoundError, match="registry"):
            connect_read_only(where)
        assert deployed_versions(where) == []  # the doctor: nothing deployed, not a crash
