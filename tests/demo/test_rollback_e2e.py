"""Break-glass rollback on the demo fleet, end to end: the daemon is SIGKILLed and stays down, and
``opsctl rollback`` still moves the model servers' traffic (read from the servers' own prediction
logs); a daemon started afterwards keeps the rolled-back state; ``--verify`` measures the split from
Prometheus and fails when a server's routing is stuck.

One demo for the module (fraud-detector for the promote/rollback, churn-predictor for the canary);
the tests run in order and build on each other.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from opsctl.demo.fleet import pid_alive
from tests.demo.test_canary_retrain_e2e import ok, routing
from tests.demo.test_demo_e2e import Demo
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-canary-retrain"),
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus binary")]

RATE = 20.0  # requests per second per model
SWITCH_DEADLINE_SECONDS = 10.0  # the bound: >= 95 % on the rolled-back-to version within 10 s
MEASURE_SECONDS = 5.0  # predictions read from SWITCH_DEADLINE_SECONDS to this much later
EXTRA = """\
[jobs]
canary_seconds = 1.0
# No retrain (and so no retrain canary) may change the splits this module measures.
drift_seconds = 3600.0
performance_seconds = 3600.0

# The canary stays in its first stage (20 %) for the whole test: only the rollback ends it.
[canary]
stages = [20.0, 50.0]
min_stage_seconds = 3600.0
analysis_interval_seconds = 5.0
inconclusive_limit = 1000
progress_deadline_seconds = 7200.0
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("rollback-demo")
    extra = root / "extra.toml"
    extra.write_text(EXTRA, encoding="utf-8")
    running = Demo(root / "demo-state")
    try:
        start_demo(running, "--rate", str(RATE), "--config-extra", str(extra))
        yield running
    finally:
        running.kill_everything()


def start_demo(demo: Demo, *args: str) -> None:
    """``opsctl demo --no-tui`` with ``args``, until its demo.json says it is up."""
    import subprocess

    from tests.fixtures.cli import OPSCTL

    with demo.log.open("wb") as log:
        demo.proc = subprocess.Popen([OPSCTL, "demo", "--no-tui", "--state-dir", str(demo.root), *args],
                                     env=demo.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc = demo.proc

    def up() -> bool:
        assert proc.poll() is None, demo.output()
        return (demo.root / "demo.json").exists()

    wait_for(up, 120, 0.2, what="the demo to come up", context=demo.output)


def predictions(demo: Demo, model: str, since: float, until: float | None = None) -> Counter[str]:
    """Versions of the predictions ``model``'s server logged in [since, until] (epoch seconds)."""
    directory = demo.root / "logs" / model
    counts: Counter[str] = Counter()
    for path in sorted(directory.glob(f"{model}.predictions.jsonl*")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line being written
            at = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
            if at >= since and (until is None or at <= until):
                counts[record["version"]] += 1
    return counts


def wait_until(what: str, check: Any, timeout: float, demo: Demo) -> Any:
    """``wait_for`` with the demo's output in the failure."""
    return wait_for(check, timeout, 0.5, what=what, context=demo.tail)


def share(counts: Counter[str], version: str) -> float:
    total = sum(counts.values())
    return counts[version] / total if total else 0.0


def daemon_answers(demo: Demo) -> bool:
    socket = demo.state()["daemon"]["socket"]
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket), base_url="http://opsctld", timeout=1) as c:
            return c.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def recent(demo: Demo, model: str, seconds: float = 3.0) -> Counter[str]:
    return predictions(demo, model, time.time() - seconds)


def test_a_break_glass_rollback_with_the_daemon_killed_reaches_traffic_and_the_daemon_keeps_it(demo: Demo) -> None:
    wait_until("routing", lambda: routing(demo, "fraud-detector") == {"1.0.0": 100.0}
               and routing(demo, "churn-predictor") == {"1.0.0": 100.0}, 30, demo)
    promoted = demo.opsctl("promote", "fraud-detector", "1.1.0", "--yes", "--reason", "e2e: bad release")
    assert promoted.returncode == 0, promoted.stderr
    assert "traffic: routing document updated (generation" in promoted.stdout, promoted.stdout
    ok(demo, "canary", "start", "churn-predictor", "1.1.0", "--reason", "e2e canary", "-o", "json")
    wait_until("fraud-detector serving 1.1.0", lambda: share(recent(demo, "fraud-detector"), "1.1.0") == 1.0,
               20, demo)
    wait_until("churn-predictor's canary serving", lambda: 0.05 < share(recent(demo, "churn-predictor", 5), "1.1.0")
               < 0.4, 20, demo)

    daemon_pid = demo.state()["daemon"]["pid"]
    os.kill(daemon_pid, signal.SIGKILL)
    wait_until("the daemon gone", lambda: not pid_alive(daemon_pid), 10, demo)
    assert not daemon_answers(demo)

    started = time.time()
    fraud = demo.opsctl("rollback", "fraud-detector", "--yes", "--reason", "e2e break-glass")
    churn = demo.opsctl("rollback", "churn-predictor", "--yes", "--reason", "e2e break-glass abort", "-o", "json")
    assert fraud.returncode == 0, (fraud.stdout, fraud.stderr)
    assert churn.returncode == 0, (churn.stdout, churn.stderr)
    print(f"\n{fraud.stdout}{fraud.stderr}")
    assert "registry: roll back fraud-detector 1.1.0 -> 1.0.0" in fraud.stdout
    assert "directly on the registry: the daemon is down" in fraud.stdout
    assert "traffic: routing document updated (generation" in fraud.stdout
    assert f"opsctl demo restart daemon --state-dir {demo.root}" in fraud.stdout
    assert "done" not in fraud.stdout
    aborted = json.loads(churn.stdout)
    assert aborted["reached_traffic"] is True and aborted["daemon_up"] is False
    assert aborted["traffic"]["via"] == "routing_document" and aborted["traffic"]["applied"] is True
    assert aborted["deployment"]["canary_version"] is None

    # Measured from the servers' own prediction logs, with the daemon down the whole time.
    measure_from, measure_to = started + SWITCH_DEADLINE_SECONDS, started + SWITCH_DEADLINE_SECONDS + MEASURE_SECONDS
    while time.time() < measure_to + 1.0:
        assert not pid_alive(daemon_pid) and not daemon_answers(demo), "the daemon came back during the measurement"
        time.sleep(0.5)
    fraud_after = predictions(demo, "fraud-detector", measure_from, measure_to)
    churn_after = predictions(demo, "churn-predictor", measure_from, measure_to)
    fraud_all = predictions(demo, "fraud-detector", started)
    last_bad = max((datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
                    for r in _records(demo, "fraud-detector") if r["version"] == "1.1.0"), default=started)
    print(f"fraud-detector {dict(fraud_after)} between +10 s and +15 s; last 1.1.0 prediction"
          f" {last_bad - started:.1f}s after the rollback; churn-predictor {dict(churn_after)}")
    assert sum(fraud_after.values()) >= RATE * MEASURE_SECONDS * 0.5, fraud_after  # traffic really flowed
    assert share(fraud_after, "1.0.0") >= 0.95, fraud_after
    assert sum(churn_after.values()) >= RATE * MEASURE_SECONDS * 0.5, churn_after
    assert churn_after["1.1.0"] == 0, churn_after  # canary traffic to 0
    assert fraud_all["1.0.0"] > 0
    assert not pid_alive(daemon_pid)

    # The daemon comes back on request, converges from the registry and keeps the rolled-back state.
    restarted = demo.opsctl("demo", "restart", "daemon")
    assert restarted.returncode == 0, (restarted.stdout, restarted.stderr)
    assert "daemon restarted (pid" in restarted.stdout
    assert demo.state()["daemon"]["pid"] != daemon_pid and daemon_answers(demo)
    came_back = time.time()
    assert routing(demo, "fraud-detector") == {"1.0.0": 100.0}
    assert routing(demo, "churn-predictor") == {"1.0.0": 100.0}
    time.sleep(5.0)  # several canary job ticks (1 s) of the new daemon
    assert routing(demo, "fraud-detector") == {"1.0.0": 100.0}
    assert routing(demo, "churn-predictor") == {"1.0.0": 100.0}
    status = json.loads(demo.opsctl("canary", "status", "churn-predictor", "-o", "json").stdout)
    status = status[0] if isinstance(status, list) else status
    assert status["state"] == "aborted" and status["weight"] == 0.0, status
    after_restart = predictions(demo, "churn-predictor", came_back)
    assert after_restart["1.1.0"] == 0 and after_restart["1.0.0"] > 0, after_restart
    assert set(predictions(demo, "fraud-detector", came_back)) == {"1.0.0"}
    events = [e for e in ok(demo, "history", "-n", "200", "-o", "json") if e["via"] == "direct (daemon down)"]
    assert [(e["action"], e["model"]) for e in events if e["action"] in ("rollback", "canary_abort")] == [
        ("rollback", "fraud-detector"), ("canary_abort", "churn-predictor"), ("rollback", "churn-predictor")]


def _records(demo: Demo, model: str) -> Iterator[dict[str, Any]]:
    for path in sorted((demo.root / "logs" / model).glob(f"{model}.predictions.jsonl*")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _diagnose(demo: Demo, model: str) -> bool:
    print(f"{time.time():.1f} recent {dict(predictions(demo, model, time.time() - 12))} daemon {routing(demo, model)}"
          f" document {(demo.root / 'state' / 'routing.json').read_text()[:600]!r}")
    return False


def test_b_verify_reports_the_measured_split_and_fails_when_routing_is_stuck(demo: Demo) -> None:
    model = "fraud-detector"
    assert demo.opsctl("promote", model, "1.1.0", "--yes").returncode == 0
    # The bad release fails half its predictions; a whole measurement window on it before rolling back.
    ok(demo, "demo", "fault", model, "errors", "--version", "1.1.0", "--level", "0.5")
    try:
        wait_until("12 s on 1.1.0", lambda: set(predictions(demo, model, time.time() - 12)) == {"1.1.0"}
                   or _diagnose(demo, model), 40, demo)
        verified = demo.opsctl("rollback", model, "--yes", "--verify", "--window", "8", "--within", "40",
                               "--reason", "e2e verify", "-o", "json")
    finally:
        ok(demo, "demo", "clear", model)
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    document = json.loads(verified.stdout)
    check = document["verification"]
    print(f"\n{check['summary']}")
    assert check["moved"] is True
    assert check["before"]["shares_percent"]["1.1.0"] >= 95.0, check
    assert check["after"]["shares_percent"].get("1.1.0", 0.0) <= 5.0, check
    assert check["summary"].startswith("traffic on 1.1.0: ")
    assert check["before"]["error_rate"] > 0.3 and check["after"]["error_rate"] < 0.05, check  # the errors went
    assert "(was 100 %)" in check["summary"] and "error rate" in check["summary"]

    # A server whose routing is stuck keeps the old split: --verify says so and exits 1.
    assert demo.opsctl("promote", model, "1.1.0", "--yes").returncode == 0
    wait_until("12 s on 1.1.0 again", lambda: set(predictions(demo, model, time.time() - 12)) == {"1.1.0"}
               or _diagnose(demo, model), 40, demo)
    ok(demo, "demo", "fault", model, "stuck-routing")
    try:
        frozen = demo.opsctl("rollback", model, "--yes", "--verify", "--window", "8", "--within", "20",
                             "--reason", "e2e verify stuck")
    finally:
        ok(demo, "demo", "clear", model)
    print(frozen.stdout)
    assert frozen.returncode == 1, (frozen.stdout, frozen.stderr)
    assert "registry: roll back fraud-detector 1.1.0 -> 1.0.0" in frozen.stdout
    assert "verify: traffic on 1.1.0: 100 % over the last 8 s (was 100 %)" in frozen.stdout
    assert "NOT below 5 %" in frozen.stdout and "traffic did not follow the change" in frozen.stdout
    audits = [e for e in ok(demo, "history", model, "-n", "50", "-o", "json") if e["action"] == "rollback_verify"]
    assert [e["outcome"] for e in audits] == ["ok", "failed"], audits
    assert "traffic on 1.1.0" in audits[-1]["detail"] and audits[-1]["via"] == "daemon"


def test_c_the_demo_log_says_how_to_bring_the_daemon_back(demo: Demo) -> None:
    log = (demo.root / "logs" / "supervisor.log").read_text(encoding="utf-8") + demo.output()
    assert "daemon killed by SIGKILL; it stays down so you can practise break-glass" in log
    assert f"`opsctl demo restart daemon --state-dir {demo.root}`" in log
    again = demo.opsctl("demo", "restart", "daemon")
    assert again.returncode == 0 and "already running" in again.stdout
