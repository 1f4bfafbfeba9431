"""``opsctl canary ...``: start, watch and steer canaries (through the daemon)."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import group, subcommand

STATUS_EXIT_CODES = """exit codes of `canary status MODEL`, like `kubectl argo rollouts status`:
  0  succeeded (or, without --watch, progressing normally)
  1  failed, rolled_back or aborted
  2  paused, or waiting for approval (a human must act)
  3  still progressing when --watch --timeout ran out (also: no such canary)
  6  the daemon is not running"""


def add_commands(sub: Any) -> None:
    _, group_sub = group(sub, "canary", "canary releases: start, status, pause, resume, promote, abort, approve",
                         "canary_command", description="Canary releases, run by the daemon (it must be running).",
                         epilog=STATUS_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)

    def sub_command(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return subcommand(group_sub, name, f"opsctl.cli.canary.handlers:{name}", help_text, **kwargs)

    p = sub_command("start", "start a canary of VERSION (stage 1's weight is applied at once)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a [canary] policy key for this canary, e.g. --set stages=[5,50,100]")
    p.add_argument("--reason", default="", help="why: recorded in the audit log")

    p = sub_command("status", "state, stage, weight, failed checks and gate verdicts",
                    epilog=STATUS_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?")
    p.add_argument("-w", "--watch", action="store_true", help="follow until the canary finishes or pauses")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="with --watch: give up (exit 3)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="with --watch: poll interval")

    for name, help_text in (("pause", "hold the canary at its current weight"),
                            ("resume", "continue a paused canary in its current stage"),
                            ("promote", "skip the remaining stages and promote the canary now"),
                            ("abort", "send all traffic back to production now (no analysis)"),
                            ("approve", "approve the final promotion of a canary waiting for it")):
        p = sub_command(name, help_text)
        p.add_argument("model")
        p.add_argument("--reason", default="", help="why: recorded in the audit log")
        if name == "promote":
            p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
