"""The demo fleet's generated config: its policies must fit the demo's own faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsctl.config import parse_settings
from opsctl.core.drift import detect_drift, summarize_reference
from opsctl.demo import models
from opsctl.demo.faults import DEFAULT_LEVELS, FaultKind
from opsctl.demo.fleet import DEMO_MODELS, FleetLayout, demo_config_toml

LIVE_ROWS = 300  # about what the drift window holds half a minute into a fault at the demo's rate


def _verdicts(model: str, tmp_path: Path) -> tuple[bool | None, bool | None]:
    """(healthy, drifted) dataset verdicts of the demo's drift policy for ``model``."""
    layout = FleetLayout.at(tmp_path)
    policy = parse_settings(demo_config_toml(layout, "http://127.0.0.1:9")).drift
    spec = models.spec(model)
    categorical = [f.name for f in spec.features if f.kind == "categorical"]
    # The seed's reference sample is the training data; live traffic is the "live" stream.
    reference = models.make_dataset(model, 2_000, seed=0).X
    summary = summarize_reference(reference, categorical, psi_bins=policy.psi_bins)
    live = models.make_dataset(model, LIVE_ROWS, seed=7, purpose="live").X
    # What the model server does under `opsctl demo fault MODEL drift` with no --feature.
    shifted = {name: DEFAULT_LEVELS[FaultKind.DRIFT] for name in spec.feature_names[:2]}
    drifted = models.apply_drift(spec, live, shifted, np.random.default_rng(3))
    return detect_drift(summary, live, policy).dataset_drift, detect_drift(summary, drifted, policy).dataset_drift


@pytest.mark.parametrize("model", DEMO_MODELS)
def test_the_demo_drift_fault_is_dataset_drift_under_the_demo_policy(model: str, tmp_path: Path) -> None:
    # Regression: with the product's drift_share 0.5, the default fault (2 of fraud-detector's 10
    # features) was "no_drift", so the drift job never asked for the retrain the demo advertises.
    healthy, drifted = _verdicts(model, tmp_path)
    assert drifted is True
    assert healthy is False
