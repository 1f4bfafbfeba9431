from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from opsctl.demo import models
from opsctl.demo.traffic import Target, TrafficGenerator
from tests.demo.test_server import MODEL, artifacts, sample, scrape, start_server

__all__ = ["artifacts"]


class RecordingServer:
    """A stand-in model server (httpx.MockTransport) that records when each call arrived."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.predictions: dict[str, tuple[float, dict]] = {}
        self.feedback: list[tuple[float, dict]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        now = time.monotonic()
        if request.url.path == "/predict":
            self.predictions[body["prediction_id"]] = (now, body)
            return httpx.Response(self.status, json={"prediction_id": body["prediction_id"], "prediction": 0})
        self.feedback.append((now, body))
        return httpx.Response(200, json={"matched": True})


def run_generator(server: RecordingServer, duration: float, **kwargs: object) -> TrafficGenerator:
    async def go() -> TrafficGenerator:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as client:
            generator = TrafficGenerator([Target(MODEL, "http://churn")], client=client, **kwargs)  # type: ignore[arg-type]
            await generator.run(duration)
            return generator

    return asyncio.run(go())


def test_steady_rate_unique_ids_and_true_labels_after_the_delay() -> None:
    server = RecordingServer()
    generator = run_generator(server, 1.5, rate_per_second=40, label_delay_seconds=0.4, seed=3, users=50)
    stats = generator.stats[MODEL]
    assert 40 <= len(server.predictions) <= 66  # 40/s for 1.5 s, give or take a tick
    assert stats.sent == stats.answered == len(server.predictions)
    assert all(body["id"].startswith("user-") and int(body["id"][5:]) < 50
               for _, body in server.predictions.values())
    # The features are the model's live rows, in order; the labels are those rows' true labels.
    data = models.make_dataset(MODEL, 2_000, seed=3 * 1_000 * 10_000, purpose="live")
    rows, truth = data.rows(), [int(v) for v in data.y]
    for number in (1, 2, 10):
        assert server.predictions[f"{MODEL}-3-{number}"][1]["features"] == rows[number - 1]
    assert len(server.feedback) >= 20
    for sent_at, body in server.feedback:
        predicted_at, _ = server.predictions[body["prediction_id"]]
        assert sent_at - predicted_at >= 0.4  # never before the delay
        number = int(body["prediction_id"].rsplit("-", 1)[1])
        assert body["label"] == truth[number - 1]
    assert stats.labels_sent == len(server.feedback)
    assert stats.labels_sent + stats.labels_pending == stats.answered  # the rest were not due yet


def test_labels_keep_up_with_predictions_when_each_feedback_call_is_slow() -> None:
    # A model server slow to answer /feedback (a loaded host): labels must still go out on time, not
    # queue behind each other and arrive ever later until they miss the daemon's window.
    server = RecordingServer()

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/feedback":
            await asyncio.sleep(0.1)  # one at a time this allows 10 labels/s against 40 predictions/s
        return server.handle(request)

    async def go() -> TrafficGenerator:
        async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
            generator = TrafficGenerator([Target(MODEL, "http://churn")], client=client, rate_per_second=40,
                                         label_delay_seconds=0.2, seed=5, users=50)
            await generator.run(2.0)
            return generator

    asyncio.run(go())
    assert len(server.feedback) >= 50
    lags = [sent_at - server.predictions[body["prediction_id"]][0] for sent_at, body in server.feedback]
    assert max(lags) < 0.2 + 0.1 + 0.25, f"labels fell behind: up to {max(lags):.2f}s after the prediction"


def test_no_labels_for_failed_predictions_or_when_the_fraction_is_zero() -> None:
    failing = RecordingServer(status=500)
    stats = run_generator(failing, 0.5, rate_per_second=40, label_delay_seconds=0.0).stats[MODEL]
    assert stats.failed == stats.sent > 0 and failing.feedback == []
    unlabelled = RecordingServer()
    run_generator(unlabelled, 0.5, rate_per_second=40, label_delay_seconds=0.0, label_fraction=0.0)
    assert unlabelled.predictions and unlabelled.feedback == []


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TrafficGenerator([Target(MODEL, "http://x")], rate_per_second=0)
    with pytest.raises(ValueError):
        Target.parse("churn-predictor:8080")


def test_traffic_process_drives_a_real_server_to_accuracy(
    tmp_path: Path, artifacts: dict[str, tuple[Path, str]]
) -> None:
    server = start_server(tmp_path, artifacts, "--split", "1.0.0=50", "--split", "1.1.0=50")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "opsctl.demo.traffic", "--target", f"{MODEL}={server.url}",
             "--rate", "30", "--label-delay", "0.5", "--duration", "3", "--seed", "1"],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        stats = json.loads(result.stdout.strip().splitlines()[-1])[MODEL]
        assert stats["answered"] >= 45 and stats["failed"] == 0 and stats["labels_sent"] >= 20, stats
        with httpx.Client(base_url=server.url) as http:
            samples = scrape(http)
        served = sum(sample(samples, "model_predictions_total", model=MODEL, model_version=v, status="success")
                     or 0 for v in ("1.0.0", "1.1.0"))
        # A request cancelled in flight at shutdown may still have been served.
        assert stats["answered"] <= served <= stats["sent"]
        accuracies = [sample(samples, "model_accuracy", model=MODEL, model_version=v) for v in ("1.0.0", "1.1.0")]
        assert all(a is not None and 0.5 < a <= 1.0 for a in accuracies), accuracies
    finally:
        server.stop()
