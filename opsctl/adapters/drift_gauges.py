"""The drift, performance and ingestion series the daemon exports on ``/metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class DriftGauges:
    """The drift and performance series on ``/metrics`` (one set per daemon)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        r = registry
        self.feature_statistic = Gauge(
            "opsctl_drift_feature_statistic",
            "Last drift test statistic per feature (KS D for numerical, chi-squared for categorical)",
            ["model", "model_version", "feature"], registry=r)
        self.feature_drifted = Gauge(
            "opsctl_drift_feature_drifted", "1 when the feature drifted at the last check, 0 when not"
            " (absent: not enough data)", ["model", "model_version", "feature"], registry=r)
        self.dataset_drifted = Gauge(
            "opsctl_drift_dataset_drifted", "1 when the dataset verdict of the last check is drift, 0 when not"
            " (absent: no verdict)", ["model", "model_version"], registry=r)
        self.labelled = Gauge(
            "opsctl_performance_labelled", "Labelled predictions in the window at the last performance check",
            ["model", "model_version"], registry=r)
        self.metric = Gauge(
            "opsctl_performance_metric", "Last performance metric on labelled traffic (accuracy, auc, precision,"
            " recall)", ["model", "model_version", "metric"], registry=r)
        self.ingest_records = Counter("opsctl_ingest_records_total", "Records read from logs or POST /v1/ingest",
                                      ["source"], registry=r)
        self.ingest_malformed = Counter("opsctl_ingest_malformed_total", "Log lines skipped as malformed",
                                        registry=r)
