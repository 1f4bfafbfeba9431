"""The demo's training entry point: fresh data, honest holdout, the runner's contract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from opsctl.adapters.training import TrainingContext, TrainingResult, TrainingSpec, TrainingStatus, run_training
from opsctl.core.retrain import binary_metrics
from opsctl.demo import models
from opsctl.demo.training import LABEL_COLUMN, parse_drift, train


def _train(tmp_path: Path, **params: str) -> TrainingResult:
    out = tmp_path / "out"
    out.mkdir(parents=True)
    return train(TrainingContext(out, {"model": models.FRAUD, "n_samples": "800", **params}))


def test_demo_training_returns_a_result_the_runner_accepts(tmp_path: Path) -> None:
    result = _train(tmp_path, run_id="abc")
    checked = TrainingResult.from_json(result.to_json(), output_dir=tmp_path / "out")
    assert checked.holdout_path is not None and checked.reference_sample_path is not None
    holdout = pd.read_csv(checked.holdout_path)
    assert list(holdout.columns) == [*models.SPECS[models.FRAUD].feature_names, LABEL_COLUMN]
    assert len(holdout) == 200  # a quarter of 800, never trained on
    reference = pd.read_csv(checked.reference_sample_path)
    assert list(reference.columns) == models.SPECS[models.FRAUD].feature_names
    estimator = models.load_artifact(checked.artifact_path, models.sha256_file(checked.artifact_path))
    scores = estimator.predict_proba(holdout.drop(columns=[LABEL_COLUMN]))[:, 1]
    # The reported metrics are the holdout's, as the service recomputes them.
    recomputed = binary_metrics(holdout[LABEL_COLUMN], scores)
    assert result.metrics == pytest.approx(recomputed)
    assert result.metrics["roc_auc"] > 0.8


def test_each_run_sees_fresh_data_and_a_fixed_seed_repeats(tmp_path: Path) -> None:
    a = _train(tmp_path / "a", run_id="run-1")
    b = _train(tmp_path / "b", run_id="run-2")
    c = _train(tmp_path / "c", run_id="run-3", seed="7")
    d = _train(tmp_path / "d", run_id="run-4", seed="7")
    assert a.training_data_hash != b.training_data_hash
    assert c.training_data_hash == d.training_data_hash and c.training_data_hash.startswith("sha256:")


def test_retraining_on_drifted_data_beats_the_production_model_on_drifted_holdout(tmp_path: Path) -> None:
    drift = "v1=2.5,v2=2.5,v3=2.5"
    result = _train(tmp_path, seed="3", drift=drift)
    assert result.holdout_path is not None
    holdout = pd.read_csv(result.holdout_path)
    features, labels = holdout.drop(columns=[LABEL_COLUMN]), holdout[LABEL_COLUMN]
    production = models.train_model(models.FRAUD, n_samples=800).estimator  # trained before the drift
    champion = binary_metrics(labels, production.predict_proba(features)[:, 1])
    challenger = binary_metrics(labels, models.load_artifact(
        result.artifact_path, models.sha256_file(result.artifact_path)).predict_proba(features)[:, 1])
    assert challenger["roc_auc"] > champion["roc_auc"] + 0.02
    # The drifted features really are shifted against undrifted fresh data.
    assert holdout["v1"].mean() - models.fresh_dataset(models.FRAUD, 800, seed=3).X["v1"].mean() > 1.0


def test_bad_parameters_fail_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drift must look like"):
        parse_drift("v1:2")
    with pytest.raises(ValueError, match="n_samples"):
        _train(tmp_path, n_samples="ten")


def test_runs_in_the_training_process(tmp_path: Path) -> None:
    spec = TrainingSpec(entrypoint="opsctl.demo.training:train", timeout_seconds=60, memory_limit_mb=0)
    outcome = run_training(spec, workdir=tmp_path, params={"model": models.CHURN, "n_samples": "400",
                                                           "run_id": "x"})
    assert outcome.status is TrainingStatus.SUCCEEDED, outcome.error
    assert outcome.result is not None and outcome.result.holdout_path is not None
    assert "holdout metrics" in outcome.log_tail
    assert outcome.last_progress is not None and outcome.last_progress.fraction == 1.0


def test_drift_retrain_of_a_demo_model_in_the_daemon_registers_evaluates_and_starts_a_canary(
        tmp_path: Path) -> None:
    """The demo's recipe end to end in the real daemon (the drift job's trigger, sent over the API)."""
    from opsctl.config import load_file
    from opsctl.demo.seed import PRODUCTION_VERSION, seed_registry
    from tests.fixtures.cli import make_opsctl_env
    from tests.fixtures.daemon import DaemonProcess

    env = make_opsctl_env(tmp_path / "opsctl", """
[retrain]
metric = "roc_auc"
min_improvement = 0.01
memory_limit_mb = 0
timeout_seconds = 120

[retrain.models.fraud-detector]
entrypoint = "opsctl.demo.training:train"
params = { n_samples = "3000", drift = "v1=2.5,v2=2.5,v3=2.5" }
""")
    seed_registry(load_file(env.config), tmp_path / "seed", [models.FRAUD])
    daemon = DaemonProcess(env).start()
    try:
        with daemon.http(timeout=120) as http:
            answer = http.post("/v1/models/fraud-detector/retrain", json={
                "trigger": "drift", "reason": "drift on v1, v2, v3", "wait": True}).json()
            run = answer["run"]
            assert run["status"] == "canary_started", run
            assert run["parent_version"] == PRODUCTION_VERSION and run["candidate_version"] == "1.0.1"
            decision = run["decision"]
            assert decision["metric"] == "roc_auc" and decision["improvement"] >= 0.01
            assert decision["holdout_rows"] == 750
            assert "holdout metrics" in run["logs"]
            candidate = {v["version"]: v for v in http.get("/v1/models/fraud-detector/versions").json()}["1.0.1"]
            assert candidate["status"] == "canary" and candidate["reference"] is not None
            assert candidate["lineage"]["trigger"] == "drift"
            assert candidate["lineage"]["parent_version"] == PRODUCTION_VERSION
            assert candidate["lineage"]["code_version"].startswith("opsctl.demo.training:train")
            canary = http.get("/v1/canaries", params={"model": "fraud-detector"}).json()[0]
            assert (canary["canary_version"], canary["production_version"]) == ("1.0.1", PRODUCTION_VERSION)
            story = [e["action"] for e in http.get("/v1/history", params={"model": "fraud-detector"}).json()]
            assert story[story.index("retrain"):][:4] == ["retrain", "register", "retrain-decision", "canary_start"]
    finally:
        daemon.stop()
