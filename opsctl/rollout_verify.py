"""Did a rollback (or a canary abort) reach traffic? Measured from the metrics opsctl already reads.

``opsctl rollback --verify`` measures, from Prometheus, each version's share of the model's
requests over a short window (``model_predictions_total`` through the configured request-rate
template), the model's error rate and the p95 latency of the version serving most: once before the
change and then, once a whole window lies after the change, every ``poll_seconds`` until the
rolled-back-from version's share is at most ``max_share_percent`` or the deadline passes::

    traffic on 1.0.2: 0 % over the last 15 s (was 100 %); error rate 0.2 % (was 48 %)

No requests at all in the window is ``unknown``, never "moved". The caller audits the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from opsctl.clock import Clock, utc_iso
from opsctl.errors import MetricsSourceError


@dataclass(frozen=True)
class TrafficSnapshot:
    """Each version's share of requests (percent) over ``window_seconds`` ending at ``at``."""

    at: datetime
    window_seconds: float
    shares: dict[str, float]
    requests_per_second: float
    error_rate: float | None  # fraction of the model's requests that failed
    latency_p95_seconds: float | None  # of the version serving the most requests
    error: str | None = None  # why nothing could be measured

    def share(self, version: str | None) -> float | None:
        if self.error is not None or self.requests_per_second <= 0:
            return None
        return self.shares.get(version or "", 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"at": utc_iso(self.at), "window_seconds": self.window_seconds, "shares_percent": self.shares,
                "requests_per_second": self.requests_per_second, "error_rate": self.error_rate,
                "latency_p95_seconds": self.latency_p95_seconds, "error": self.error}


class TrafficMeter(Protocol):
    def measure(self, model: str, at: datetime, window_seconds: float) -> TrafficSnapshot: ...


class PrometheusTrafficMeter:
    """Measures with the configured ``[prometheus]`` templates, the window set to ``window_seconds``."""

    def __init__(self, settings: Any, source_factory: Callable[[Any], Any] | None = None) -> None:
        self.settings = settings
        self._factory = source_factory

    def measure(self, model: str, at: datetime, window_seconds: float) -> TrafficSnapshot:
        from opsctl.adapters.prometheus import PrometheusSource

        windowed = replace(self.settings, window=f"{max(1, math.ceil(window_seconds))}s")
        source = self._factory(windowed) if self._factory else PrometheusSource(windowed)
        try:
            fleet = source.fetch_fleet(at, model=model)
        except MetricsSourceError as error:
            return TrafficSnapshot(at, window_seconds, {}, 0.0, None, None, error=str(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        samples = [s for (m, _v), s in fleet.versions.items() if m == model and s.request_rate is not None]
        total = sum(s.request_rate or 0.0 for s in samples)
        if total <= 0:
            return TrafficSnapshot(at, window_seconds, {}, 0.0, None, None)
        shares = {s.version: 100.0 * (s.request_rate or 0.0) / total for s in samples}
        with_errors = [s for s in samples if s.error_rate is not None]
        error_rate = (sum((s.error_rate or 0.0) * (s.request_rate or 0.0) for s in with_errors) / total
                      if with_errors else None)
        busiest = max(samples, key=lambda s: s.request_rate or 0.0)
        return TrafficSnapshot(at, window_seconds, shares, total, error_rate, busiest.latency_p95)


@dataclass(frozen=True)
class Verification:
    """The outcome: ``moved`` True only when the share was measured and is at most the threshold."""

    model: str
    from_version: str | None
    to_version: str | None
    before: TrafficSnapshot | None
    after: TrafficSnapshot | None
    moved: bool
    max_share_percent: float
    waited_seconds: float

    def summary(self) -> str:
        before_share = self.before.share(self.from_version) if self.before else None
        after_share = self.after.share(self.from_version) if self.after else None
        if after_share is None:
            why = (self.after.error if self.after and self.after.error else "no requests reached the model")
            text = (f"traffic on {self.from_version}: unknown after {self.waited_seconds:.0f} s ({why})")
        else:
            window = self.after.window_seconds if self.after else 0.0
            text = f"traffic on {self.from_version}: {_pct(after_share)} over the last {window:.0f} s"
            if before_share is not None:
                text += f" (was {_pct(before_share)})"
        errors_after = self.after.error_rate if self.after else None
        errors_before = self.before.error_rate if self.before else None
        if errors_after is not None or errors_before is not None:
            text += f"; error rate {_pct(errors_after, 1)}"
            if errors_before is not None:
                text += f" (was {_pct(errors_before, 1)})"
        latency_after = self.after.latency_p95_seconds if self.after else None
        latency_before = self.before.latency_p95_seconds if self.before else None
        if latency_after is not None:
            text += f"; p95 latency {latency_after * 1000:.0f} ms"
            if latency_before is not None:
                text += f" (was {latency_before * 1000:.0f} ms)"
        if not self.moved:
            text += (f": NOT below {self.max_share_percent:g} % within {self.waited_seconds:.0f} s;"
                     " traffic did not follow the change")
        return text

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "from_version": self.from_version, "to_version": self.to_version,
                "moved": self.moved, "max_share_percent": self.max_share_percent,
                "waited_seconds": self.waited_seconds, "summary": self.summary(),
                "before": self.before.to_json() if self.before else None,
                "after": self.after.to_json() if self.after else None}


def _pct(value: float | None, scale_fraction: int = 0) -> str:
    """A percent for people; ``scale_fraction`` 1 means ``value`` is a fraction (0-1)."""
    if value is None:
        return "unknown"
    percent = value * 100.0 if scale_fraction else value
    return f"{percent:.1f} %" if 0 < percent < 10 else f"{percent:.0f} %"


def verify_traffic_moved(meter: TrafficMeter, *, model: str, from_version: str | None, to_version: str | None,
                         before: TrafficSnapshot | None, changed_at: datetime, clock: Clock,
                         window_seconds: float = 15.0, within_seconds: float = 60.0,
                         max_share_percent: float = 5.0, poll_seconds: float = 2.0,
                         sleep: Callable[[float], None] = time.sleep) -> Verification:
    """Poll until a whole window after ``changed_at`` shows ``from_version`` at most ``max_share_percent``."""
    deadline = changed_at + timedelta(seconds=max(within_seconds, window_seconds))
    first = changed_at + timedelta(seconds=window_seconds)
    after: TrafficSnapshot | None = None
    while True:
        now = clock.now()
        if now < first:
            sleep(min(poll_seconds, (first - now).total_seconds()))
            continue
        after = meter.measure(model, now, window_seconds)
        share = after.share(from_version)
        if share is not None and share <= max_share_percent:
            return Verification(model, from_version, to_version, before, after, True, max_share_percent,
                                (now - changed_at).total_seconds())
        if now >= deadline:
            return Verification(model, from_version, to_version, before, after, False, max_share_percent,
                                (now - changed_at).total_seconds())
        sleep(min(poll_seconds, max(0.0, (deadline - now).total_seconds())) or poll_seconds)
