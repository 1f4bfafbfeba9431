"""A real Prometheus scrapes the daemon's TCP listener with a scrape token, as the shipped sample config says;
the scrape token reads /metrics and /healthz and nothing else, and the admin token is never needed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsctl.adapters.prometheus_launcher import LocalPrometheus
from tests.fixtures.cli import make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "prometheus" / "prometheus.yml"
ADMIN = "admin-token-0123456789abcdef"
SCRAPE = "scrape-token-0123456789abcdef"


def _shipped_opsctl_job(port: int) -> str:
    """The sample config's `opsctl` scrape job, verbatim but for the target's port."""
    lines = SHIPPED.read_text().splitlines()
    start = lines.index("  - job_name: opsctl")
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    block = "\n".join(lines[start:end])
    assert "credentials_file: opsctl-scrape-token" in block and "127.0.0.1:8787" in block
    return block.replace("127.0.0.1:8787", f"127.0.0.1:{port}")


@pytest.fixture
def tcp_daemon(tmp_path: Path) -> Iterator[tuple[DaemonProcess, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# TOKEN IDENTITY [trusted-proxy|scrape]\n{ADMIN} admin\n{SCRAPE} prometheus scrape\n")
    tokens.chmod(0o600)
    env = make_opsctl_env(tmp_path / "opsctl", f'tcp_listen = "127.0.0.1:{port}"\ntoken_file = "{tokens}"\n')
    process = DaemonProcess(env).start()
    try:
        yield process, port
    finally:
        process.stop()


def test_prometheus_scrapes_with_the_scrape_token_which_can_do_nothing_else(
        tcp_daemon: tuple[DaemonProcess, int]) -> None:
    _process, port = tcp_daemon
    config = ("global:\n  scrape_interval: 1s\nscrape_configs:\n" + _shipped_opsctl_job(port) + "\n"
              f"  - job_name: no-token\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    prometheus = LocalPrometheus(config, extra_files={"opsctl-scrape-token": SCRAPE + "\n"})
    with prometheus:
        def series(query: str) -> list[dict[str, object]]:
            answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=5).json()
            return list(answer["data"]["result"])

        # opsctl_up is the daemon's own gauge: only a successful, authenticated scrape brings it in.
        up = wait_for(lambda: series(f"opsctl_up{{instance=\"127.0.0.1:{port}\"}}"), 30,
                      what="opsctl_up scraped with the scrape token", context=prometheus.log_tail)
        assert up[0]["value"][1] == "1"  # type: ignore[index]
        # The same target without a token is refused (401): Prometheus records the scrape as down.
        down = wait_for(lambda: series('up{job="no-token"}'), 30, what="the tokenless scrape recorded")
        assert down[0]["value"][1] == "0"  # type: ignore[index]

    base = f"http://127.0.0.1:{port}"
    scrape = {"Authorization": f"Bearer {SCRAPE}"}
    assert httpx.get(f"{base}/metrics", headers=scrape, timeout=5).status_code == 200
    assert httpx.get(f"{base}/healthz", headers=scrape, timeout=5).status_code == 200
    for method, path in (("GET", "/v1/status"), ("GET", "/v1/history"), ("GET", "/v1/models"),
                         ("POST", "/v1/models/fraud/promote"), ("POST", "/metrics")):
        refused = httpx.request(method, f"{base}{path}", headers=scrape, json={"version": "1", "reason": "r"},
                                timeout=5)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "scrape token" in refused.json()["error"]["message"]
    # The admin token still reaches the API (the scrape scope narrows one token, not the listener).
    assert httpx.get(f"{base}/v1/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5).status_code == 200
