"""``opsctl drift MODEL`` / ``opsctl drift compare REFERENCE CURRENT`` and ``opsctl performance MODEL``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

DRIFT_EPILOG = """\
examples:
  opsctl drift fraud-detector                  newest check of each deployed version, per feature
  opsctl drift fraud-detector --history        the last 20 checks (--history N for N)
  opsctl drift fraud-detector --report inc.md  the newest reports as Markdown, for an incident write-up
  opsctl drift compare ref.csv today.parquet --categorical country,device
                                               the same computation on two files, no daemon needed
A feature drifts when its corrected p-value is at most alpha AND its effect size reaches the floor
([drift] in opsctl.toml); "?" means too little data to judge. MODEL and --history/--report need the
daemon (exit 6 when it is down); compare runs locally."""


def add_commands(sub: Any, command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command("drift", "opsctl.cli.drift_cmds:drift",
                "data and prediction drift of a model's deployed versions (or `compare` two files)")
    p.add_argument("model", metavar="MODEL", help="a model, or `compare` followed by REFERENCE CURRENT")
    p.add_argument("files", nargs="*", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--history", nargs="?", type=int, const=20, default=None, metavar="N",
                   help="the last N checks, newest first (default 20)")
    p.add_argument("--report", metavar="FILE.md", help="write the newest reports as Markdown to FILE.md")
    p.add_argument("--categorical", default="", metavar="COL,...",
                   help="compare: columns to treat as categories (text columns are anyway)")
    p.epilog = DRIFT_EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter

    p = command("performance", "opsctl.cli.drift_cmds:performance",
                "accuracy, AUC, precision and recall on labelled traffic vs each deployed version's baseline")
    p.add_argument("model")
