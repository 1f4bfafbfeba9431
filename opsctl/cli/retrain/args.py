"""``opsctl retrain [run] MODEL``, ``retrain runs``, ``retrain show`` and ``retrain approve``."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import group, subcommand

H = "opsctl.cli.retrain.handlers"
SUBCOMMANDS = ("run", "runs", "show", "approve", "reject")
DEFAULT_SUBCOMMAND = "run"

USAGE = """usage:
  opsctl retrain [run] MODEL [--wait] [--reason TEXT]   start a run (or join the one in flight)
  opsctl retrain runs [MODEL]                           runs, newest first
  opsctl retrain show RUN_ID                            one run: decision, error, logs
  opsctl retrain approve RUN_ID [--reason TEXT]         start the canary of a run awaiting approval
  opsctl retrain reject RUN_ID [--reason TEXT]          turn it down: no canary, production stays
A model named like a subcommand (`runs`, `show`, ...) needs `run`: `opsctl retrain run runs`.

exit codes with --wait: 0 the run ended (canary started, candidate kept, awaiting approval),
1 it failed or timed out, 3 still running when --timeout ran out, 6 the daemon is not running"""


def add_commands(sub: Any) -> None:
    _, group_sub = group(sub, "retrain",
                         "retrain a model (through a canary, never straight to production); list and show runs",
                         "retrain_command", epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p = subcommand(group_sub, "run", f"{H}:trigger", "start a retraining run of MODEL (or join the one in flight)",
                   epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--wait", action="store_true", help="follow the run's progress and logs until it ends")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="with --wait: give up after this")
    p.add_argument("--reason", default="", help="why: recorded in the audit log")

    p = subcommand(group_sub, "runs", f"{H}:runs", "retraining runs, newest first")
    p.add_argument("model", nargs="?", metavar="MODEL")
    p.add_argument("-n", "--limit", type=int, default=20, help="at most this many")

    p = subcommand(group_sub, "show", f"{H}:show", "one run: decision, error, logs")
    p.add_argument("run_id", metavar="RUN_ID")

    p = subcommand(group_sub, "approve", f"{H}:approve", "start the canary of a run awaiting approval")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--reason", default="", help="why: recorded in the audit log")

    p = subcommand(group_sub, "reject", f"{H}:reject", "turn a run awaiting approval down: no canary starts")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--reason", default="", help="why: recorded in the audit log")
