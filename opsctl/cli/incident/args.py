"""``opsctl incident timeline``: the incident timeline (from the daemon, or the registry when it is down)."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import group


def add_commands(sub: Any) -> None:
    _, group_sub = group(sub, "incident", "incident timeline and postmortem draft", "incident_command")
    p = group_sub.add_parser("timeline", help="audit log, alerts, health, canary, drift and retrain events in"
                             " time order", description="one ordered timeline from every store")
    p.add_argument("--since", default="2h", help="how far back, e.g. 30m, 2h, 1d (default 2h)")
    p.add_argument("--model", default=None, help="only this model")
    p.add_argument("-o", "--output", choices=("table", "json", "md"), default=None)
    p.add_argument("--postmortem", metavar="FILE.md", default=None, help="also write a postmortem draft")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="config file")
    p.set_defaults(handler="opsctl.cli.incident.handlers:timeline")
