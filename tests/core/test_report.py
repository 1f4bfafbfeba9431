"""The report's charts and pages: scaled inline SVG, escaped text, no data said as such."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from opsctl.core.report import ReportData, SeriesPoint, VersionSection, render_html, render_markdown, sparkline

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
