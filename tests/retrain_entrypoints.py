"""Training entry points for the retraining pipeline's tests (test helpers only).

numpy and joblib only, so each training process starts fast. The model is a one-feature logistic
curve whose ``weight`` a test chooses: weight 5 separates the holdout well, weight 0.2 barely.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import joblib
import numpy as np

from opsctl.adapters.training import TrainingContext, TrainingResult
from tests.fixtures.wait import wait_for


class CurveModel:
    """``P(label = 1) = sigmoid(weight * x)``, with the scikit-learn ``predict_proba`` shape."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def predict_proba(self, frame: object) -> np.ndarray:
        x = np.asarray(frame["x"], dtype=float)  # type: ignore[index]
        p = 1.0 / (1.0 + np.exp(-self.weight * x))
        return np.column_stack([1.0 - p, p])


def holdout(seed: int = 3, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Labels follow x with 15 % noise: a steep curve is right about 85 % of the time."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    labels = ((x > 0) ^ (rng.random(n) < 0.15)).astype(int)
    return x, labels


def write_model(weight: float, path: Path) -> Path:
    joblib.dump(CurveModel(weight), path)
    return path


def train_curve(ctx: TrainingContext) -> TrainingResult:
    """Writes a CurveModel of ``params['weight']`` and the shared holdout (``holdout_seed``)."""
    release = ctx.params.get("release")
    if release:
        print("waiting for release", flush=True)
        wait_for(Path(release).exists, 20, 0.01, what="the test to release the training run")
    weight = float(ctx.params.get("weight", "5"))
    print(f"training curve, weight {weight}, parent {ctx.params.get('parent_version')!r}", flush=True)
    ctx.report_progress(0.5, "fitting")
    x, labels = holdout(int(ctx.params.get("holdout_seed", "3")))
    holdout_path = ctx.output_dir / "holdout.csv"
    lines = ["x,label"] + [f"{value!r},{label}" for value, label in zip(x.tolist(), labels.tolist(), strict=True)]
    holdout_path.write_text("\n".join(lines) + "\n")
    reference = ctx.output_dir / "reference.csv"
    reference.write_text("x\n" + "\n".join(repr(v) for v in x[:50].tolist()) + "\n")
    if ctx.params.get("no_holdout") == "yes":
        holdout_path.unlink()
    artifact = write_model(weight, ctx.output_dir / "model.joblib")
    ctx.report_progress(1.0, "done")
    return TrainingResult(
        artifact_path=artifact,
        metrics={"accuracy": 0.5},  # the training's own claim; the decision must not trust it
        training_data_hash="sha256:" + hashlib.sha256(f"curve-{weight}".encode()).hexdigest(),
        reference_sample_path=reference,
        holdout_path=None if ctx.params.get("no_holdout") == "yes" else holdout_path,
    )


def hang(ctx: TrainingContext) -> TrainingResult:
    print("training forever", flush=True)
    while True:
        time.sleep(1)


def raise_error(ctx: TrainingContext) -> TrainingResult:
    print("loading training data", flush=True)
    raise ValueError("bad training data: column 'x' missing")


def chatty(ctx: TrainingContext) -> TrainingResult:
    for i in range(500):
        print(f"line {i}")
    sys.stdout.flush()
    raise RuntimeError("done talking")
