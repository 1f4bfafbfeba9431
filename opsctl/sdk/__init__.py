"""The SDK model servers embed: standard metrics, prediction/feedback logs, a stable-hash router.

Imports only the standard library, prometheus_client and httpx (never numpy, pandas,
sklearn or the daemon), so any Python model server can use it.
"""

from opsctl.sdk.metrics import LATENCY_BUCKETS, ModelMetrics, PredictionTimer
from opsctl.sdk.predlog import FeedbackLogger, PredictionLogger, RotatingJsonLinesFile
from opsctl.sdk.router import RoutingSplit, RoutingStatus, RoutingTableClient, TrafficRouter, bucket_of

__all__ = [
    "LATENCY_BUCKETS",
    "FeedbackLogger",
    "ModelMetrics",
    "PredictionLogger",
    "PredictionTimer",
    "RotatingJsonLinesFile",
    "RoutingSplit",
    "RoutingStatus",
    "RoutingTableClient",
    "TrafficRouter",
    "bucket_of",
]
