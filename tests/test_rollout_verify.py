"""``rollback --verify``'s measurement against a real Prometheus scraping a controlled exporter."""

from __future__ import annotations

import time

from opsctl.adapters.prometheus import PrometheusSettings
from opsctl.clock import SystemClock
from opsctl.rollout_verify import PrometheusTrafficMeter, verify_traffic_moved
from tests.fixtures.prometheus import ControlledExporter, PrometheusStack
from tests.fixtures.wait import wait_for

WINDOW = 4.0


def meter(stack: PrometheusStack) -> PrometheusTrafficMeter:
    return PrometheusTrafficMeter(PrometheusSettings(url=stack.url, staleness_seconds=3.0))


def settle(stack: PrometheusStack, model: str, version: str) -> None:
    m = meter(stack)
    wait_for(lambda: (m.measure(model, SystemClock().now(), WINDOW).share(version) or 0) > 99, timeout=20,
             what=f"{version} at 100 %")


def test_traffic_that_moved_is_reported_with_split_and_error_rate(prometheus_stack: PrometheusStack,
                                                                  exporter: ControlledExporter) -> None:
    model = "verify-moved"
    exporter.set(model, "bad", request_rate=40.0, error_ratio=0.5)
    exporter.set(model, "good", request_rate=0.0)
    settle(prometheus_stack, model, "bad")
    clock = SystemClock()
    before = meter(prometheus_stack).measure(model, clock.now(), WINDOW)
    assert before.share("bad") > 99 and 0.45 < (before.error_rate or 0) < 0.55
    changed_at = clock.now()
    exporter.set(model, "bad", request_rate=0.0)  # what a router that followed the rollback does
    exporter.set(model, "good", request_rate=40.0)
    result = verify_traffic_moved(meter(prometheus_stack), model=model, from_version="bad", to_version="good",
                                  before=before, changed_at=changed_at, clock=clock, window_seconds=WINDOW,
                                  within_seconds=30, max_share_percent=5.0, poll_seconds=0.5)
    assert result.moved, result.summary()
    assert result.after is not None and result.after.share("bad") <= 5.0 and result.after.share("good") >= 95
    assert result.waited_seconds >= WINDOW  # a whole window after the change, never a mixed one
    assert result.summary().startswith("traffic on bad: 0 % over the last 4 s (was 100 %); error rate 0 %")
    assert "(was 50 %)" in result.summary()


def test_traffic_that_did_not_move_is_an_alarm(prometheus_stack: PrometheusStack,
                                               exporter: ControlledExporter) -> None:
    model = "verify-frozen"
    exporter.set(model, "bad", request_rate=40.0)
    settle(prometheus_stack, model, "bad")
    clock = SystemClock()
    started = time.monotonic()
    result = verify_traffic_moved(meter(prometheus_stack), model=model, from_version="bad", to_version="good",
                                  before=None, changed_at=clock.now(), clock=clock, window_seconds=WINDOW,
                                  within_seconds=8, max_share_percent=5.0, poll_seconds=0.5)
    assert not result.moved
    assert 8 <= time.monotonic() - started < 20
    assert "traffic on bad: 100 % over the last 4 s" in result.summary()
    assert "NOT below 5 % within" in result.summary() and "traffic did not follow the change" in result.summary()


def test_no_requests_at_all_is_unknown_never_moved(prometheus_stack: PrometheusStack) -> None:
    clock = SystemClock()
    result = verify_traffic_moved(meter(prometheus_stack), model="verify-nobody", from_version="bad",
                                  to_version="good", before=None, changed_at=clock.now(), clock=clock,
                                  window_seconds=2, within_seconds=3, poll_seconds=0.5)
    assert not result.moved
    assert "traffic on bad: unknown" in result.summary() and "no requests reached the model" in result.summary()
