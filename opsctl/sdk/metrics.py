"""Prometheus metrics with the standard opsctl names, for model servers to embed.

The names and labels are the ones the daemon's default PromQL templates query::

    model_predictions_total{model,model_version,status}      counter, status = success | error
    model_prediction_latency_seconds{model,model_version}    histogram, LATENCY_BUCKETS
    model_active_predictions{model,model_version}            gauge, predictions in flight
    model_accuracy{model,model_version}                      gauge, set from ground truth

Usage::

    from prometheus_client import CollectorRegistry
    metrics = ModelMetrics("fraud-detector", "1.0.0", registry=CollectorRegistry())

    with metrics.time():          # counts success, or error if an exception escapes
        prediction = model.predict(rows)

    @metrics.track                # the same as a decorator (sync or async functions)
    def predict(rows): ...

Several ``ModelMetrics`` (one per model version) share one registry: the metric
families are created once per registry and each instance binds its labels.
``model_accuracy`` is only exported after the first ``set_accuracy`` call, so a
version without labelled feedback reads as "no data", never as accuracy 0.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# The chapter's buckets: 10 ms .. 10 s, dense around the usual 100 ms - 1 s SLA.
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

LABELS = ("model", "model_version")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Families:
    predictions: Counter
    latency: Histogram
    active: Gauge
    accuracy: Gauge


_families_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def _families(registry: CollectorRegistry) -> _Families:
    with _families_lock:
        found = _families_by_registry.get(registry)
        if found is None:
            found = _Families(
                predictions=Counter(
                    "model_predictions_total",
                    "Predictions served, by outcome",
                    [*LABELS, "status"],
                    registry=registry,
                ),
                latency=Histogram(
                    "model_prediction_latency_seconds",
                    "Time to serve one prediction, in seconds",
                    LABELS,
                    buckets=LATENCY_BUCKETS,
                    registry=registry,
                ),
                active=Gauge(
                    "model_active_predictions",
                    "Predictions currently in flight",
                    LABELS,
                    registry=registry,
                ),
                accuracy=Gauge(
                    "model_accuracy",
                    "Accuracy over the most recent labelled predictions (0..1)",
                    LABELS,
                    registry=registry,
                ),
            )
            _families_by_registry[registry] = found
        return found


class PredictionTimer:
    """One timed prediction; returned by :meth:`ModelMetrics.time`."""

    def __init__(self, metrics: ModelMetrics) -> None:
        self._metrics = metrics
        self._start = 0.0
        self._failed = False
        self.elapsed_seconds: float | None = None

    def mark_error(self) -> None:
        """Count this prediction as an error even though no exception escapes."""
        self._failed = True

    def __enter__(self) -> PredictionTimer:
        self._metrics._active.inc()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed_seconds = time.perf_counter() - self._start
        self._metrics._active.dec()
        self._metrics.record(self.elapsed_seconds, success=exc_type is None and not self._failed)


class ModelMetrics:
    """The standard metrics of one model version, bound to its labels."""

    def __init__(self, model: str, version: str, registry: CollectorRegistry = REGISTRY) -> None:
        if not model or not version:
            raise ValueError("model and version must be non-empty")
        self.model = model
        self.version = version
        families = _families(registry)
        self._families = families
        self._success = families.predictions.labels(model, version, "success")
        self._error = families.predictions.labels(model, version, "error")
        self._latency = families.latency.labels(model, version)
        self._active = families.active.labels(model, version)
        # Exported at 0 from the start so rate() has a first sample; accuracy is not (see module doc).

    def time(self) -> PredictionTimer:
        """Context manager timing one prediction; error if an exception escapes or mark_error() is called."""
        return PredictionTimer(self)

    def record(self, latency_seconds: float, *, success: bool) -> None:
        """Record a prediction timed elsewhere. Errors are timed too: a slow failure is still slow."""
        self._latency.observe(latency_seconds)
        (self._success if success else self._error).inc()

    def set_accuracy(self, accuracy: float) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy must be within [0, 1], got {accuracy}")
        self._families.accuracy.labels(self.model, self.version).set(accuracy)

    def track(self, func: F) -> F:
        """Decorator form of :meth:`time` for sync and async functions."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.time():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.time():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
