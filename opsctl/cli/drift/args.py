"""``opsctl drift check MODEL`` (or ``opsctl drift MODEL``), ``opsctl drift compare REFERENCE CURRENT`` and
``opsctl performance MODEL``."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import command, group, subcommand

H = "opsctl.cli.drift.handlers"
SUBCOMMANDS = ("check", "compare")
DEFAULT_SUBCOMMAND = "check"

DRIFT_EPILOG = """\
examples:
  opsctl drift fraud-detector                  newest check of each deployed version, per feature
                                               (short for `opsctl drift check fraud-detector`)
  opsctl drift fraud-detector --history        the last 20 checks (--history N for N)
  opsctl drift fraud-detector --report inc.md  the newest reports as Markdown, for an incident write-up
  opsctl drift compare ref.csv today.parquet --categorical country,device
                                               the same computation on two files, no daemon needed
  opsctl drift check compare                   a model named `compare` (or `check`): name the subcommand
A feature drifts when its corrected p-value is at most alpha AND its effect size reaches the floor
([drift] in opsctl.toml); "?" means too little data to judge. check needs the daemon (exit 6 when it
is down); compare runs locally."""


def add_commands(sub: Any) -> None:
    _, group_sub = group(sub, "drift", "data and prediction drift of the deployed versions (or compare two files)",
                         "drift_command", epilog=DRIFT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p = subcommand(group_sub, "check", f"{H}:drift", "newest drift check of each deployed version of MODEL",
                   epilog=DRIFT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--history", nargs="?", type=int, const=20, default=None, metavar="N",
                   help="the last N checks, newest first (default 20)")
    p.add_argument("--report", metavar="FILE.md", help="write the newest reports as Markdown to FILE.md")

    p = subcommand(group_sub, "compare", f"{H}:compare", "compare two files (.csv or .parquet) locally, no daemon")
    p.add_argument("reference", metavar="REFERENCE")
    p.add_argument("current", metavar="CURRENT")
    p.add_argument("--categorical", default="", metavar="COL,...",
                   help="columns to treat as categories (text columns are anyway)")

    p = command(sub, "performance", f"{H}:performance",
                "accuracy, AUC, precision and recall on labelled traffic vs each deployed version's baseline")
    p.add_argument("model")
