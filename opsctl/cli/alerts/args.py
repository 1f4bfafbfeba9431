"""``opsctl alerts ...``: list, acknowledge and silence alerts (through the daemon; exit 6 when it is down)."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import Parser, command, subcommand

DURATION_HELP = "a duration such as 90s, 30m, 2h, 1d or 1h30m"


def add_commands(sub: Any) -> None:
    group = command(sub, "alerts", "opsctl.cli.alerts.handlers:alerts",
                    "pending and firing alerts (--all: resolved ones too); ack and silence them")
    group.add_argument("--all", action="store_true", help="include resolved alerts")
    group_sub = group.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", parser_class=Parser)

    def sub_command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        return subcommand(group_sub, name, handler, help_text)

    p = sub_command("ack", "opsctl.cli.alerts.handlers:ack",
                    "acknowledge an alert: no more notifications for it; it still resolves on its own (audited)")
    p.add_argument("id", help="alert id (at least 6 leading characters, see `opsctl alerts`)")
    p.add_argument("--for", dest="duration", metavar="DURATION",
                   help=f"how long the ack holds, {DURATION_HELP} (default: until the alert resolves)")
    p.add_argument("--comment", default="", help="note shown with the ack")
    p.add_argument("--reason", default="", help="why: recorded in the audit log (default: the comment)")

    p = sub_command("silence", "opsctl.cli.alerts.handlers:silence",
                    "silence notifications of every alert matching all --match (audited)")
    p.add_argument("--match", action="append", required=True, metavar="NAME=VALUE",
                   help="label matcher (=, !=, =~ or !~ as in Alertmanager); repeat to narrow")
    p.add_argument("--for", dest="duration", required=True, metavar="DURATION", help=DURATION_HELP)
    p.add_argument("--comment", required=True, help="why the alerts are silenced")
    p.add_argument("--reason", default="", help="recorded in the audit log (default: the comment)")

    p = sub_command("silences", "opsctl.cli.alerts.handlers:silences", "silences in force (--all: expired too)")
    p.add_argument("--all", action="store_true", help="include expired silences")

    p = sub_command("unsilence", "opsctl.cli.alerts.handlers:unsilence", "end a silence now (audited)")
    p.add_argument("id", help="silence id (see `opsctl alerts silences`)")
    p.add_argument("--reason", default="")
