"""The report's charts and pages: scaled inline SVG (SLA lines, distributions, intervals), escaped text, no data
said as such."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from opsctl.core.drift_policy import Distribution
from opsctl.core.report import (
    DriftLine,
    MetricInterval,
    PerformanceLine,
    ReportData,
    SeriesPoint,
    VersionSection,
    distribution_chart,
    interval_chart,
    render_html,
    render_markdown,
    sparkline,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_sparkline_scales_points_into_the_box_and_says_no_data() -> None:
    points = [SeriesPoint(T0 + timedelta(minutes=i), v) for i, v in enumerate([100.0, 300.0, 200.0])]
    svg = sparkline(points, "p95 <latency>", "ms", width=240, height=60)
    (coords,) = re.findall(r'points="([^"]+)"', svg)
    xy = [tuple(map(float, p.split(","))) for p in coords.split()]
    # Inside the 60 px box below the 18 px title, 2 px padding: max at the top, min at the bottom.
    assert xy == [(2.0, 76.0), (120.0, 20.0), (238.0, 48.0)]
    assert "p95 &lt;latency&gt;: 200 ms (min 100, max 300)" in svg
    assert "no data" in sparkline([], "traffic", "req/s") and "polyline" not in sparkline([], "t", "u")


def test_pages_escape_values_and_hold_no_external_resource() -> None:
    version = VersionSection("m<x>", "v1", "production", "degraded", "error_rate 5 > 1", (
        ("error_rate", 5.0, 1.0, "fail"),), (("error_rate", (SeriesPoint(T0, 5.0),)),))
    data = ReportData(T0, T0 - timedelta(hours=1), (version,), (), (), (), (), ())
    page = render_html(data)
    assert "m&lt;x&gt;" in page and "<x>" not in page
    assert not re.search(r"https?://|<script|<link|src=", page)
    markdown = render_markdown(data)
    assert "| m<x> | v1 | error_rate | 5 | 1 | fail |" in markdown and "## Canaries\n\n_(none)_" in markdown


def _performance_line() -> PerformanceLine:
    from opsctl.core.performance import wilson_interval

    low, high = wilson_interval(430, 500, 0.9875)
    return PerformanceLine("fraud", "v2", "degraded", T0, 500, 0.9875, (
        MetricInterval("accuracy", "degraded", 0.86, low, high, 500, 0.95, 0.9025),
        MetricInterval("auc", "not_enough_labels", None, None, None, 12, 0.97, 0.9215)))


def test_interval_chart_places_interval_value_baseline_and_floor_on_the_unit_axis() -> None:
    line = _performance_line()
    svg = interval_chart(line, width=360)  # axis from x=80 to x=350: 270 px for 0..1
    low, high = line.metrics[0].ci_low, line.metrics[0].ci_high
    assert low is not None and high is not None and low < 0.86 < high < 0.9025  # confidently under the floor
    (bar,) = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert float(bar[0]) == pytest.approx(80 + low * 270, abs=0.1)
    assert float(bar[1]) == pytest.approx((high - low) * 270, abs=0.2)
    circles = re.findall(r'<circle cx="([\d.]+)"', svg)
    assert [float(c) for c in circles] == [pytest.approx(80 + 0.86 * 270, abs=0.1)]  # auc has no value
    ticks = re.findall(r'<line x1="([\d.]+)" y1="\d+" x2="[\d.]+" y2="\d+" stroke="(#222|#cf222e)"', svg)
    assert [(round(float(x), 1), c) for x, c in ticks] == [
        (round(80 + 0.95 * 270, 1), "#222"), (round(80 + 0.9025 * 270, 1), "#cf222e"),
        (round(80 + 0.97 * 270, 1), "#222"), (round(80 + 0.9215 * 270, 1), "#cf222e")]


def test_distribution_chart_draws_both_shares_per_bin_scaled_to_the_tallest() -> None:
    dist = Distribution("numerical", (0.0, 1.0, 2.0), (), (30, 10), (10, 30))
    svg = distribution_chart("amount<", "drift", dist, width=260, height=70)
    bars = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="(#[0-9a-f]+)">'
                      r"<title>([^<]*)</title>", svg)
    # Two bins of 128 px, each a grey reference and a blue current bar; the 75 % shares are 66 px tall.
    assert [(float(x), float(h), colour) for x, _, _, h, colour, _ in bars] == [
        (2.0, 66.0, "#8c959f"), (66.0, 22.0, "#1f6feb"), (130.0, 22.0, "#8c959f"), (194.0, 66.0, "#1f6feb")]
    assert bars[0][5] == "0 to 1: reference 75.0%" and "amount&lt;: drift" in svg
    categorical = distribution_chart("country", "no_drift", Distribution("categorical", (), ("fr", "(unseen)"),
                                                                         (5, 0), (4, 1)))
    assert "<title>(unseen): current 20.0%</title>" in categorical


def test_pages_have_drift_per_feature_and_performance_with_intervals() -> None:
    drift = DriftLine("fraud", "v2", "drift", "drift", T0, (("amount", "drift", 0.4),),
                      (("amount", Distribution("numerical", (0.0, 1.0, 2.0), (), (30, 10), (10, 30))),))
    data = ReportData(T0, T0 - timedelta(hours=1), (), (), (), (drift,), (), (), (_performance_line(),))
    markdown = render_markdown(data)
    assert "| fraud | v2 | amount | drift | 0.4 |" in markdown.split("## Drift per feature")[1]
    low, high = data.performance[0].metrics[0].ci_low, data.performance[0].metrics[0].ci_high
    assert f"| fraud | v2 | accuracy | 0.86 | [{low:.3f}, {high:.3f}] | 500 | 0.95 | 0.9025 | degraded |" in markdown
    page = render_html(data)
    assert page.count('class="chart dist"') == 1 and page.count('class="chart perf"') == 1
    assert "each interval at 98.8 %" in page
