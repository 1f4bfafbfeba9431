"""The shipped Prometheus/Grafana config: promtool accepts it, the rules fire on the real metric names
(promtool unit tests), and every Grafana panel query parses and answers on a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

CONFIG = Path(__file__).resolve().parent.parent / "config"
ALERTS = CONFIG / "prometheus" / "alerts.yml"
PROMETHEUS_YML = CONFIG / "prometheus" / "prometheus.yml"
DASHBOARD = CONFIG / "grafana" / "opsctl-sla.json"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_promtool_check_config(tmp_path: Path) -> None:
    # promtool checks that the scrape token's credentials_file exists, next to the config as installed.
    for source in (PROMETHEUS_YML, ALERTS):
        shutil.copy(source, tmp_path / source.name)
    (tmp_path / "opsctl-scrape-token").write_text("a-scrape-token-of-32-characters!\n")
    result = promtool("check", "config", str(tmp_path / PROMETHEUS_YML.name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_daemon_rules_use_the_metric_names_the_daemon_exports() -> None:
    text = ALERTS.read_text()
    for name in ("opsctl_up", "opsctl_job_failures_total", "opsctl_health_status"):
        assert name in text


UNIT_TESTS = """\
rule_files:
  - {alerts}
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'model_predictions_total{{model="fraud",model_version="v3",status="success",instance="a",job="models"}}'
        values: '0+950x60'
      - series: 'model_predictions_total{{model="fraud",model_version="v3",status="error",instance="a",job="models"}}'
        values: '0+50x60'
      - series: 'model_predictions_total{{model="fraud",model_version="v2",status="success",instance="a",job="models"}}'
        values: '0+1000x60'
      - series: 'model_prediction_latency_seconds_bucket{{model="fraud",model_version="v3",le="0.5"}}'
        values: '0+100x60'
      - series: 'model_prediction_latency_seconds_bucket{{model="fraud",model_version="v3",le="1"}}'
        values: '0+1000x60'
      - series: 'model_prediction_latency_seconds_bucket{{model="fraud",model_version="v3",le="+Inf"}}'
        values: '0+1000x60'
      - series: 'model_accuracy{{model="fraud",model_version="v3",instance="a",job="models"}}'
        values: '0.80x60'
      - series: 'model_accuracy{{model="fraud",model_version="v2",instance="a",job="models"}}'
        values: '0.93x60'
      - series: 'opsctl_up{{instance="d",job="opsctl"}}'
        values: '1x10 0x50'
      - series: 'opsctl_job_failures_total{{instance="d",job="health"}}'
        values: '0x10 1+1x50'
      - series: 'opsctl_health_status{{model="fraud",model_version="v2",status="unknown",instance="d",job="opsctl"}}'
        values: '1x60'
    alert_rule_test:
      - eval_time: 10m
        alertname: ModelHighErrorRate
        exp_alerts:
          - exp_labels: {{severity: critical, model: fraud, model_version: v3}}
            exp_annotations:
              summary: "fraud v3: error rate above 1 %"
              description: "Error rate is 5% (SLA: 1 %)."
              runbook_url: "docs/runbooks/ModelHighErrorRate.md"
      - eval_time: 10m
        alertname: ModelHighPredictionLatencyP95
        exp_alerts:
          - exp_labels: {{severity: warning, model: fraud, model_version: v3}}
            exp_annotations:
              summary: "fraud v3: p95 latency above 500 ms"
              description: "95th percentile latency is 972.2ms (SLA: 500 ms)."
              runbook_url: "docs/runbooks/ModelHighPredictionLatencyP95.md"
      - eval_time: 15m
        alertname: ModelAccuracyDrop
        exp_alerts:
          - exp_labels: {{severity: critical, model: fraud, model_version: v3}}
            exp_annotations:
              summary: "fraud v3: accuracy below 0.85"
              description: "Current accuracy is 0.800 (threshold: 0.85)."
              runbook_url: "docs/runbooks/ModelAccuracyDrop.md"
      - eval_time: 10m
        alertname: ModelTrafficSpike
        exp_alerts: []
      - eval_time: 4m
        alertname: OpsctlDaemonDown
        exp_alerts: []
      - eval_time: 10m
        alertname: OpsctlDaemonDown
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: "The opsctl daemon is down or not scraped"
              description: "No opsctl_up == 1 for a minute: health checks, canaries and alerts are not running."
              runbook_url: "docs/runbooks/OpsctlDaemonDown.md"
      - eval_time: 4m
        alertname: OpsctlJobFailing
        exp_alerts: []
      - eval_time: 20m
        alertname: OpsctlHealthUnknown
        exp_alerts:
          - exp_labels: {{severity: warning, model: fraud, model_version: v2}}
            exp_annotations:
              summary: "fraud v2: health unknown for 15 minutes"
              description: "No usable metrics (no data, stale exporter, or Prometheus down); opsctl health says why."
              runbook_url: "docs/runbooks/OpsctlHealthUnknown.md"
"""


def test_rules_fire_on_the_real_metric_names(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(UNIT_TESTS.format(alerts=ALERTS))
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_failing_rule_fires_with_the_daemons_job_label(tmp_path: Path) -> None:
    tests = tmp_path / "job_test.yml"
    tests.write_text(f"""\
rule_files: [{ALERTS}]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'opsctl_job_failures_total{{instance="d",job="opsctl",exported_job="health"}}'
        values: '0x10 1+1x20'
    alert_rule_test:
      - eval_time: 8m
        alertname: OpsctlJobFailing
        exp_alerts:
          - exp_labels: {{severity: warning, instance: d, job: opsctl, exported_job: health}}
            exp_annotations:
              summary: "opsctl job healthopsctl is failing"
              description: "6 failed runs in the last 15 minutes (see opsctl status)."
              runbook_url: "docs/runbooks/OpsctlJobFailing.md"
""")
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def _exported_metric_names() -> set[str]:
    """Every sample name opsctl can export: the daemon (its own metrics, canary and drift gauges, the
    model-change counter) and the SDK in the model servers; plus Prometheus' own ``up``."""
    from prometheus_client import CollectorRegistry

    from opsctl.adapters.canary_gauges import CanaryGauges
    from opsctl.adapters.drift_gauges import DriftGauges
    from opsctl.adapters.model_changes import ModelChangeCounts
    from opsctl.sdk.metrics import ModelMetrics
    from opsctld.metrics import DaemonMetrics

    daemon = DaemonMetrics(CollectorRegistry())
    daemon.track_model_changes(ModelChangeCounts(Path("unused.db")))
    CanaryGauges(daemon.registry)
    DriftGauges(daemon.registry)
    sdk = CollectorRegistry()
    ModelMetrics("m", "v", registry=sdk)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
                "info": ("_info",), "summary": ("_sum", "_count")}
    return {family.name + suffix for registry in (daemon.registry, sdk) for family in registry.collect()
            for suffix in suffixes[family.type]} | {"up"}


_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                 "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords, label
    names (in braces or a by/on list) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for found in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[found.end():].lstrip()
        if following.startswith("(") or found.group() in _PROMQL_WORDS:
            continue
        names.add(found.group())
    return names


def test_metric_names_finds_what_a_query_reads() -> None:
    assert metric_names('sum by (model, le) (rate(a_total{x="y{z}"}[5m])) / on (model) group_left b > bool 0') \
        == {"a_total", "b"}


def dashboard_queries() -> dict[str, str]:
    """title -> PromQL of every panel target and annotation, with Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {f"panel {p['title']}": t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])}
    queries.update({f"annotation {a['name']}": a["expr"] for a in dashboard["annotations"]["list"]})
    return {title: (expr.replace("$__rate_interval", "30s").replace("$model", ".*").replace("$version", ".*"))
            for title, expr in queries.items()}


def test_grafana_dashboard_has_change_annotations_and_its_rows() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert set(annotations) == {"Promotes", "Rollbacks", "Canary steps"}
    for annotation in annotations.values():
        assert "opsctl_model_changes_total" in annotation["expr"] and "changes(" in annotation["expr"]
        assert annotation["datasource"]["type"] == "prometheus" and annotation["enable"] is True
        assert {"model", "change"} <= set(annotation["tagKeys"].split(","))
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Canary", "Drift and performance", "opsctl daemon"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # No two panels overlap on Grafana's 24-column grid.
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    row_metrics = {"Canary": "opsctl_canary_", "Drift and performance": "opsctl_drift_", "opsctl daemon": "opsctl_up"}
    for title, prefix in row_metrics.items():
        start = next(p["gridPos"]["y"] for p in dashboard["panels"] if p["title"] == title)
        below = [t["expr"] for p in dashboard["panels"] if p["gridPos"]["y"] > start for t in p.get("targets", [])]
        assert any(prefix in expr for expr in below), title


def test_grafana_queries_parse_on_prometheus_and_read_only_metrics_opsctl_exports(prometheus_stack, exporter) -> None:
    queries = dashboard_queries()
    joined = " ".join(queries.values())
    for metric in ("model_predictions_total", "model_prediction_latency_seconds_bucket", "model_accuracy",
                   'status="error"', "opsctl_health_status", "opsctl_model_changes_total"):
        assert metric in joined
    exported = _exported_metric_names()
    exporter.set("grafana", "v1")
    for title, promql in queries.items():
        assert metric_names(promql) and metric_names(promql) <= exported, (title, metric_names(promql) - exported)
        response = httpx.get(f"{prometheus_stack.url}/api/v1/query", params={"query": promql})
        assert response.status_code == 200 and response.json()["status"] == "success", f"{title}: {response.text}"
    # Model panels keep one series per model version.
    for title, promql in queries.items():
        if "model_predictions_total" in promql or "model_accuracy" in promql:
            assert "by (model, model_version" in promql, title


def test_silent_outage_rules_fire_on_queued_failing_notifications_and_stale_jobs(tmp_path: Path) -> None:
    """Undelivered pages and jobs that stop succeeding (or never start) alert; recovered ones do not."""
    tests = tmp_path / "silent_test.yml"
    tests.write_text(f"""\
rule_files: [{ALERTS}]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      # Alertmanager refuses from 5m30s to 15m, then takes everything again.
      - series: 'opsctl_alert_notifications_queued{{instance="d",job="opsctl",target="alertmanager"}}'
        values: '0x10 3x20 0x20'
      - series: 'opsctl_alert_deliveries_total{{instance="d",job="opsctl",target="alertmanager",result="failed"}}'
        values: '0x10 1+1x20 21x20'
      - series: 'opsctl_alert_notifications_queued{{instance="d",job="opsctl",target="webhook"}}'
        values: '0x50'
      - series: 'opsctl_start_time_seconds{{instance="d",job="opsctl"}}'
        values: '0x50'
      # health (every 15 s) succeeds until 5m then never again; drift (every 300 s) keeps succeeding;
      # ingest (every 5 s) never succeeds at all.
      - series: 'opsctl_job_interval_seconds{{instance="d",job="opsctl",exported_job="health"}}'
        values: '15x50'
      - series: 'opsctl_job_last_success_timestamp_seconds{{instance="d",job="opsctl",exported_job="health"}}'
        values: '0+30x10 300x40'
      - series: 'opsctl_job_interval_seconds{{instance="d",job="opsctl",exported_job="drift"}}'
        values: '300x50'
      - series: 'opsctl_job_last_success_timestamp_seconds{{instance="d",job="opsctl",exported_job="drift"}}'
        values: '0+30x50'
      - series: 'opsctl_job_interval_seconds{{instance="d",job="opsctl",exported_job="ingest"}}'
        values: '5x50'
    alert_rule_test:
      - eval_time: 10m
        alertname: OpsctlNotificationsUndelivered
        exp_alerts: []
      - eval_time: 12m
        alertname: OpsctlNotificationsUndelivered
        exp_alerts:
          - exp_labels: {{severity: critical, instance: d, target: alertmanager}}
            exp_annotations:
              summary: "opsctl cannot deliver alerts to alertmanager"
              description: "3 notifications queued, deliveries failing: nobody is paged (see opsctl alerts)."
              runbook_url: "docs/runbooks/OpsctlNotificationsUndelivered.md"
      - eval_time: 20m
        alertname: OpsctlNotificationsUndelivered
        exp_alerts: []
      - eval_time: 2m
        alertname: OpsctlJobStale
        exp_alerts: []
      - eval_time: 4m
        alertname: OpsctlJobStale
        exp_alerts:
          - exp_labels: {{severity: warning, instance: d, job: opsctl, exported_job: ingest}}
            exp_annotations: &stale_ingest
              summary: "opsctl job ingest has not succeeded for too long"
              description: "No successful run for over 3 intervals + 2 min (see opsctl status)."
              runbook_url: "docs/runbooks/OpsctlJobStale.md"
      - eval_time: 10m
        alertname: OpsctlJobStale
        exp_alerts:
          - exp_labels: {{severity: warning, instance: d, job: opsctl, exported_job: health}}
            exp_annotations:
              summary: "opsctl job health has not succeeded for too long"
              description: "No successful run for over 3 intervals + 2 min (see opsctl status)."
              runbook_url: "docs/runbooks/OpsctlJobStale.md"
          - exp_labels: {{severity: warning, instance: d, job: opsctl, exported_job: ingest}}
            exp_annotations: *stale_ingest
""")
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_change_annotations_mark_a_promote_and_a_rollback_scraped_from_a_real_daemon(tmp_path: Path) -> None:
    """A real daemon on its TCP listener, scraped each second by a real Prometheus with the bearer token:
    the dashboard's annotation queries turn 1 after the change they mark, and not before."""
    import time

    from opsctl.adapters.prometheus_launcher import LocalPrometheus, free_port
    from tests.fixtures.cli import make_opsctl_env
    from tests.fixtures.daemon import DaemonProcess
    from tests.fixtures.wait import wait_for

    secret = "scrape-token-0123456789abcdef"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{secret} prometheus\n")
    tokens.chmod(0o600)
    port = free_port()
    env = make_opsctl_env(tmp_path / "opsctl")
    env.config.write_text(env.config.read_text().replace(
        "[daemon]\n", f'[daemon]\ntcp_listen = "127.0.0.1:{port}"\ntoken_file = "{tokens}"\n'))
    for version in ("1", "2"):
        artifact = env.root / f"m{version}.bin"
        artifact.write_bytes(version.encode())
        assert env.run("register", "fraud", "--version", version, "--artifact", str(artifact)).code == 0
    assert env.run("promote", "fraud", "1", "--yes").code == 0  # before the daemon: already counted at start
    scrape = f"""\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: opsctl
    honor_labels: true
    authorization:
      credentials_file: {tmp_path / "credentials"}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
    (tmp_path / "credentials").write_text(secret)
    annotations = {a["name"]: a["expr"].replace("$model", ".*")
                   for a in json.loads(DASHBOARD.read_text())["annotations"]["list"]}
    daemon = DaemonProcess(env).start()
    prometheus = LocalPrometheus(scrape)
    try:
        prometheus.start()

        def query(expr: str) -> list[dict[str, Any]]:
            response = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=5)
            assert response.json()["status"] == "success", response.text
            return response.json()["data"]["result"]  # type: ignore[no-any-return]

        def marked(name: str) -> set[tuple[str, str]]:
            return {(r["metric"]["model"], r["metric"]["change"]) for r in query(annotations[name])
                    if r["value"][1] == "1"}

        wait_for(lambda: query('opsctl_model_changes_total{change="promote"} == 1'), 30, 0.5,
                 what="the daemon scraped")
        assert marked("Promotes") == set() and marked("Rollbacks") == set()  # nothing changed since scraping began

        promoted_at = time.time()
        assert env.run("promote", "fraud", "2", "--yes", "--reason", "r").code == 0
        wait_for(lambda: marked("Promotes") == {("fraud", "promote")}, 15, 0.5, what="the promote annotation")
        print(f"\npromote marked after {time.time() - promoted_at:.1f} s")
        assert marked("Rollbacks") == set() and marked("Canary steps") == set()
        assert env.run("rollback", "fraud", "--yes", "--reason", "r").code == 0
        wait_for(lambda: marked("Rollbacks") == {("fraud", "rollback")}, 15, 0.5, what="the rollback annotation",
                 context=lambda: f"{query('opsctl_model_changes_total')} {env.run('history', '-o', 'json').stdout}")
    finally:
        prometheus.stop()
        daemon.stop()
