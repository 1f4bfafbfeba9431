"""``opsctl report``: the comprehensive health report."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    p = sub.add_parser("report", help="health report: fleet, SLA charts, alerts, canaries, drift, checklist,"
                       " recent changes (Markdown on stdout, --html FILE, --md FILE)")
    p.add_argument("model", nargs="?", default=None, help="one model (default: all)")
    p.add_argument("--since", default="6h", help="chart and change window, e.g. 2h, 1d (default 6h)")
    p.add_argument("--html", metavar="FILE", default=None, help="write one self-contained HTML file")
    p.add_argument("--md", metavar="FILE", default=None, help="write the Markdown to FILE")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="config file")
    p.set_defaults(handler="opsctl.cli.report.handlers:report", output=None)
