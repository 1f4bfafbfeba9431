"""HealthStore: health results round-trip through SQLite, latest per version, history, pruning."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from opsctl.adapters.health_store import HealthStore, health_result_from_json
from opsctl.adapters.registry import Registry
from opsctl.core.sla import HealthStatus, SlaThresholds, VersionSample, evaluate_sla, unknown_result

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sample(model: str = "fraud", version: str = "v1", **values: float) -> VersionSample:
    base = {"request_rate": 20.0, "error_rate": 0.001, "latency_p95": 0.2, "latency_p99": 0.4,
            "availability": 1.0, "accuracy": 0.94}
    return VersionSample(model, version, fresh=True, **{**base, **values})


def result(at: datetime, model: str = "fraud", version: str = "v1", **values: float):
    return evaluate_sla(sample(model, version, **values), SlaThresholds(), 0.95, at, sample_taken_at=at)


@pytest.fixture
def registry(make_registry) -> Registry:  # type: ignore[no-untyped-def]
    return make_registry()  # SQLite and PostgreSQL (tests/fixtures/postgres.py)


def test_results_round_trip_exactly(registry: Registry) -> None:
    degraded = result(T0, error_rate=0.05)
    unknown = unknown_result("fraud", "v2", "stale: no new samples", T0, sample_age_seconds=4.5)
    store = HealthStore()
    assert store.record(registry, [degraded, unknown]) == 2
    assert store.latest(registry) == [degraded, unknown]
    assert degraded.status is HealthStatus.DEGRADED and "error_rate" in degraded.reason


def test_latest_is_the_newest_row_per_version_and_filters_by_model(registry: Registry) -> None:
    store = HealthStore()
    store.record(registry, [result(T0), result(T0, model="churn")])
    newer = result(T0 + timedelta(seconds=15), error_rate=0.2)
    store.record(registry, [newer])
    assert store.latest(registry, model="fraud") == [newer]
    assert [(r.model, r.status) for r in store.latest(registry)] == [
        ("churn", HealthStatus.HEALTHY), ("fraud", HealthStatus.DEGRADED)]
    assert store.latest(registry, model="nobody") == []


def test_history_is_oldest_first_and_limited(registry: Registry) -> None:
    store = HealthStore()
    results = [result(T0 + timedelta(seconds=15 * i), error_rate=0.001 * (i + 1)) for i in range(5)]
    for r in results:
        store.record(registry, [r])
    assert store.history(registry, "fraud", "v1", limit=3) == results[2:]
    with pytest.raises(ValueError):
        store.history(registry, "fraud", "v1", limit=0)


def test_an_infinite_latency_comes_back_as_none_but_still_failed(registry: Registry) -> None:
    above = result(T0, latency_p99=math.inf)
    HealthStore().record(registry, [above])
    (back,) = HealthStore().latest(registry)
    check = next(c for c in back.checks if c.name == "latency_p99")
    assert check.value is None and check.verdict.value == "fail"
    assert back.status is HealthStatus.DEGRADED
    assert health_result_from_json(above.to_json()) == back


def test_joins_a_larger_transaction_and_rolls_back_with_it(registry: Registry) -> None:
    store = HealthStore()
    with pytest.raises(RuntimeError), registry.write() as tx:
        store.record(tx, [result(T0)])
        assert store.count(tx) == 1
        raise RuntimeError("abort")
    assert store.count(registry) == 0


def test_housekeeping_prune_removes_old_results(registry: Registry) -> None:
    store = HealthStore()
    store.record(registry, [result(T0 - timedelta(days=20)), result(T0)])
    with registry.write() as tx:
        tx.prune(before=T0 - timedelta(days=14))
    assert [r.evaluated_at for r in store.history(registry, "fraud", "v1")] == [T0]
