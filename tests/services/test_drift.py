"""DriftService: SDK logs -> window -> drift and performance checks -> stored results, gauges, events,
alerts and retraining triggers; on a real registry file, the real SDK logger and a manual clock."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from opsctl.adapters.alert_store import AlertStore
from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.drift_gauges import DriftGauges
from opsctl.adapters.offset_store import RegistryOffsetStore
from opsctl.adapters.registry import Registry
from opsctl.clock import ManualClock
from opsctl.config import Settings, parse_settings
from opsctl.core.alerts import AlertPhase, AlertRule, AlertSource, Condition, step
from opsctl.core.window import parse_batch
from opsctl.domain import Actor
from opsctl.sdk.predlog import FeedbackLogger, PredictionLogger
from opsctl.services.drift import DriftService
from opsctl.services.registry import RegisterRequest, RegistryService

ACTOR = Actor(user="tester", uid=None, via="test")
CONFIG = """
[window]
max_age_seconds = 3600
[performance]
min_labels = 100
min_class_labels = 10
"""


def reference_frame(rows: int = 2000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, rows)
    return pd.DataFrame({
        "x1": x1,
        "x2": rng.normal(5, 2, rows),
        "color": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        # The model's outputs on the reference sample: compared with the logged score and prediction.
        "prediction_score": 1 / (1 + np.exp(-3 * x1)),
        "predicted_class": (x1 > 0).astype(int),
        "label": rng.integers(0, 2, rows),  # in the reference, never logged as a feature
    })


def stream(n: int, *, shift: float = 0.0, seed: int = 2, start: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1, n)
    x2 = rng.normal(5, 2, n)
    color = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    return [{"id": f"p{start + i}", "features": {"x1": float(x1[i]), "x2": float(x2[i]), "color": str(color[i])},
             "prediction": int(x1[i] > 0), "score": float(1 / (1 + np.exp(-3 * x1[i])))} for i in range(n)]


class World:
    def __init__(self, root: Path, config: str = CONFIG) -> None:
        self.root = root
        self.clock = ManualClock()
        self.registry = Registry(root / "state" / "registry.db")
        self.artifacts = ArtifactStore(root / "state" / "artifacts")
        self.service = RegistryService(self.registry, self.artifacts, clock=self.clock)
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings: Settings = parse_settings(f'[ingest]\nlog_dirs = ["{self.logs}"]\n' + config)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.retrains: list[tuple[str, str, str]] = []
        self.metrics = CollectorRegistry()
        self.drift = self.open_service()

    def open_service(self) -> DriftService:
        """A fresh service on the same registry and state dir: what a daemon restart builds."""
        return DriftService(
            self.registry, self.artifacts, settings=lambda: self.settings,
            summaries_dir=self.root / "state" / "summaries", offsets=RegistryOffsetStore(self.registry),
            clock=self.clock, events=lambda kind, data: self.events.append((kind, data)),
            gauges=DriftGauges(CollectorRegistry()) if self.drift_exists() else DriftGauges(self.metrics),
            retrain=lambda model, trigger, reason: self.retrains.append((model, trigger, reason)),
            rng=random.Random(7))

    def drift_exists(self) -> bool:
        return hasattr(self, "drift")

    def deploy(self, model: str, version: str = "v1", *, reference: bool = True, accuracy: float = 0.9) -> None:
        artifact = self.root / f"{model}-{version}.bin"
        artifact.write_bytes(f"{model}-{version}".encode())
        csv = None
        if reference:
            csv = self.root / f"{model}-{version}.reference.csv"
            reference_frame().to_csv(csv, index=False)
        self.service.register(RegisterRequest(model, version, artifact, metrics={"accuracy": accuracy},
                                              reference=csv), actor=ACTOR)
        self.service.promote(model, version, actor=ACTOR)

    def log(self, model: str, rows: list[dict[str, Any]], version: str = "v1") -> None:
        with PredictionLogger(self.logs, model, version, registry=CollectorRegistry(), clock=self.clock) as logger:
            for row in rows:
                assert logger.log(row["id"], row["features"], row["prediction"], row["score"], 3.0)

    def label(self, model: str, labels: list[tuple[str, int]]) -> None:
        with FeedbackLogger(self.logs, model, registry=CollectorRegistry(), clock=self.clock) as logger:
            for prediction_id, label in labels:
                assert logger.log(prediction_id, label)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def latest(world: World, model: str, kind: str = "drift") -> Any:
    (result,) = world.drift.store.latest(world.registry, model, kind)
    return result


def test_a_shifted_stream_drifts_and_a_stable_one_does_not(world: World) -> None:
    world.deploy("stable")
    world.deploy("shifted")
    world.log("stable", stream(800, seed=3))
    world.log("shifted", stream(800, shift=1.0, seed=4))
    tick = world.drift.ingest()
    assert (tick.files, tick.records, tick.malformed) == (2, 1600, 0)

    results = {r.model: r for r in world.drift.check_drift()}
    assert results["stable"].verdict == "no_drift"
    assert results["shifted"].verdict == "drift"
    assert results["shifted"].document["drifted_features"] == ["x1", "prediction_score", "predicted_class"]
    # The reference's label column is never logged: left out and said so, not called "missing".
    assert results["stable"].document["unlogged"] == ["label"]
    features = {f["name"]: f for f in results["shifted"].document["report"]["features"]}
    assert features["x1"]["test"] == "ks" and features["color"]["test"] == "chi2"
    assert features["color"]["drifted"] is False
    assert latest(world, "shifted").verdict == "drift"

    g = world.metrics
    labels = {"model": "shifted", "model_version": "v1"}
    assert g.get_sample_value("opsctl_drift_dataset_drifted", labels) == 1.0
    assert g.get_sample_value("opsctl_drift_dataset_drifted", {**labels, "model": "stable"}) == 0.0
    assert g.get_sample_value("opsctl_drift_feature_drifted", {**labels, "feature": "x1"}) == 1.0
    assert g.get_sample_value("opsctl_drift_feature_drifted", {**labels, "feature": "x2"}) == 0.0
    assert g.get_sample_value("opsctl_drift_feature_statistic", {**labels, "feature": "x1"}) == pytest.approx(
        features["x1"]["statistic"])
    events = [data for kind, data in world.events if kind == "drift"]
    assert {(e["model"], e["verdict"]) for e in events} == {("stable", "no_drift"), ("shifted", "drift")}
    assert world.retrains == [("shifted", "drift",
                               "data drift on shifted v1: x1, prediction_score, predicted_class")]


def test_the_reference_is_summarized_once_per_version(world: World) -> None:
    world.deploy("fraud")
    world.log("fraud", stream(300))
    world.drift.ingest()
    world.drift.check_drift()
    world.drift.check_drift()
    assert world.drift.summaries.built == 1
    files = list((world.root / "state" / "summaries").glob("*.npz"))
    assert len(files) == 1
    # A restarted daemon loads the stored summary instead of reading the CSV again.
    restarted = world.open_service()
    restarted.check_drift()
    assert restarted.summaries.built == 0


def test_versions_without_a_reference_or_data_say_so(world: World) -> None:
    world.deploy("noref", reference=False)
    world.deploy("quiet")
    results = {r.model: r for r in world.drift.check_drift()}
    assert results["noref"].verdict == "no_reference"
    assert "--reference" in results["noref"].document["error"]
    assert results["quiet"].verdict == "insufficient_data"
    assert world.metrics.get_sample_value("opsctl_drift_dataset_drifted",
                                          {"model": "quiet", "model_version": "v1"}) is None


def test_offsets_survive_a_restart_and_nothing_is_read_twice(world: World) -> None:
    world.deploy("fraud")
    world.log("fraud", stream(250))
    assert world.drift.ingest().records == 250
    assert world.drift.ingest().records == 0
    restarted = world.open_service()
    assert restarted.ingest().records == 0  # resumes at the stored offset
    world.log("fraud", stream(40, start=250))
    assert restarted.ingest().records == 40
    assert restarted.snapshot("fraud").rows == 40
    assert restarted.windows.stats.duplicates == 0


def test_a_malformed_line_is_counted_and_skipped(world: World) -> None:
    world.deploy("fraud")
    world.log("fraud", stream(3))
    with (world.logs / "fraud.predictions.jsonl").open("a") as handle:
        handle.write("{not json\n")
        handle.write(json.dumps({"prediction_id": "bad", "model": "fraud"}) + "\n")
    world.log("fraud", stream(2, start=3))
    tick = world.drift.ingest()
    assert (tick.records, tick.malformed) == (5, 2)
    status = world.drift.status().to_json()
    assert status["malformed"] == 2
    assert [m["line"] for m in status["recent_malformed"]] == [4, 5]


def test_http_records_join_the_same_window_and_duplicates_are_ignored(world: World) -> None:
    world.deploy("fraud")
    body = {"records": [{"prediction_id": "h1", "timestamp": "2026-01-01T00:00:00Z", "model": "fraud",
                         "version": "v1", "features": {"x1": 0.1}, "prediction": 1, "score": 0.7,
                         "latency_ms": None},
                        {"prediction_id": "h1", "label": 0, "timestamp": "2026-01-01T00:00:00Z"}]}
    assert world.drift.ingest_records(parse_batch(json.dumps(body))).to_json() == {
        "accepted": 2, "predictions": 1, "feedback": 1, "duplicates": 0}
    again = world.drift.ingest_records(parse_batch(json.dumps({"records": body["records"][:1]})))
    assert again.duplicates == 1
    snap = world.drift.snapshot("fraud")
    assert (snap.rows, snap.labels) == (1, (0,))


def test_performance_needs_labels_then_detects_a_drop_and_alerts(world: World) -> None:
    world.deploy("fraud", accuracy=0.9)
    rows = stream(400, seed=5)
    world.log("fraud", rows)
    world.label("fraud", [(r["id"], r["prediction"]) for r in rows[:50]])
    world.drift.ingest()
    (result,) = world.drift.check_performance()
    assert result.verdict == "not_enough_labels"
    assert result.document["labelled"] == 50
    assert world.metrics.get_sample_value("opsctl_performance_labelled",
                                          {"model": "fraud", "model_version": "v1"}) == 50

    # 30 % of the remaining labels disagree with the prediction: accuracy ~0.75 against a 0.9 baseline.
    noise = random.Random(11)
    world.label("fraud", [(r["id"], r["prediction"] if noise.random() > 0.3 else 1 - r["prediction"])
                          for r in rows[50:]])
    world.drift.ingest()
    (result,) = world.drift.check_performance()
    assert result.verdict == "degraded"
    accuracy = next(m for m in result.document["metrics"] if m["name"] == "accuracy")
    assert accuracy["state"] == "degraded" and accuracy["value"] < 0.9 * 0.95
    assert world.metrics.get_sample_value("opsctl_performance_metric", {
        "model": "fraud", "model_version": "v1", "metric": "accuracy"}) == pytest.approx(accuracy["value"])
    alerts = {a.rule: a for a in AlertStore().load(world.registry)}
    assert alerts["ModelPerformanceDegraded"].phase is AlertPhase.FIRING
    assert alerts["ModelPerformanceDegraded"].labels["model_version"] == "v1"
    assert world.retrains[-1][:2] == ("fraud", "performance")
    assert [d["verdict"] for k, d in world.events if k == "performance"] == ["not_enough_labels", "degraded"]


def test_drift_alerts_resolve_and_leave_other_sources_alone(world: World) -> None:
    # A firing health alert must survive the drift job's steps.
    health_rule = AlertRule("ModelSlaDegraded", source=AlertSource.HEALTH)
    store = AlertStore()
    with world.registry.write() as tx:
        after, _ = step([], [Condition(health_rule, {"model": "fraud", "model_version": "v1"}, True)],
                        world.clock.now())
        store.apply(tx, [], after, world.clock.now())

    world.deploy("fraud")
    world.log("fraud", stream(400, shift=1.5, seed=6))
    world.drift.ingest()
    world.drift.check_drift()
    alerts = {a.rule: a for a in store.load(world.registry)}
    assert alerts["ModelDataDrift"].phase is AlertPhase.FIRING
    # The window moves on: an hour later only stable traffic is in it.
    world.clock.current += timedelta(hours=2)
    world.log("fraud", stream(400, seed=7, start=1000))
    world.drift.ingest()
    (result,) = world.drift.check_drift()
    assert result.verdict == "no_drift"
    alerts = {a.rule: a for a in store.load(world.registry)}
    assert alerts["ModelDataDrift"].phase is AlertPhase.RESOLVED
    assert alerts["ModelSlaDegraded"].phase is AlertPhase.FIRING
    history = world.drift.drift("fraud", history=5).to_json()["history"]
    assert [h["verdict"] for h in history] == ["no_drift", "drift"]


def test_drift_verdict_changes_are_audit_entries_with_features_and_not_every_check(world: World) -> None:
    world.deploy("fraud")
    world.log("fraud", stream(400, shift=1.5, seed=6))
    world.drift.ingest()
    for _ in range(3):  # the same drift found three times: one entry
        (result,) = world.drift.check_drift()
        assert result.verdict == "drift"
    world.clock.current += timedelta(hours=2)
    world.log("fraud", stream(400, seed=7, start=1000))
    world.drift.ingest()
    world.drift.check_drift()
    world.drift.check_drift()
    rows = [e for e in world.registry.audit("fraud", limit=100) if e.action == "drift"]
    assert [(e.actor, e.via, e.from_version, e.outcome.value) for e in rows] == [
        ("opsctld", "drift", "v1", "ok"), ("opsctld", "drift", "v1", "ok")]
    features = {f["name"]: f for f in result.document["report"]["features"]}
    x1 = features["x1"]
    assert rows[0].detail.startswith(
        f"drift detected on v1 (production): x1 ({x1['effect_metric']} {x1['effect_size']:.3g},"
        f" PSI {x1['psi']:.3g}, p {x1['p_value_adjusted']:.2g}), prediction_score (")
    drifted = len(result.document["drifted_features"])
    assert f"; {drifted} of {len(features)} features drifted (share " in rows[0].detail
    assert rows[0].detail.endswith(" over 400 rows")  # the first check: no earlier verdict
    assert rows[1].detail == "drift cleared on v1 (production): no feature drifted over 400 rows; was drift"
    # Each entry went out on the event bus too, complete, so a feed shows it at once.
    audits = [data for kind, data in world.events if kind == "audit"]
    assert [(a["id"], a["action"], a["detail"]) for a in audits] == [(e.id, "drift", e.detail) for e in rows]


@pytest.mark.parametrize(("prediction", "label", "same"), [
    (True, "1", True), (1.0, "1", True), (True, 1, True), (False, "0", True), (1, 1.0, True),
    (True, "0", False), (1.0, 0, False), ("cat", "cat", True), ("cat", "dog", False),
])
def test_label_counts_compares_classes_like_the_performance_check(
        world: World, prediction: Any, label: Any, same: bool) -> None:
    # The canary's accuracy gate reads these counts: a JSON true and a label "1" are the same class,
    # exactly as canonical_label (the performance check) says.
    world.deploy("fraud")
    since = world.clock.now()
    records = [{"prediction_id": "p1", "timestamp": since.isoformat(), "model": "fraud", "version": "v1",
                "features": {"x1": 0.1}, "prediction": prediction, "score": 0.7, "latency_ms": None},
               {"prediction_id": "p1", "label": label, "timestamp": since.isoformat()}]
    world.drift.ingest_records(parse_batch(json.dumps({"records": records})))
    assert world.drift.label_counts("fraud", "v1", since) == (1, int(same))
