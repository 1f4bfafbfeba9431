from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from opsctl.demo import models
from opsctl.errors import IntegrityError


@pytest.mark.parametrize("model", sorted(models.SPECS))
def test_datasets_are_deterministic_given_a_seed(model: str) -> None:
    a = models.make_dataset(model, 500, seed=3)
    b = models.make_dataset(model, 500, seed=3)
    c = models.make_dataset(model, 500, seed=4)
    pd.testing.assert_frame_equal(a.X, b.X)
    assert np.array_equal(a.y, b.y)
    assert not a.X.equals(c.X)
    assert list(a.X.columns) == models.spec(model).feature_names
    assert set(np.unique(a.y)) == {0, 1}


def test_fraud_live_traffic_never_reuses_training_rows() -> None:
    train = models.make_dataset(models.FRAUD, 5_000, seed=0)
    live = models.make_dataset(models.FRAUD, 5_000, seed=0, purpose="live")
    train_rows = {tuple(r) for r in train.X.to_numpy().round(12)}
    assert not any(tuple(r) in train_rows for r in live.X.to_numpy().round(12))
    assert 0.05 < live.y.mean() < 0.2  # fraud is the rare class


def test_churn_has_named_categorical_features() -> None:
    spec = models.spec(models.CHURN)
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds["contract"] == "categorical" and kinds["tenure_months"] == "numeric"
    data = models.make_dataset(models.CHURN, 2_000, seed=1)
    assert set(data.X["contract"]) == set(spec.feature("contract").categories)


@pytest.mark.parametrize(("model", "min_auc"), [(models.FRAUD, 0.85), (models.CHURN, 0.75)])
def test_training_is_deterministic_and_learns(model: str, min_auc: float) -> None:
    first = models.train_model(model, seed=0)
    second = models.train_model(model, seed=0)
    live = models.make_dataset(model, 1_000, seed=9, purpose="live")
    assert np.array_equal(models.predict_scores(first.estimator, live.X),
                          models.predict_scores(second.estimator, live.X))
    assert first.metrics == second.metrics
    assert first.metrics["roc_auc"] > min_auc
    assert models.evaluate(first.estimator, live)["roc_auc"] > min_auc


def test_fresh_data_without_drift_matches_the_reference_and_with_drift_moves() -> None:
    reference = models.make_dataset(models.CHURN, 3_000, seed=0)
    fresh = models.fresh_dataset(models.CHURN, 3_000, seed=1)
    drifted = models.fresh_dataset(models.CHURN, 3_000, seed=1, drift={"monthly_charges": 1.0, "contract": 2.0})
    assert ks_2samp(reference.X["monthly_charges"], fresh.X["monthly_charges"]).pvalue > 0.01
    shift = drifted.X["monthly_charges"].mean() - fresh.X["monthly_charges"].mean()
    assert shift == pytest.approx(models.reference_scales(models.CHURN)["monthly_charges"], rel=1e-9)
    rarest = models.rarest_category(models.CHURN, "contract")
    before = (fresh.X["contract"] == rarest).mean()
    after = (drifted.X["contract"] == rarest).mean()
    assert after - before == pytest.approx(0.5 * (1 - before), abs=0.04)  # half the other rows moved
    # Labels come from the undrifted concept, so a drifted world costs accuracy.
    model = models.train_model(models.CHURN)
    assert models.evaluate(model.estimator, drifted)["accuracy"] < models.evaluate(model.estimator, fresh)["accuracy"]


def test_drift_of_an_unknown_feature_is_refused() -> None:
    with pytest.raises(LookupError):
        models.make_dataset(models.FRAUD, 10, seed=0, drift={"nope": 1.0})


def test_artifacts_load_only_with_the_right_sha256(tmp_path: Path) -> None:
    trained = models.train_model(models.CHURN)
    path = tmp_path / "churn.joblib"
    digest = models.save_artifact(trained.estimator, path)
    assert digest == models.sha256_file(path) and len(digest) == 64
    loaded = models.load_artifact(path, digest.upper())
    rows = models.make_dataset(models.CHURN, 50, seed=2, purpose="live").X
    assert np.array_equal(models.predict_scores(loaded, rows), models.predict_scores(trained.estimator, rows))
    with pytest.raises(IntegrityError, match="failed verification"):
        models.load_artifact(path, "0" * 64)
    with pytest.raises(IntegrityError, match="cannot be read"):
        models.load_artifact(tmp_path / "missing.joblib", digest)


def test_rows_to_frame_validates_features() -> None:
    row = models.make_dataset(models.CHURN, 1, seed=0).rows()[0]
    assert list(models.rows_to_frame(models.CHURN, [row]).columns) == models.spec(models.CHURN).feature_names
    with pytest.raises(ValueError, match="missing features: contract"):
        models.rows_to_frame(models.CHURN, [{k: v for k, v in row.items() if k != "contract"}])
    with pytest.raises(ValueError, match="tenure_months"):
        models.rows_to_frame(models.CHURN, [{**row, "tenure_months": "ten"}])
    with pytest.raises(ValueError, match="contract"):
        models.rows_to_frame(models.CHURN, [{**row, "contract": 3}])
