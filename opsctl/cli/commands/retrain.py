"""``opsctl retrain ...``: start a retraining run and follow it, list runs, show one (through the daemon)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

USAGE = """usage:
  opsctl retrain MODEL [--wait] [--reason TEXT]   start a run (or join the one in flight)
  opsctl retrain runs [MODEL]                     runs, newest first
  opsctl retrain show RUN_ID                      one run: decision, error, logs
  opsctl retrain approve RUN_ID [--reason TEXT]   start the canary of a run awaiting approval

exit codes with --wait: 0 the run ended (canary started, candidate kept, awaiting approval),
1 it failed or timed out, 3 still running when --timeout ran out, 6 the daemon is not running"""


def add_commands(sub: Any, command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command("retrain", "opsctl.cli.retrain_cmds:main",
                "retrain a model (through a canary, never straight to production); list and show runs")
    p.epilog = USAGE
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("target", metavar="MODEL|runs|show|approve")
    p.add_argument("argument", nargs="?", metavar="MODEL|RUN_ID")
    p.add_argument("--wait", action="store_true", help="follow the run's progress and logs until it ends")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="with --wait: give up after this")
    p.add_argument("--reason", default="", help="why: recorded in the audit log")
    p.add_argument("-n", "--limit", type=int, default=20, help="runs: at most this many")
