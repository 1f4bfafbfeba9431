"""``opsctl report`` from a real daemon's registry (real exporter, real Prometheus), opened in real
headless Chromium: it renders with no console errors and no network requests, its charts have
size, and its screenshot is not blank (far larger than a blank page's of the same size)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_health_subsystem import deploy, health_config, wait_health
from tests.fixtures.chromium import chromium_path, visit
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (./dev does)")

CHARTS = """JSON.stringify({
  polylines: Array.from(document.querySelectorAll('svg polyline')).map(p => {
    const r = p.getBoundingClientRect(); return [r.width, r.height]; }),
  svgs: document.querySelectorAll('svg').length,
  scripts: document.querySelectorAll('script').length,
  height: document.body.scrollHeight,
  h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent)})"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_html_report_renders_self_contained_in_headless_chromium(tmp_path: Path, prometheus_stack: Any,
                                                                 exporter: Any) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", health_config(prometheus_stack.url))
    daemon = DaemonProcess(env).start()
    model = "rep-fraud"
    try:
        exporter.set(model, "v1", request_rate=40, error_ratio=0.0, latency_lo=0.02, latency_hi=0.08)
        deploy(env, model, "v1")
        wait_health(env, model, "healthy", timeout=20)
        exporter.set(model, "v1", error_ratio=0.2)
        wait_health(env, model, "degraded", timeout=10)

        def enough_points() -> bool:
            result = env.run("report", model, "--since", "1h")
            return result.code == 0 and result.stdout.count("| rep-fraud | v1 |") >= 1
        wait_for(enough_points, timeout=10, what="report has the version")
    finally:
        daemon.stop()

    html_file, md_file = tmp_path / "report.html", tmp_path / "report.md"
    result = env.run("report", model, "--since", "1h", "--html", str(html_file), "--md", str(md_file))
    assert result.code == 0, result.stderr
    text = html_file.read_text()
    for external in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert external not in text, external
    markdown = md_file.read_text()
    for heading in ("## Fleet status", "## SLA per version", "## Alerts", "## Canaries", "## Drift",
                    "## Production checklist", "## Recent changes"):
        assert heading in markdown
    assert "| rep-fraud | v1 | production | degraded |" in markdown
    assert "promote" in markdown.split("## Recent changes")[1]

    page = visit(html_file.as_uri(), CHARTS)
    blank = visit("about:blank")
    assert page.console_errors == []
    assert page.requests == [html_file.as_uri()]  # the file itself, nothing else
    import json

    facts = json.loads(page.evaluated)
    assert facts["scripts"] == 0 and facts["svgs"] == 3
    assert len(facts["polylines"]) == 3 and all(w > 50 and h >= 0 for w, h in facts["polylines"])
    assert facts["h2"][0] == "Fleet status" and "Production checklist" in facts["h2"]
    assert png_size(page.screenshot) == png_size(blank.screenshot)
    assert len(page.screenshot) > 4 * len(blank.screenshot)


DRIFT_CHARTS = """JSON.stringify({
  dist: Array.from(document.querySelectorAll('svg.dist')).map(s => s.getAttribute('aria-label')),
  perf: Array.from(document.querySelectorAll('svg.perf')).map(s => s.getAttribute('aria-label')),
  bars: Array.from(document.querySelectorAll('svg.dist rect[fill]')).filter(r => r.getBoundingClientRect().height > 0)
    .length,
  intervals: Array.from(document.querySelectorAll('svg.perf rect')).map(r => r.getBoundingClientRect().width),
  scripts: document.querySelectorAll('script').length})"""


def test_html_report_plots_drift_per_feature_and_performance_intervals_in_chromium(tmp_path: Path) -> None:
    """A real drift check (shifted amount, unchanged country) and a real performance result stored in the
    registry the way the daemon stores them; ``opsctl report`` draws them and Chromium renders them."""
    import json

    import numpy as np
    import pandas as pd

    from opsctl.adapters.drift_store import DriftResult, DriftStore
    from opsctl.adapters.registry import Registry
    from opsctl.clock import SystemClock
    from opsctl.core.drift import DriftPolicy, detect_drift, summarize_reference
    from opsctl.core.performance import wilson_interval

    env = make_opsctl_env(tmp_path / "opsctl", '[prometheus]\nurl = "http://127.0.0.1:9"\ntimeout_seconds = 0.5\n')
    artifact = env.root / "m.bin"
    artifact.write_bytes(b"model")
    assert env.run("register", "rep-drift", "--version", "v1", "--artifact", str(artifact)).code == 0
    assert env.run("promote", "rep-drift", "v1", "--yes").code == 0

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"amount": rng.normal(0, 1, 2000), "country": rng.choice(["fr", "de", "it"], 2000)})
    current = pd.DataFrame({"amount": rng.normal(1.5, 1, 800), "country": rng.choice(["fr", "de", "it"], 800)})
    report = detect_drift(summarize_reference(reference, ["country"]), current, DriftPolicy())
    assert [f.drifted for f in report.features] == [True, False]
    low, high = wilson_interval(700, 800, 0.9875)
    metrics = [{"name": "accuracy", "state": "degraded", "value": 700 / 800, "ci_low": low, "ci_high": high,
                "n": 800, "baseline": 0.95, "relative_drop": 0.08, "floor": 0.9025}]
    registry = Registry(env.state_dir / "registry.db")
    now = SystemClock().now()
    store = DriftStore()
    store.record(registry, DriftResult(now, "rep-drift", "v1", "drift", "drift", {"report": report.to_json()}))
    store.record(registry, DriftResult(now, "rep-drift", "v1", "performance", "degraded",
                                       {"labelled": 800, "confidence": 0.9875, "metrics": metrics}))

    html_file, md_file = tmp_path / "report.html", tmp_path / "report.md"
    result = env.run("report", "rep-drift", "--html", str(html_file), "--md", str(md_file))
    assert result.code == 0, result.stderr
    markdown = md_file.read_text()
    assert "| rep-drift | v1 | amount | drift |" in markdown and "| rep-drift | v1 | country | no_drift |" in markdown
    assert f"| rep-drift | v1 | accuracy | 0.875 | [{low:.3f}, {high:.3f}] | 800 | 0.95 | 0.9025 | degraded |" \
        in markdown

    page = visit(html_file.as_uri(), DRIFT_CHARTS)
    assert page.console_errors == []
    assert page.requests == [html_file.as_uri()]
    facts = json.loads(page.evaluated)
    assert facts["scripts"] == 0
    assert facts["dist"] == ["amount: drift", "country: no_drift"]
    assert facts["perf"] == ["rep-drift v1: degraded"]
    assert facts["bars"] >= 20  # both samples' bars of the 20 amount bins and 3 countries, most of them non-empty
    (width,) = facts["intervals"]
    assert width == pytest.approx((high - low) * 270, abs=1.0)  # the interval drawn at its width in pixels
