"""The daemon's own metrics, served on ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from opsctl import __version__
from opsctl.adapters.model_changes import ModelChangeCounts

MODEL_CHANGES_HELP = "Promotes, rollbacks and canary steps per model, counted from the audit log"


class _ModelChanges(Collector):
    """``opsctl_model_changes_total{model, change}``: the counts as of the last refresh."""

    def __init__(self, counts: ModelChangeCounts) -> None:
        self._counts = counts

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("opsctl_model_changes", MODEL_CHANGES_HELP, labels=["model", "change"])

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("opsctl_model_changes", MODEL_CHANGES_HELP, labels=["model", "change"])
        for (model, change), count in sorted(self._counts.counts().items()):
            family.add_metric([model, change], count)
        yield family


class DaemonMetrics:
    """Every metric takes the registry it lives in, so tests build a fresh one each time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        Info("opsctl_build", "opsctl build information", registry=r).info({"version": __version__})
        self.up = Gauge("opsctl_up", "1 while the opsctl daemon is serving", registry=r)
        self.start_time = Gauge("opsctl_start_time_seconds", "Unix time the daemon started", registry=r)
        self.job_runs = Counter("opsctl_job_runs_total", "Scheduled job runs", ["job"], registry=r)
        self.job_failures = Counter("opsctl_job_failures_total", "Scheduled job runs that failed", ["job"],
                                    registry=r)
        self.job_skipped = Counter("opsctl_job_skipped_total", "Job runs skipped (misfired or still running)",
                                   ["job"], registry=r)
        self.job_duration = Histogram("opsctl_job_duration_seconds", "Scheduled job run time", ["job"],
                                      buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                                      registry=r)
        self.job_last_success = Gauge("opsctl_job_last_success_timestamp_seconds",
                                      "Unix time of the last successful run", ["job"], registry=r)
        # With job_last_success, lets the shipped rule OpsctlJobStale judge each job by its own interval.
        self.job_interval = Gauge("opsctl_job_interval_seconds", "Configured interval of a scheduled job",
                                  ["job"], registry=r)
        self.api_requests = Counter("opsctl_api_requests_total", "API requests", ["method", "route", "code"],
                                    registry=r)
        self.api_latency = Histogram("opsctl_api_request_duration_seconds", "API request latency", ["route"],
                                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                     registry=r)
        self.sse_clients = Gauge("opsctl_sse_clients", "Connected Server-Sent Events clients", registry=r)
        self.registry_models = Gauge("opsctl_registry_models", "Models in the registry", registry=r)
        self.registry_versions = Gauge("opsctl_registry_versions", "Model versions in the registry", registry=r)
        self.registry_size = Gauge("opsctl_registry_size_bytes", "Registry database size on disk", registry=r)
        self.config_reloads = Counter("opsctl_config_reloads_total", "SIGHUP reloads", ["result"], registry=r)
        # Health checks and alerts (opsctl.services.health). The shipped rule OpsctlHealthUnknown in
        # config/prometheus/alerts.yml relies on opsctl_health_status being 1 for the current status only.
        self.health_status = Gauge("opsctl_health_status",
                                   "1 for a deployed version's current SLA status, 0 for the other statuses",
                                   ["model", "model_version", "status"], registry=r)
        self.health_check_value = Gauge("opsctl_health_check_value",
                                        "Last SLA check value in the check's unit: latency_p95/p99 ms, error_rate"
                                        " and availability percent, accuracy ratio, request_rate req/s",
                                        ["model", "model_version", "check"], registry=r)
        self.health_last_cycle = Gauge("opsctl_health_last_cycle_timestamp_seconds",
                                       "Unix time of the last health cycle", registry=r)
        self.alerts = Gauge("opsctl_alerts", "Alerts known to the daemon, by state", ["state"], registry=r)
        self.alert_queued = Gauge("opsctl_alert_notifications_queued",
                                  "Notifications waiting for a retry, by target", ["target"], registry=r)
        self.alert_deliveries = Counter("opsctl_alert_deliveries_total", "Notification delivery attempts",
                                        ["target", "result"], registry=r)

        self._changes: ModelChangeCounts | None = None

    def track_model_changes(self, counts: ModelChangeCounts) -> None:
        """Export ``opsctl_model_changes_total`` (what the Grafana dashboard's annotations query)."""
        self._changes = counts
        self.registry.register(_ModelChanges(counts))

    def refresh(self) -> None:
        """Bring the metrics read at scrape time up to date (blocking I/O: call it off the event loop)."""
        if self._changes is not None:
            self._changes.refresh()

    def track_sse_clients(self, count: Callable[[], int]) -> None:
        self.sse_clients.set_function(lambda: float(count()))
