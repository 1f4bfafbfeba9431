"""Seed the demo's registry: two real versions per model, one in production, one candidate.

For each model: ``1.0.0`` (the production recipe, trained on seed 0) and ``1.1.0`` (the candidate
recipe, seed 1), each registered with its joblib artifact (the registry records its sha256),
holdout metrics (accuracy, AUC, precision, recall, f1, also written as ``*.metrics.json``) and a
reference sample (``*.reference.csv``, features of the training data) for drift checks. ``1.0.0``
is promoted to production; ``1.1.0`` stays registered, ready for ``opsctl canary start``.

Idempotent: a version already in the registry is left alone (not retrained), and production is
only set when the model has none, so a second ``opsctl demo`` on the same state dir starts fast
and keeps whatever the user did to it (a finished canary, a rollback).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opsctl.backends import DirectBackend
from opsctl.config import Settings
from opsctl.domain import Lineage, ModelVersion, VersionStatus
from opsctl.services.registry import RegisterRequest

PRODUCTION_VERSION = "1.0.0"
CANDIDATE_VERSION = "1.1.0"
REFERENCE_ROWS = 2_000
_RECIPES = {PRODUCTION_VERSION: (0, 0), CANDIDATE_VERSION: (1, 1)}  # version -> (variant, seed)


@dataclass(frozen=True)
class SeededVersion:
    version: str
    artifact: Path  # the registry's verified copy, what the servers load
    sha256: str


@dataclass(frozen=True)
class SeededModel:
    model: str
    production: str
    candidate: str
    versions: tuple[SeededVersion, ...]

    def to_json(self) -> dict[str, object]:
        return {"model": self.model, "production": self.production, "candidate": self.candidate,
                "versions": [{"version": v.version, "artifact": str(v.artifact), "sha256": v.sha256}
                             for v in self.versions]}


def seed_registry(
    settings: Settings,
    work_dir: Path,
    models: Sequence[str],
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> list[SeededModel]:
    """Register and promote what is missing; returns every model's versions, production first."""
    backend = DirectBackend(settings, via="demo-seed")
    seeded = []
    for model in models:
        present = {v.version: v for v in _versions(backend, model)}
        for version in (PRODUCTION_VERSION, CANDIDATE_VERSION):
            if version not in present:
                progress(f"training {model} {version}")
                present[version] = _train_and_register(backend, work_dir, model, version)
        production = backend.registry.get_deployment(model)
        if production is None or production.production_version is None:
            backend.promote(model, PRODUCTION_VERSION, reason="demo seed: initial production version",
                            expected_generation=None)
            production = backend.registry.get_deployment(model)
        assert production is not None and production.production_version is not None
        serving = production.production_version
        candidate = CANDIDATE_VERSION if serving != CANDIDATE_VERSION else PRODUCTION_VERSION
        order = [serving, *sorted(v for v in present if v != serving and present[v].status != VersionStatus.ARCHIVED)]
        versions = tuple(
            SeededVersion(v, Path(backend.verify(model, v)), present[v].sha256) for v in order
        )
        seeded.append(SeededModel(model, serving, candidate, versions))
    return seeded


def _versions(backend: DirectBackend, model: str) -> list[ModelVersion]:
    if backend.registry.get_deployment(model) is None:
        return []
    return backend.versions(model)


def _train_and_register(backend: DirectBackend, work_dir: Path, model: str, version: str) -> ModelVersion:
    from opsctl.demo import models as demo_models

    variant, seed = _RECIPES[version]
    trained = demo_models.train_model(model, seed=seed, variant=variant)
    work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{model}-{version}"  # not Path.with_suffix: "1.0.0" has dots of its own
    artifact = work_dir / f"{stem}.joblib"
    data_hash = _frame_sha256(trained.reference)
    demo_models.save_artifact(trained.estimator, artifact)
    metrics = {**trained.metrics, "auc": trained.metrics["roc_auc"]}
    metrics_path = work_dir / f"{stem}.metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    reference = work_dir / f"{stem}.reference.csv"
    trained.reference.X.head(REFERENCE_ROWS).to_csv(reference, index=False)
    role = "production" if version == PRODUCTION_VERSION else "candidate"
    request = RegisterRequest(
        model=model,
        version=version,
        artifact=artifact,
        metrics=json.loads(metrics_path.read_text(encoding="utf-8")),
        reference=reference,
        description=f"demo {role}: {demo_models.spec(model).description}",
        tags={"demo": "true", "role": role},
        lineage=Lineage(training_data_hash=data_hash, code_version="opsctl-demo",
                        parent_version=PRODUCTION_VERSION if version != PRODUCTION_VERSION else None,
                        trigger="demo-seed"),
    )
    return backend.register(request, reason="demo seed")


def _frame_sha256(data: object) -> str:
    import hashlib

    import pandas as pd

    frame = data.X  # type: ignore[attr-defined]
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
