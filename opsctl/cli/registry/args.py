"""``opsctl models|versions|register|promote|rollback|history|verify``: the registry's commands."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import change, command

H = "opsctl.cli.registry.handlers"


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
                "abort a running canary, or return to the previous production version")
    p.add_argument("model")
    p.add_argument("--to", metavar="VERSION", help="roll back to this version instead of the previous one")
    change(p)

    p = command(sub, "history", f"{H}:history", "the audit log, oldest first")
    p.add_argument("model", nargs="?")
    p.add_argument("-n", "--limit", type=int, default=50)

    p = command(sub, "verify", f"{H}:verify", "check artifacts against their registered sha256 (exit 5 on a mismatch)")
    p.add_argument("model")
    p.add_argument("version", nargs="?", help="default: every version of the model")
