"""The demo fleet's training entry point for the retraining pipeline.

``[retrain.models.fraud-detector] entrypoint = "opsctl.demo.training:train"`` makes the daemon run
:func:`train` in a training process (see ``opsctl.adapters.training``). It trains the demo model
on *fresh* demo data (``models.fresh_dataset``), drifted like production when ``drift`` is set,
and hands back the artifact, its metrics on a holdout, the holdout itself (features + ``label``)
for the champion/challenger comparison, a reference sample for the drift checks, and the hash
of the training data.

Parameters (``ctx.params``, strings): ``model`` (set by the service), ``n_samples`` (default
4000, of which ``holdout_fraction`` = 0.25 is held out), ``seed`` (default: derived from the run
id, so each run sees new data), ``drift`` (``"v1=2.0,v2=1.5"``: the shift production sees),
``variant`` (estimator recipe, default 1), ``reference_rows`` (default 2000).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from opsctl.adapters.training import TrainingContext, TrainingResult

LABEL_COLUMN = "label"


def parse_drift(text: str) -> dict[str, float]:
    """``"v1=2.0, v2=1.5"`` -> ``{"v1": 2.0, "v2": 1.5}``; empty text, no drift."""
    drift: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, level = part.partition("=")
        try:
            drift[name.strip()] = float(level)
        except ValueError:
            raise ValueError(f"drift must look like 'feature=level,...', got {text!r}") from None
        if not sep or not name.strip():
            raise ValueError(f"drift must look like 'feature=level,...', got {text!r}")
    return drift


def _int(params: Mapping[str, str], key: str, default: int) -> int:
    raw = params.get(key, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"parameter {key!r} must be an integer, got {raw!r}") from None


def _seed(params: Mapping[str, str]) -> int:
    if params.get("seed"):
        return _int(params, "seed", 0)
    # Fresh data per run, reproducible from the run id the registry records.
    digest = hashlib.sha256(params.get("run_id", "").encode()).digest()
    return int.from_bytes(digest[:4], "big")


def train(ctx: TrainingContext) -> TrainingResult:
    """Train the demo model named by ``ctx.params["model"]`` on fresh data; see the module docstring."""
    from opsctl.demo import models  # heavy (sklearn, pandas): loaded in the training process only

    params = ctx.params
    model = params.get("model", "")
    models.spec(model)  # NotFoundError naming the known demo models
    n_samples = _int(params, "n_samples", 4000)
    if n_samples < 40:
        raise ValueError(f"n_samples must be at least 40, got {n_samples}")
    holdout_fraction = float(params.get("holdout_fraction", "0.25") or 0.25)
    if not 0.05 <= holdout_fraction <= 0.5:
        raise ValueError(f"holdout_fraction must be between 0.05 and 0.5, got {holdout_fraction}")
    variant = _int(params, "variant", 1)
    seed = _seed(params)
    drift = parse_drift(params.get("drift", ""))
    print(f"fresh {model} data: {n_samples} rows, seed {seed}, drift {drift or 'none'}", flush=True)
    ctx.report_progress(0.1, "generating fresh data")

    data = models.fresh_dataset(model, n_samples, seed=seed, drift=drift or None)
    n_holdout = max(20, round(n_samples * holdout_fraction))
    train_x, train_y = data.X.iloc[:-n_holdout], data.y[:-n_holdout]
    holdout_x, holdout_y = data.X.iloc[-n_holdout:], data.y[-n_holdout:]
    training = models.Dataset(model, train_x.reset_index(drop=True), train_y)
    holdout = models.Dataset(model, holdout_x.reset_index(drop=True), holdout_y)

    frame = training.X.assign(**{LABEL_COLUMN: training.y})
    data_hash = "sha256:" + hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    print(f"training data {data_hash} ({len(frame)} rows)", flush=True)
    ctx.report_progress(0.3, f"fitting variant {variant} on {len(frame)} rows")

    estimator = models.build_estimator(model, variant, seed % (2**31))
    estimator.fit(training.X, training.y)
    ctx.report_progress(0.8, "evaluating on the holdout")
    metrics = models.evaluate(estimator, holdout)
    print("holdout metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)

    out = ctx.output_dir
    artifact = out / "model.joblib"
    models.save_artifact(estimator, artifact)
    holdout_path = out / "holdout.csv"
    holdout.X.assign(**{LABEL_COLUMN: holdout.y}).to_csv(holdout_path, index=False)
    reference_path = out / "reference.csv"
    reference_rows = _int(params, "reference_rows", 2000)
    training.X.head(reference_rows).to_csv(reference_path, index=False)
    ctx.report_progress(1.0, "done")
    return TrainingResult(artifact_path=artifact, metrics=metrics, training_data_hash=data_hash,
                          reference_sample_path=reference_path, holdout_path=holdout_path)
