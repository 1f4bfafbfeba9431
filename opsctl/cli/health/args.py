"""``opsctl health [MODEL]``: SLA health of every deployed version, from the daemon's live state."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import command

HEALTH_EPILOG = """\
exit codes (the monitoring-plugin convention, for Nagios/Icinga/cron; the worst version decides):
  0  OK        every deployed version is healthy (or nothing is deployed)
  1  WARNING   some version is degraded, none critical
  2  CRITICAL  a production version is degraded and its error-rate or availability check fails
               (users get errors or no answer, not merely slow or less accurate ones)
  3  UNKNOWN   some version has no usable data (no data, stale exporter, Prometheus down, too little
               traffic), or the daemon is down: health is the daemon's live state, there is no fallback.
  Order when versions disagree: critical, then degraded, then unknown, then healthy."""


def add_commands(sub: Any) -> None:
    p = command(sub, "health", "opsctl.cli.health.handlers:health",
                "SLA health of every deployed version: latency, errors, availability, traffic, accuracy")
    p.add_argument("model", nargs="?", help="only this model")
    p.epilog = HEALTH_EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
