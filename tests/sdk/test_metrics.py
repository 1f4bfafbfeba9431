from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.sdk.metrics import LATENCY_BUCKETS, ModelMetrics


def scrape(registry: CollectorRegistry) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Parse the exposition text the way Prometheus would, by family name."""
    text = generate_latest(registry).decode()
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_success_and_error_are_counted_with_the_standard_labels() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics("fraud-detector", "1.0.0", registry=registry)
    with metrics.time():
        pass
    with pytest.raises(RuntimeError), metrics.time():
        raise RuntimeError("model exploded")
    with metrics.time() as timer:
        timer.mark_error()
    labels = {"model": "fraud-detector", "model_version": "1.0.0"}
    assert value(registry, "model_predictions_total", **labels, status="success") == 1
    assert value(registry, "model_predictions_total", **labels, status="error") == 2
    assert value(registry, "model_prediction_latency_seconds_count", **labels) == 3
    assert value(registry, "model_active_predictions", **labels) == 0


def test_exposition_parses_and_has_the_chapter_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics("churn", "2.0.0", registry=registry)
    metrics.record(0.03, success=True)
    families = scrape(registry)
    assert {"model_predictions", "model_prediction_latency_seconds", "model_active_predictions"} <= set(families)
    buckets = [
        float(labels["le"])
        for name, labels, _ in families["model_prediction_latency_seconds"]
        if name.endswith("_bucket") and labels["le"] != "+Inf"
    ]
    assert tuple(buckets) == LATENCY_BUCKETS
    bucket_counts = {
        labels["le"]: v for name, labels, v in families["model_prediction_latency_seconds"] if name.endswith("_bucket")
    }
    assert bucket_counts["0.025"] == 0 and bucket_counts["0.05"] == 1
    # Both statuses exist from the start so rate() has a first point.
    statuses = {labels["status"]: v for _, labels, v in families["model_predictions"]}
    assert statuses == {"success": 1.0, "error": 0.0}


def test_accuracy_is_absent_until_set_never_a_fake_zero() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics("fraud-detector", "1.0.0", registry=registry)
    assert value(registry, "model_accuracy", model="fraud-detector", model_version="1.0.0") is None
    metrics.set_accuracy(0.87)
    assert value(registry, "model_accuracy", model="fraud-detector", model_version="1.0.0") == 0.87
    with pytest.raises(ValueError):
        metrics.set_accuracy(1.5)


def test_versions_share_a_registry_and_stay_apart() -> None:
    registry = CollectorRegistry()
    stable = ModelMetrics("fraud-detector", "1.0.0", registry=registry)
    canary = ModelMetrics("fraud-detector", "1.1.0", registry=registry)
    stable.record(0.01, success=True)
    canary.record(0.01, success=False)
    assert value(registry, "model_predictions_total", model="fraud-detector", model_version="1.0.0",
                 status="success") == 1
    assert value(registry, "model_predictions_total", model="fraud-detector", model_version="1.1.0",
                 status="error") == 1
    assert value(registry, "model_predictions_total", model="fraud-detector", model_version="1.1.0",
                 status="success") == 0


def test_decorator_times_sync_and_async_functions_and_counts_escaping_errors() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics("m", "1", registry=registry)

    @metrics.track
    def predict(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    @metrics.track
    async def apredict(x: int) -> int:
        return x + 1

    assert predict(2) == 4
    with pytest.raises(ValueError):
        predict(-1)
    assert asyncio.run(apredict(1)) == 2
    assert value(registry, "model_predictions_total", model="m", model_version="1", status="success") == 2
    assert value(registry, "model_predictions_total", model="m", model_version="1", status="error") == 1


def test_active_predictions_counts_in_flight_work() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics("m", "1", registry=registry)
    with metrics.time(), metrics.time():
        assert value(registry, "model_active_predictions", model="m", model_version="1") == 2
    assert value(registry, "model_active_predictions", model="m", model_version="1") == 0
