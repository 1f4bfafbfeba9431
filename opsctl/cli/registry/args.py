"""``opsctl models|versions|register|promote|rollback|history|verify``: the registry's commands."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import change, command

H = "opsctl.cli.registry.handlers"

ROLLBACK_HELP = """where a rollback goes:
  with a canary running (or paused): the canary is aborted, all traffic goes to production.
  otherwise: production returns to the version it had before the last promote, whichever path
  promoted it (`opsctl promote`, `opsctl canary promote`, a canary that passed, a retrain handover).
  Every promote pushes the outgoing production version on the model's stack; every rollback pops
  one. `opsctl versions MODEL` marks the version a rollback would go to ("<- rollback").
  --to VERSION goes to that version instead.

what it reports:
  the registry change, then whether traffic followed (routing document updated, or the command/
  webhook actuator ran); exit 1 when traffic did not follow. With the daemon down it acts on the
  registry directly and still moves traffic (break-glass). --verify then watches Prometheus until
  the rolled-back-from version's share of requests is below --max-share (exit 1 if not by --within)."""


def add_commands(sub: Any) -> None:
    command(sub, "models", f"{H}:models", "list models with their production and canary versions")

    p = command(sub, "versions", f"{H}:versions", "list the versions of a model")
    p.add_argument("model")

    p = command(sub, "register", f"{H}:register", "register a model version (artifact is copied in)")
    p.add_argument("model")
    p.add_argument("--version", required=True, dest="model_version", metavar="VERSION")
    p.add_argument("--artifact", required=True, metavar="FILE")
    p.add_argument("--metrics", metavar="FILE.json", help="JSON object of metric name -> number")
    p.add_argument("--reference", metavar="FILE.csv", help="reference data sample for drift checks")
    p.add_argument("--description", default="")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--parent", metavar="VERSION", help="lineage: the version this one was trained from")
    p.add_argument("--code-version", metavar="REV", help="lineage: code revision used for training")
    p.add_argument("--data-hash", metavar="SHA256", help="lineage: hash of the training data")
    p.add_argument("--reason", default="")

    p = command(sub, "promote", f"{H}:promote", "put a version into production")
    p.add_argument("model")
    p.add_argument("version")
    change(p)

    p = command(sub, "rollback", f"{H}:rollback",
                "abort a running canary, or return to the previous production version",
                epilog=ROLLBACK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--to", metavar="VERSION", help="roll back to this version instead of the previous one")
    p.add_argument("--verify", action="store_true",
                   help="after the change, watch Prometheus until traffic left the rolled-back-from version")
    p.add_argument("--within", type=float, default=60.0, metavar="SECONDS",
                   help="--verify: deadline for traffic to move (default: %(default)s)")
    p.add_argument("--max-share", type=float, default=5.0, metavar="PERCENT",
                   help="--verify: the rolled-back-from version's share of requests that counts as moved"
                        " (default: %(default)s)")
    p.add_argument("--window", type=float, default=15.0, metavar="SECONDS",
                   help="--verify: measure the share over this many seconds (default: %(default)s)")
    change(p)

    p = command(sub, "history", f"{H}:history", "the audit log, oldest first")
    p.add_argument("model", nargs="?")
    p.add_argument("-n", "--limit", type=int, default=50)

    p = command(sub, "verify", f"{H}:verify", "check artifacts against their registered sha256 (exit 5 on a mismatch)")
    p.add_argument("model")
    p.add_argument("version", nargs="?", help="default: every version of the model")
