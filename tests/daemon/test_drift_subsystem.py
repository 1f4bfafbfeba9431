"""Ingestion, drift and performance in the real daemon, driven as a user would: versions registered with a
reference CSV through the CLI, traffic logged with the real SDK logger into the folder the daemon ingests,
verdicts read with ``opsctl drift MODEL -o json`` and ``opsctl performance MODEL -o json``.

Jobs run every fraction of a second here; the mechanism is the one used with the 5 s / 300 s defaults.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from opsctl.sdk.predlog import FeedbackLogger, PredictionLogger
from tests.fixtures.cli import OpsctlEnv, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

CONFIG = """
[jobs]
housekeeping_seconds = 60
health_seconds = 3600
alerts_seconds = 3600
ingest_seconds = 0.2
drift_seconds = 0.5
performance_seconds = 0.5

[ingest]
log_dirs = ["logs"]

[performance]
min_labels = 100
min_class_labels = 10
"""


def reference_csv(path: Path, rows: int = 2000, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, rows)
    pd.DataFrame({
        "x1": x1,
        "x2": rng.normal(5, 2, rows),
        "color": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        "prediction_score": 1 / (1 + np.exp(-3 * x1)),
        "predicted_class": (x1 > 0).astype(int),
    }).to_csv(path, index=False)
    return path


def traffic(n: int, *, shift: float = 0.0, seed: int = 2, start: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1, n)
    x2 = rng.normal(5, 2, n)
    color = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    return [{"id": f"p{start + i}", "features": {"x1": float(x1[i]), "x2": float(x2[i]), "color": str(color[i])},
             "prediction": int(x1[i] > 0), "score": float(1 / (1 + np.exp(-3 * x1[i])))} for i in range(n)]


def deploy(env: OpsctlEnv, model: str, accuracy: float = 0.9) -> None:
    artifact = env.root / f"{model}.bin"
    artifact.write_bytes(model.encode())
    metrics = env.root / f"{model}.metrics.json"
    metrics.write_text(json.dumps({"accuracy": accuracy}))
    reference = reference_csv(env.root / f"{model}.reference.csv")
    registered = env.run("register", model, "--version", "v1", "--artifact", str(artifact), "--metrics",
                         str(metrics), "--reference", str(reference))
    assert registered.code == 0, registered.stderr
    promoted = env.run("promote", model, "v1", "--yes")
    assert promoted.code == 0, promoted.stderr


def log_predictions(logs: Path, model: str, rows: list[dict[str, Any]]) -> None:
    with PredictionLogger(logs, model, "v1", registry=CollectorRegistry()) as logger:
        for row in rows:
            assert logger.log(row["id"], row["features"], row["prediction"], row["score"], 2.5)


def log_labels(logs: Path, model: str, labels: list[tuple[str, int]]) -> None:
    with FeedbackLogger(logs, model, registry=CollectorRegistry()) as logger:
        for prediction_id, label in labels:
            assert logger.log(prediction_id, label)


def cli_json(env: OpsctlEnv, *args: str) -> Any:
    result = env.run(*args, "-o", "json")
    assert result.code == 0, result.stderr
    return result.json()


def drift_verdict(env: OpsctlEnv, model: str) -> dict[str, Any]:
    (version,) = cli_json(env, "drift", model)["versions"]
    return version


def performance_of(env: OpsctlEnv, model: str) -> dict[str, Any]:
    (version,) = cli_json(env, "performance", model)["versions"]
    return version["result"] or {}


def window(daemon: DaemonProcess, model: str) -> dict[str, Any]:
    with daemon.http() as http:
        return http.get(f"/v1/drift/{model}").json()["window"]  # type: ignore[no-any-return]


def ingest_status(daemon: DaemonProcess) -> dict[str, Any]:
    with daemon.http() as http:
        return http.get("/v1/status").json()["ingest"]  # type: ignore[no-any-return]


def ingest_runs(daemon: DaemonProcess) -> int:
    with daemon.http() as http:
        jobs = http.get("/v1/status").json()["jobs"]
    return next(j["runs"] for j in jobs if j["name"] == "ingest")  # type: ignore[no-any-return]


def metric_samples(daemon: DaemonProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    with daemon.http() as http:
        text = http.get("/metrics").text
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


@pytest.fixture
def env(tmp_path: Path) -> OpsctlEnv:
    env = make_opsctl_env(tmp_path / "opsctl", CONFIG)
    (env.root / "logs").mkdir()
    return env


@pytest.fixture
def daemon(env: OpsctlEnv) -> Iterator[DaemonProcess]:
    process = DaemonProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


def test_drift_is_detected_for_a_shifted_stream_and_not_for_a_stable_one(env: OpsctlEnv,
                                                                         daemon: DaemonProcess) -> None:
    logs = env.root / "logs"
    deploy(env, "stable")
    deploy(env, "shifted")
    log_predictions(logs, "stable", traffic(600, seed=3))
    log_predictions(logs, "shifted", traffic(600, shift=1.0, seed=4))
    with (logs / "shifted.predictions.jsonl").open("a") as handle:
        handle.write('{"prediction_id": "broken", "model": "shifted"\n')  # a malformed line mid-stream
    log_predictions(logs, "shifted", traffic(10, shift=1.0, seed=5, start=600))

    wait_for(lambda: window(daemon, "shifted")["rows"] == 610 and window(daemon, "stable")["rows"] == 600,
             timeout=20, what="all 1,210 predictions in the windows")
    shifted = wait_for(lambda: (v := drift_verdict(env, "shifted")).get("rows_current") == 610 and v,
                       timeout=20, what="a drift check over the whole window")
    stable = wait_for(lambda: (v := drift_verdict(env, "stable")).get("rows_current") == 600 and v,
                      timeout=20, what="a drift check of the stable model")
    assert (shifted["verdict"], shifted["dataset_drift"]) == ("drift", True)
    assert (stable["verdict"], stable["dataset_drift"]) == ("no_drift", False)
    features = {f["name"]: f for f in shifted["features"]}
    assert set(features) == {"x1", "x2", "color", "prediction_score", "predicted_class"}
    assert [n for n, f in features.items() if f["drifted"]] == ["x1", "prediction_score", "predicted_class"]
    for f in features.values():
        assert {"test", "statistic", "p_value_adjusted", "effect_size", "drifted"} <= set(f)

    status = ingest_status(daemon)
    assert status["malformed"] == 1
    assert status["recent_malformed"][0]["line"] == 601
    dataset = metric_samples(daemon, "opsctl_drift_dataset_drifted")
    assert dataset[(("model", "shifted"), ("model_version", "v1"))] == 1.0
    assert dataset[(("model", "stable"), ("model_version", "v1"))] == 0.0

    report = env.root / "incident.md"
    written = env.run("drift", "shifted", "--report", str(report))
    assert written.code == 0, written.stderr
    text = report.read_text()
    assert text.startswith("## Drift report: shifted v1 (production)")
    assert "| x1 | numerical | ks |" in text and "**DRIFT**" in text
    history = cli_json(env, "drift", "shifted", "--history", "3")["history"]
    assert len(history) == 3 and {h["verdict"] for h in history} <= {"drift", "insufficient_data"}
    assert history[0]["verdict"] == "drift"
    table = env.run("drift", "shifted")
    assert table.code == 0 and "shifted v1 (production): DRIFT" in table.stdout


def test_performance_needs_labels_then_degrades_with_label_noise(env: OpsctlEnv, daemon: DaemonProcess) -> None:
    logs = env.root / "logs"
    deploy(env, "fraud", accuracy=0.9)
    rows = traffic(400, seed=6)
    log_predictions(logs, "fraud", rows)
    log_labels(logs, "fraud", [(r["id"], r["prediction"]) for r in rows[:40]])
    first = wait_for(lambda: (p := performance_of(env, "fraud")).get("labelled") == 40 and p, timeout=20,
                     what="a performance check with the first 40 labels")
    assert first["verdict"] == "not_enough_labels"

    rng = np.random.default_rng(8)
    flips = rng.random(360) < 0.3  # 30 % of the labels disagree: accuracy ~0.75 against a 0.9 baseline
    log_labels(logs, "fraud", [(r["id"], 1 - r["prediction"] if flip else r["prediction"])
                               for r, flip in zip(rows[40:], flips, strict=True)])
    later = wait_for(lambda: (p := performance_of(env, "fraud")).get("labelled") == 400 and p, timeout=20,
                     what="a performance check with all 400 labels")
    assert later["verdict"] == "degraded"
    accuracy = next(m for m in later["metrics"] if m["name"] == "accuracy")
    assert accuracy["value"] == pytest.approx(1 - flips.sum() / 400)
    labelled = metric_samples(daemon, "opsctl_performance_labelled")
    assert labelled[(("model", "fraud"), ("model_version", "v1"))] == 400.0

    # The HTTP ingestion endpoint validates the whole batch and names the bad field.
    with daemon.http() as http:
        bad = http.post("/v1/ingest", json={"records": [{"prediction_id": "x", "model": "fraud"}]})
        assert bad.status_code == 400
        assert "'records[0].timestamp' is required" in bad.json()["error"]["message"]
        good = http.post("/v1/ingest", json={"records": [{"prediction_id": "p0", "label": 1,
                                                          "timestamp": "2026-01-01T00:00:00Z"}]})
        assert good.status_code == 200 and good.json()["accepted"] == 1


def test_offsets_survive_a_restart_with_no_duplicates(env: OpsctlEnv) -> None:
    logs = env.root / "logs"
    first = DaemonProcess(env).start()
    try:
        deploy(env, "fraud")
        log_predictions(logs, "fraud", traffic(150, seed=9))
        wait_for(lambda: window(first, "fraud")["rows"] == 150, timeout=20, what="150 rows in the window")
    finally:
        first.stop()
    with sqlite3.connect(env.state_dir / "registry.db") as db:
        stored = dict(db.execute("SELECT key, offset FROM ingest_offsets").fetchall())
    path = str((logs / "fraud.predictions.jsonl").resolve())
    assert stored == {path: (logs / "fraud.predictions.jsonl").stat().st_size}

    second = DaemonProcess(env).start()
    try:
        log_predictions(logs, "fraud", traffic(30, seed=10, start=150))
        wait_for(lambda: ingest_status(second)["records"] == 30, timeout=20, what="the 30 new records")
        runs = ingest_runs(second)
        wait_for(lambda: ingest_runs(second) >= runs + 3, timeout=20, what="three more ingest ticks")
        # Only the lines written after the restart were read: the old 150 are neither re-read nor duplicated.
        assert ingest_status(second)["records"] == 30
        assert ingest_status(second)["window"]["duplicates"] == 0
        assert window(second, "fraud")["rows"] == 30
    finally:
        second.stop()


def test_unknown_model_and_bad_history_are_clear_errors(env: OpsctlEnv, daemon: DaemonProcess) -> None:
    missing = env.run("drift", "nope")
    assert missing.code == 3 and "model 'nope' not found" in missing.stderr
    with daemon.http() as http:
        assert http.get("/v1/drift/nope").status_code == 404
        bad = http.get("/v1/performance/nope")
        assert bad.status_code == 404
        deploy(env, "m")
        assert http.get("/v1/drift/m", params={"history": "0"}).status_code == 400
        assert http.get("/v1/drift/m", params={"history": "2"}).status_code == 200
