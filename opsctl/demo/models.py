"""The demo fleet's real scikit-learn models and the data they live on.

Two models, both deterministic given a seed:

* ``fraud-detector``: the chapter's fraud detector, a random forest on
  ``make_classification`` data (10 numeric features ``v1 .. v10``, ~10 % fraud).
  ``make_classification`` draws a new *problem* for every ``random_state``, so the
  concept is generated once (``CONCEPT_SEED``) as a pool of rows, and datasets are
  seeded draws from it: training/retraining data from one half, live traffic from the
  other, so live predictions are never made on training rows.
* ``churn-predictor``: customer churn from named features, three numeric
  (``tenure_months``, ``monthly_charges``, ``support_calls``) and three categorical
  (``contract``, ``payment_method``, ``internet_service``), labels from a fixed
  logistic model; a one-hot + scaling + logistic-regression pipeline.

``make_dataset(..., drift={"v1": 2.0})`` shifts named features: numeric ones by
``level`` reference standard deviations, categorical ones by moving a share
``min(1, level / 4)`` of rows to the rarest category. Labels are drawn from the
undrifted concept, so drifted inputs also cost accuracy, as they do in life.

Heavy imports (numpy, pandas, sklearn, joblib) happen on import of this module; it is
only imported by the demo processes and training, never by the CLI dispatcher.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from opsctl.errors import IntegrityError, NotFoundError

FRAUD = "fraud-detector"
CHURN = "churn-predictor"
CONCEPT_SEED = 42
_POOL_SIZE = 100_000
Purpose = Literal["train", "live"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    features: tuple[Feature, ...]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise NotFoundError("feature", name, f"{self.name} has {', '.join(self.feature_names)}")


_CONTRACTS = ("month-to-month", "one-year", "two-year")
_PAYMENTS = ("electronic-check", "mailed-check", "bank-transfer", "credit-card")
_INTERNET = ("dsl", "fiber", "none")

SPECS: dict[str, ModelSpec] = {
    FRAUD: ModelSpec(
        FRAUD,
        "Card-transaction fraud (random forest on make_classification data)",
        tuple(Feature(f"v{i}", "numeric") for i in range(1, 11)),
    ),
    CHURN: ModelSpec(
        CHURN,
        "Customer churn within 90 days (one-hot + logistic regression)",
        (
            Feature("tenure_months", "numeric"),
            Feature("monthly_charges", "numeric"),
            Feature("support_calls", "numeric"),
            Feature("contract", "categorical", _CONTRACTS),
            Feature("payment_method", "categorical", _PAYMENTS),
            Feature("internet_service", "categorical", _INTERNET),
        ),
    ),
}


def spec(model: str) -> ModelSpec:
    try:
        return SPECS[model]
    except KeyError:
        raise NotFoundError("demo model", model, f"known: {', '.join(SPECS)}") from None


@dataclass(frozen=True)
class Dataset:
    model: str
    X: pd.DataFrame
    y: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        """Feature rows as JSON-ready dicts."""
        return frame_rows(self.X)


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a feature frame as JSON-ready dicts (numpy scalars converted)."""
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@functools.lru_cache(maxsize=1)
def _fraud_pool() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=_POOL_SIZE,
        n_features=10,
        n_informative=6,
        n_redundant=2,
        weights=[0.9],
        flip_y=0.01,
        class_sep=1.0,
        random_state=CONCEPT_SEED,
    )
    return X, y


def _fraud(n: int, rng: np.random.Generator, purpose: Purpose) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = _fraud_pool()
    half = _POOL_SIZE // 2
    offset = 0 if purpose == "train" else half
    index = offset + rng.choice(half, size=n, replace=n > half)
    return pd.DataFrame(X[index], columns=SPECS[FRAUD].feature_names), y[index].astype(int)


def _churn(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    tenure = rng.integers(1, 73, size=n).astype(float)
    charges = np.clip(rng.normal(65.0, 30.0, size=n), 18.0, 120.0).round(2)
    calls = rng.poisson(1.5, size=n).astype(float)
    contract = rng.choice(_CONTRACTS, size=n, p=[0.55, 0.25, 0.20])
    payment = rng.choice(_PAYMENTS, size=n, p=[0.35, 0.20, 0.22, 0.23])
    internet = rng.choice(_INTERNET, size=n, p=[0.35, 0.45, 0.20])
    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
        }
    )
    return frame, _churn_labels(frame, rng)


def _churn_labels(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    logit = (
        -1.0
        + 1.4 * (frame["contract"] == "month-to-month")
        - 0.8 * (frame["contract"] == "two-year")
        - 0.035 * frame["tenure_months"]
        + 0.015 * (frame["monthly_charges"] - 65.0)
        + 0.35 * frame["support_calls"]
        + 0.5 * (frame["payment_method"] == "electronic-check")
        + 0.4 * (frame["internet_service"] == "fiber")
    ).to_numpy(dtype=float)
    return (rng.random(len(frame)) < 1.0 / (1.0 + np.exp(-logit))).astype(int)


def make_dataset(
    model: str,
    n: int,
    seed: int,
    *,
    purpose: Purpose = "train",
    drift: Mapping[str, float] | None = None,
) -> Dataset:
    """``n`` labelled rows for ``model``; the same arguments give the same rows."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    model_spec = spec(model)
    # Separate seed streams per model and purpose: "train" seed 1 and "live" seed 1 differ.
    rng = np.random.default_rng([seed, list(SPECS).index(model), 0 if purpose == "train" else 1])
    if model == FRAUD:
        X, y = _fraud(n, rng, purpose)
    else:
        X, y = _churn(n, rng)
    if drift:
        X = apply_drift(model_spec, X, drift, rng)
    return Dataset(model, X[model_spec.feature_names], y)


def fresh_dataset(model: str, n: int = 2_000, seed: int = 1, drift: Mapping[str, float] | None = None) -> Dataset:
    """New labelled data for retraining, optionally drifted (the world the live model now sees)."""
    return make_dataset(model, n, seed=10_000 + seed, purpose="train", drift=drift)


@functools.cache
def reference_scales(model: str) -> dict[str, float]:
    """Standard deviation of each numeric feature on reference data: the unit of a drift level."""
    data = make_dataset(model, 5_000, seed=0)
    return {
        f.name: float(data.X[f.name].std(ddof=1)) for f in spec(model).features if f.kind == "numeric"
    }


@functools.cache
def rarest_category(model: str, feature: str) -> str:
    data = make_dataset(model, 5_000, seed=0)
    counts = data.X[feature].value_counts()
    return str(counts.index[-1])


def apply_drift(
    model_spec: ModelSpec, X: pd.DataFrame, drift: Mapping[str, float], rng: np.random.Generator
) -> pd.DataFrame:
    """Shift the named features (see the module docstring for what a level means)."""
    X = X.copy()
    scales = reference_scales(model_spec.name)
    for name, level in drift.items():
        feature = model_spec.feature(name)
        if feature.kind == "numeric":
            X[name] = X[name] + level * scales[name]
        else:
            moved = rng.random(len(X)) < min(1.0, abs(level) / 4.0)
            X.loc[moved, name] = rarest_category(model_spec.name, name)
    return X


def rows_to_frame(model: str, rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows from JSON to the frame the estimator expects; raises ValueError naming a bad feature."""
    model_spec = spec(model)
    for row in rows:
        missing = [name for name in model_spec.feature_names if name not in row]
        if missing:
            raise ValueError(f"missing features: {', '.join(missing)}")
        for feature in model_spec.features:
            value = row[feature.name]
            if feature.kind == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                    raise ValueError(f"feature {feature.name!r} must be a finite number, got {value!r}")
            elif not isinstance(value, str):
                raise ValueError(f"feature {feature.name!r} must be a string, got {value!r}")
    return pd.DataFrame([{name: row[name] for name in model_spec.feature_names} for row in rows])


def build_estimator(model: str, variant: int, seed: int) -> Any:
    """An unfitted estimator; ``variant`` 0 is the production recipe, 1 the candidate's."""
    if model == FRAUD:
        return RandomForestClassifier(
            n_estimators=(40, 80)[variant % 2], max_depth=(8, 12)[variant % 2], random_state=seed, n_jobs=1
        )
    model_spec = spec(model)
    numeric = [f.name for f in model_spec.features if f.kind == "numeric"]
    categorical = [f.name for f in model_spec.features if f.kind == "categorical"]
    return Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), numeric),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(C=(1.0, 0.3)[variant % 2], max_iter=1_000)),
        ]
    )


@dataclass(frozen=True)
class TrainedModel:
    model: str
    estimator: Any
    metrics: dict[str, float]
    reference: Dataset


def evaluate(estimator: Any, data: Dataset) -> dict[str, float]:
    """Holdout metrics the registry records with a version."""
    scores = estimator.predict_proba(data.X)[:, 1]
    predicted = (scores >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(data.y, predicted)),
        "precision": float(precision_score(data.y, predicted, zero_division=0)),
        "recall": float(recall_score(data.y, predicted, zero_division=0)),
        "f1": float(f1_score(data.y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(data.y, scores)),
    }


def train_model(
    model: str, *, seed: int = 0, variant: int = 0, n_samples: int = 4_000, data: Dataset | None = None
) -> TrainedModel:
    """Fit ``model`` deterministically; ``data`` (e.g. from fresh_dataset) overrides the default training set."""
    training = data if data is not None else make_dataset(model, n_samples, seed=seed)
    estimator = build_estimator(model, variant, seed)
    estimator.fit(training.X, training.y)
    holdout = make_dataset(model, 2_000, seed=seed + 500)
    return TrainedModel(model, estimator, evaluate(estimator, holdout), training)


def predict_scores(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class (fraud, churn) per row."""
    return np.asarray(estimator.predict_proba(frame)[:, 1], dtype=float)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_artifact(estimator: Any, path: str | os.PathLike[str]) -> str:
    """Write the estimator with joblib; returns the file's sha256 (what the registry records)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, path)
    return sha256_file(path)


def load_artifact(path: str | os.PathLike[str], sha256: str) -> Any:
    """Load a joblib artifact only after its sha256 matches: unpickling runs code."""
    try:
        actual = sha256_file(path)
    except OSError as error:
        raise IntegrityError(f"artifact {path} cannot be read: {error.strerror or error}") from error
    if actual != sha256.lower():
        raise IntegrityError(f"artifact {path} failed verification: sha256 is {actual}, expected {sha256}")
    return joblib.load(path)
