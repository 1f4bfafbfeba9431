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
