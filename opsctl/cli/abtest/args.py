"""``opsctl abtest ...``: A/B statistics for scripts and for the incident channel."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import group, subcommand


def add_commands(sub: Any) -> None:
    _, group_sub = group(sub, "abtest", "A/B analysis: z-test, sample size, sequential test", "abtest_command")

    def sub_command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        return subcommand(group_sub, name, handler, help_text)

    p = sub_command("ztest", "opsctl.cli.abtest.handlers:ztest",
                    "two-proportion z-test with confidence interval and relative lift")
    p.add_argument("--control", required=True, metavar="SUCCESSES/TOTAL")
    p.add_argument("--treatment", required=True, metavar="SUCCESSES/TOTAL")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--alternative", choices=("two-sided", "larger", "smaller"), default="two-sided",
                   help="larger: treatment rate above control")

    p = sub_command("sample-size", "opsctl.cli.abtest.handlers:sample_size",
                    "users per group needed to detect a relative change")
    p.add_argument("--baseline", type=float, required=True, metavar="P", help="control rate, e.g. 0.2")
    p.add_argument("--mde", type=float, required=True, metavar="RELATIVE", help="relative change, e.g. 0.1")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--alternative", choices=("two-sided", "larger", "smaller"), default="two-sided")

    p = sub_command("sequential", "opsctl.cli.abtest.handlers:sequential",
                    "always-valid (mSPRT) test, safe to read at every look")
    p.add_argument("--look", action="append", default=[], metavar="CS/CT:TS/TT",
                   help="cumulative control and treatment counts at one look; repeat in time order")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--tau", type=float, default=0.05, help="scale of the differences you expect (absolute)")
    p.add_argument("--min-samples", type=int, default=100, help="per group before any decision")
